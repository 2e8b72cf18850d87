"""The report register: one row per report the service issued (who generated which report is audit evidence).

Append-only like the audit log: the model and its queryset refuse updates and deletes, the admin is read-only,
and the database refuses UPDATE, DELETE and TRUNCATE (``REGISTER_GUARD``, installed by a migration).
"""

from django.db import models
from django.utils import timezone

from audit.models import Agent, Session
from audit.triggers import Guard
from masker.models import Account, AppendOnlyModel, AppendOnlyQuerySet, TenantQuerySet

REGISTER_GUARD = Guard(name="report_record", table="reports_reportrecord", collides="id = NEW.id")


class ReportRecordQuerySet(TenantQuerySet, AppendOnlyQuerySet):
    pass


class ReportRecord(AppendOnlyModel):
    """A report that was generated and handed out: its id, scope, subject, format, root and tree size, who
    asked (``usr_…`` membership id or ``key_…`` API token id) and when. No report content, no PHI. A period
    report (scope ``agent`` or ``account``) records its window, its period root and the events it covered."""

    class Format(models.TextChoices):
        JSON = "json", "JSON"
        PDF = "pdf", "PDF"

    id = models.CharField(primary_key=True, max_length=40, editable=False)  # the report's own rep_ id
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="report_records")
    scope = models.CharField(max_length=16, default="session")  # session, agent or account
    # The subject: a session (scope session), or a window of an agent's or the account's sessions.
    session = models.ForeignKey(Session, on_delete=models.PROTECT, related_name="report_records", null=True)
    agent = models.ForeignKey(Agent, on_delete=models.PROTECT, related_name="report_records", null=True)
    window_from = models.DateTimeField(null=True)
    window_to = models.DateTimeField(null=True)
    format = models.CharField(max_length=8, choices=Format.choices)
    merkle_root_hex = models.CharField(max_length=64)
    tree_size = models.PositiveBigIntegerField()
    signature_kid = models.CharField(max_length=64, blank=True)
    generated_by = models.CharField(max_length=64)
    generated_at = models.DateTimeField()
    recorded_at = models.DateTimeField(default=timezone.now)

    objects = ReportRecordQuerySet.as_manager()

    class Meta:
        ordering = ["-generated_at", "-id"]
        indexes = [models.Index(fields=["account", "-generated_at"], name="report_account_generated")]
        verbose_name = "issued report"

    def __str__(self) -> str:
        return f"{self.id} ({self.format}, {self.session_id or self.scope})"

    @staticmethod
    def anchors_of(session_ids: list[str]) -> list[tuple[str, int, str]]:
        """The distinct (session_id, tree_size, merkle_root_hex) of the reports issued on these sessions: their
        logs' prefixes must keep those roots (``audit.walk``)."""
        rows = ReportRecord.objects.filter(session_id__in=session_ids).values_list(
            "session_id", "tree_size", "merkle_root_hex"
        )
        return list(rows.distinct())
