from django.contrib import admin

from masker.admin import ReadOnlyModelAdmin
from reports.models import ReportRecord


@admin.register(ReportRecord)
class ReportRecordAdmin(ReadOnlyModelAdmin):
    """The report register: strictly read-only (who generated which report is audit evidence)."""

    list_display = (
        "id",
        "generated_at",
        "account",
        "session",
        "format",
        "tree_size",
        "merkle_root_hex",
        "generated_by",
    )
    list_filter = ("format", "scope", "account")
    list_select_related = ("account",)
    search_fields = ("id", "session__id", "generated_by", "merkle_root_hex")
    date_hierarchy = "generated_at"
    readonly_fields = (
        "id",
        "account",
        "scope",
        "session",
        "format",
        "merkle_root_hex",
        "tree_size",
        "signature_kid",
        "generated_by",
        "generated_at",
        "recorded_at",
    )
    show_full_result_count = False
