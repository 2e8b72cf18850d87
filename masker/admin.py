from django.contrib import admin

from masker.models import Account, ApiToken, Membership


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "created_at")
    search_fields = ("id", "name")


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ("id", "user", "account", "role")
    list_filter = ("role", "account")
    list_select_related = ("user", "account")


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are issued with ``create_api_token`` (the secret is shown once); here they are listed and revoked."""

    list_display = ("id", "account", "name", "scopes", "created_at", "last_used_at", "revoked_at")
    list_filter = ("account",)
    readonly_fields = ("id", "account", "secret_sha256", "scopes", "created_at", "last_used_at", "revoked_at")
    actions = ["revoke_tokens"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Revoke selected tokens")
    def revoke_tokens(self, request, queryset):
        for token in queryset.active():
            token.revoke()
