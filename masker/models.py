"""Tenancy: accounts, memberships of users in an account, and scoped API tokens."""

import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone

from masker.ids import id_factory, is_valid_id


class TenantQuerySet(models.QuerySet):
    """Every tenant lookup goes through here. The model declares ``ID_PREFIX`` and ``NotFound`` (its 404 error)."""

    def visible_to(self, account: "Account | None"):
        """Only the given account's rows (None sees nothing)."""
        if account is None:
            return self.none()
        return self.filter(account=account)

    def get_visible(self, account: "Account | None", public_id: str):
        """One row by public id, scoped to the account; raises the model's not-found error (a 404 with its code)
        for unknown, malformed and other accounts' ids alike, so ids do not leak."""
        model = self.model
        if is_valid_id(model.ID_PREFIX, public_id):
            found = self.visible_to(account).filter(pk=public_id).first()
            if found is not None:
                return found
        raise model.NotFound()


class AppendOnlyError(Exception):
    """Raised on any attempt to change or delete a row of an append-only model through the ORM."""


class AppendOnlyQuerySet(models.QuerySet):
    """Bulk ORM writes other than insert are refused, like single-row ones (``AppendOnlyModel``)."""

    def _refuse(self, *args, **kwargs):
        raise AppendOnlyError(f"{self.model._meta.verbose_name_plural} are append-only")

    update = delete = bulk_update = _refuse


class AppendOnlyModel(models.Model):
    """A model whose rows are written once and never changed or deleted through the ORM. The database refuses too
    (``audit.triggers``), and the admin shows such models read-only."""

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnlyError(f"{self._meta.verbose_name_plural} are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError(f"{self._meta.verbose_name_plural} are append-only")


DEFAULT_REPORT_RETENTION_DAYS = 6 * 365


class Account(models.Model):
    """A tenant: owns agents, policies, sessions and API tokens."""

    id = models.CharField(primary_key=True, max_length=40, default=id_factory("acc"), editable=False)
    name = models.CharField(max_length=200, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    # How long the files of a succeeded report run are kept (days): HIPAA keeps documentation 6 years.
    report_retention_days = models.PositiveIntegerField(default=DEFAULT_REPORT_RETENTION_DAYS)

    def __str__(self) -> str:
        return f"{self.name} ({self.id})"


class Membership(models.Model):
    """A user's membership of exactly one account, with a role."""

    class Role(models.TextChoices):
        ADMIN = "admin", "Admin"
        VIEWER = "viewer", "Viewer"

    id = models.CharField(primary_key=True, max_length=40, default=id_factory("usr"), editable=False)
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="membership")
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.VIEWER)

    def __str__(self) -> str:
        return f"{self.id} in {self.account_id} ({self.role})"


def account_of(user) -> Account | None:
    """The account a user belongs to, or None (a user without membership sees nothing)."""
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    membership = getattr(user, "membership", None)
    return membership.account if membership else None


class ApiTokenQuerySet(models.QuerySet):
    def active(self):
        return self.filter(revoked_at__isnull=True)


class ApiToken(models.Model):
    """A bearer token ``mk_<secret>`` for the proxy and scripts. Only a SHA-256 of the secret is stored.

    The secret has 256 bits of entropy, so a fast hash is the right choice (a slow KDF protects low-entropy
    passwords, not random keys) and lets every API call authenticate in one indexed lookup.
    """

    SCOPES = ("events:write", "sessions:read", "reports:read")

    id = models.CharField(primary_key=True, max_length=40, default=id_factory("key"), editable=False)
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="api_tokens")
    name = models.CharField(max_length=200, blank=True)
    secret_sha256 = models.CharField(max_length=64, unique=True, editable=False)
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    def __str__(self) -> str:
        return f"{self.id} ({', '.join(self.scopes)})"

    @staticmethod
    def hash_secret(secret: str) -> str:
        return hashlib.sha256(secret.encode()).hexdigest()

    @classmethod
    def issue(cls, *, account: Account, scopes: list[str], name: str = "") -> tuple["ApiToken", str]:
        """Create a token; returns it with its secret, which is shown once and never stored."""
        unknown = sorted(set(scopes) - set(cls.SCOPES))
        if unknown or not scopes:
            raise ValueError(f"scopes must be a non-empty subset of {cls.SCOPES}, got unknown {unknown}")
        secret = "mk_" + secrets.token_urlsafe(32)
        token = cls.objects.create(
            account=account, name=name, scopes=sorted(set(scopes)), secret_sha256=cls.hash_secret(secret)
        )
        return token, secret

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def revoke(self, *, now=None) -> None:
        if self.revoked_at is None:
            self.revoked_at = now or timezone.now()
            self.save(update_fields=["revoked_at"])


class TokenRateWindow(models.Model):
    """How many requests one API token made in one fixed window (``masker.throttling.TokenRateThrottle``).

    Kept in the database, not in a per-process cache, so the limit holds across every gunicorn worker and host:
    one atomic upsert per request counts it. A token's past windows are pruned when its next window opens.
    """

    token = models.ForeignKey(ApiToken, on_delete=models.CASCADE, related_name="+", db_index=False)
    window_start = models.BigIntegerField()  # Unix seconds, a multiple of the window's length
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["token", "window_start"], name="token_rate_window_unique")]

    def __str__(self) -> str:
        return f"{self.token_id} @ {self.window_start}: {self.count}"


class LoginFailureWindow(models.Model):
    """Failed sign-ins of one (email, client IP) pair in a window opened by the first failure
    (``masker.throttling``). In the database, so every worker and host shares the count; the key is a digest,
    so no address sits here in clear."""

    key = models.CharField(max_length=64, unique=True)  # sha256 hex of "email|ip"
    window_start = models.BigIntegerField(db_index=True)  # Unix seconds of the window's first failure
    count = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.key[:12]}… @ {self.window_start}: {self.count}"
