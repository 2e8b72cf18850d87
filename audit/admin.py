import json

from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from audit.errors import AuditChainBroken
from audit.models import Agent, AuditEvent, IdempotencyRecord, Policy, Session
from audit.walk import verify_session
from masker.admin import ReadOnlyModelAdmin


@admin.register(Policy)
class PolicyAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "version", "account", "sha256", "created_at")
    list_filter = ("account",)
    readonly_fields = ("sha256",)

    def get_readonly_fields(self, request, obj=None):
        # Immutable once saved: a change is a new version.
        return [f.name for f in self.model._meta.fields] if obj else self.readonly_fields


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "account", "platform", "upstream_model", "policy")
    list_filter = ("account", "platform")
    list_select_related = ("account", "policy")


@admin.register(Session)
class SessionAdmin(admin.ModelAdmin):
    list_display = ("id", "agent", "status", "started_at", "tree_size", "redaction_count", "alert_count", "sealed")
    list_filter = ("status", "account", "agent")
    list_select_related = ("agent",)
    search_fields = ("id", "external_ref")
    actions = ["verify_chains"]
    readonly_fields = [
        "id",
        "account",
        "agent",
        "external_ref",
        "platform",
        "upstream_model",
        "started_at",
        "ended_at",
        "status",
        "policy",
        "policy_name",
        "policy_version",
        "policy_sha256",
        "policy_snapshot",
        "tree_size",
        "chain_head",
        "merkle_root",
        "redaction_count",
        "alert_count",
        "sealed_at",
        "seal_json",
        "report_links",
    ]
    exclude = ("merkle_frontier", "seal")

    def has_add_permission(self, request):
        return False  # sessions are started by the proxy (API) so that their chain starts correctly

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(boolean=True)
    def sealed(self, obj):
        return obj.is_sealed

    @admin.display(description="Merkle root")
    def merkle_root(self, obj):
        return obj.merkle_root_hex

    @admin.display(description="Seal")
    def seal_json(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.seal, indent=2)) if obj.seal else "—"

    @admin.display(description="Report")
    def report_links(self, obj):
        url = reverse("reports:session-report", args=[obj.id])
        return format_html(
            '<a href="{}?format=json">Download JSON</a> · <a href="{}?format=pdf">Download PDF</a>', url, url
        )

    # Verifying walks a whole log, so it is an explicit action (the same walk as the report and verify_chain),
    # never something a page view does.
    @admin.action(description="Verify the audit chain of selected sessions")
    def verify_chains(self, request, queryset):
        for session in queryset:
            try:
                summary = verify_session(session)
            except AuditChainBroken as exc:
                self.message_user(request, f"{session.id}: {exc.message}", messages.ERROR)
            else:
                self.message_user(
                    request, f"{session.id}: verified, {summary.tree_size} events, root {summary.merkle_root_hex}"
                )


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyModelAdmin):
    """Strictly read-only: no add, change or delete, and no bulk actions."""

    list_display = ("id", "session", "seq", "kind", "ts", "turn", "entity_kind")
    list_filter = ("kind",)
    search_fields = ("session__id", "id")
    readonly_fields = (
        "id",
        "session",
        "seq",
        "kind",
        "ts",
        "turn",
        "entity_kind",
        "canonical",
        "event_hash",
        "prev_hash",
    )
    show_full_result_count = False


@admin.register(IdempotencyRecord)
class IdempotencyRecordAdmin(ReadOnlyModelAdmin):
    """The stored answers of keyed event batches, for inspection only: they are written with the append."""

    list_display = ("session", "key", "principal", "response_status", "created_at")
    search_fields = ("session__id", "key")
    readonly_fields = (
        "session",
        "key",
        "request_sha256",
        "principal",
        "response_status",
        "response_body",
        "created_at",
    )
    list_select_related = ("session",)
