from django import forms
from django.contrib import admin
from django.template.response import TemplateResponse

from masker.models import Account, ApiToken, LoginFailureWindow, Membership, TokenRateWindow


class ReadOnlyModelAdmin(admin.ModelAdmin):
    """Inspection only: no add, change, delete or bulk actions (evidence and bookkeeping rows)."""

    actions = None

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "created_at", "report_retention_days")
    search_fields = ("id", "name")


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ("id", "user", "account", "role")
    list_filter = ("role", "account")
    list_select_related = ("user", "account")


class ApiTokenIssueForm(forms.ModelForm):
    """Issue a token: account, a label and its scopes; the secret is generated, never typed."""

    scopes = forms.MultipleChoiceField(
        choices=[(scope, scope) for scope in ApiToken.SCOPES], widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = ApiToken
        fields = ("account", "name", "scopes")


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Issue (the ``mk_…`` secret is shown once, on the page that follows, and only its hash is stored), list and
    revoke tokens. Existing tokens are read-only. The same is available as ``manage.py create_api_token``."""

    list_display = ("id", "account", "name", "scopes", "created_at", "last_used_at", "revoked_at")
    list_filter = ("account",)
    readonly_fields = ("id", "account", "name", "secret_sha256", "scopes", "created_at", "last_used_at", "revoked_at")
    actions = ["revoke_tokens"]
    issued_template = "admin/masker/apitoken/issued.html"

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else ()

    def get_fields(self, request, obj=None):
        return ("account", "name", "scopes") if obj is None else self.readonly_fields

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = ApiTokenIssueForm
        return super().get_form(request, obj, **kwargs)

    def save_model(self, request, obj, form, change):
        if change:  # existing tokens are read-only
            return
        token, secret = ApiToken.issue(account=obj.account, scopes=form.cleaned_data["scopes"], name=obj.name)
        for field in ("id", "secret_sha256", "scopes", "created_at"):
            setattr(obj, field, getattr(token, field))
        obj._state.adding, obj._state.db = False, token._state.db
        request._issued_api_token_secret = secret  # rendered once by response_add, never stored or logged

    def response_add(self, request, obj, post_url_continue=None):
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "API token issued",
            "token": obj,
            "secret": request._issued_api_token_secret,
        }
        response = TemplateResponse(request, self.issued_template, context)
        return response

    @admin.action(description="Revoke selected tokens")
    def revoke_tokens(self, request, queryset):
        for token in queryset.active():
            token.revoke()


@admin.register(TokenRateWindow)
class TokenRateWindowAdmin(ReadOnlyModelAdmin):
    """Per-token request counts of the current rate-limit windows (masker.throttling); read-only."""

    list_display = ("token", "window_start", "count")
    readonly_fields = ("token", "window_start", "count")


@admin.register(LoginFailureWindow)
class LoginFailureWindowAdmin(ReadOnlyModelAdmin):
    """Failed sign-ins per (email, client IP) digest in the current 15-minute windows (masker.throttling)."""

    list_display = ("key", "window_start", "count")
    readonly_fields = ("key", "window_start", "count")
