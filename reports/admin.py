from django.contrib import admin

from masker.admin import ReadOnlyModelAdmin
from reports.models import ReportRecord, ReportRun, RunChunk, RunFile


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


@admin.register(ReportRun)
class ReportRunAdmin(ReadOnlyModelAdmin):
    """Report runs, to watch: state, progress, errors (the workers change them; nobody edits them here)."""

    list_display = (
        "id",
        "created_at",
        "account",
        "scope",
        "status",
        "chunks_done",
        "chunks_total",
        "sessions_done",
        "events_done",
        "finished_at",
    )
    list_filter = ("status", "scope", "account")
    list_select_related = ("account",)
    search_fields = ("id", "report_id")
    readonly_fields = (
        "id",
        "account",
        "scope",
        "session",
        "agent",
        "window_from",
        "window_to",
        "formats",
        "bundle",
        "status",
        "error",
        "created_by",
        "created_at",
        "started_at",
        "finished_at",
        "chunks_total",
        "chunks_done",
        "sessions_total",
        "sessions_done",
        "events_done",
        "due_at",
        "report_id",
        "files_purged_at",
    )
    show_full_result_count = False


@admin.register(RunChunk)
class RunChunkAdmin(ReadOnlyModelAdmin):
    """A run's chunks: which worker walked each, how often, whether done (their figures are not shown)."""

    list_display = ("run", "index", "events", "done", "worker", "attempts", "lease_until", "finished_at")
    list_filter = ("done",)
    search_fields = ("run__id", "worker")
    readonly_fields = ("run", "index", "events", "done", "worker", "attempts", "lease_until", "finished_at")
    fields = readonly_fields
    show_full_result_count = False


@admin.register(RunFile)
class RunFileAdmin(ReadOnlyModelAdmin):
    """The files succeeded runs stored, with their size and SHA-256."""

    list_display = ("run", "name", "content_type", "size", "sha256", "created_at")
    search_fields = ("run__id", "name", "sha256")
    readonly_fields = ("run", "name", "content_type", "size", "sha256", "storage_name", "created_at")
    show_full_result_count = False
