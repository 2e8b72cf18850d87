from django.apps import AppConfig


class ReportsConfig(AppConfig):
    name = "reports"

    def ready(self) -> None:
        from audit.walk import register_anchor_source
        from reports.models import ReportRecord

        # Every walk checks that the log still has the root each issued report recorded at its size.
        register_anchor_source(ReportRecord.anchors_of)
