"""Agents, versioned policies, sessions (one call each) and the append-only, hash-chained audit log."""

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from audit.errors import AgentNotFound, SessionNotFound
from audit.events import ZERO_HASH
from audit.policy import parse_policy, policy_sha256
from masker.errors import NotFound
from masker.ids import id_factory
from masker.models import Account, AppendOnlyModel, AppendOnlyQuerySet, TenantQuerySet


class Policy(models.Model):
    """A named, versioned YAML policy. Immutable once saved: a change is a new version."""

    id = models.CharField(primary_key=True, max_length=40, default=id_factory("pol"), editable=False)
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="policies")
    name = models.CharField(max_length=100)
    version = models.PositiveIntegerField()
    yaml_text = models.TextField()
    sha256 = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(default=timezone.now)

    objects = TenantQuerySet.as_manager()
    ID_PREFIX, NotFound = "pol", NotFound

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "name", "version"], name="policy_version_unique")]
        ordering = ["name", "-version"]
        verbose_name_plural = "policies"

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise ValidationError("Policies are immutable: create a new version instead.")
        doc = parse_policy(self.yaml_text)  # raises ValidationFailed with a clear message
        self.name, self.version = doc.name, doc.version
        self.sha256 = policy_sha256(self.yaml_text)
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValidationError("Policies are immutable and kept as evidence.")

    def clean(self) -> None:
        from masker.errors import ValidationFailed

        try:
            doc = parse_policy(self.yaml_text)
        except ValidationFailed as exc:
            raise ValidationError({"yaml_text": exc.message}) from None
        if (doc.name, doc.version) != (self.name, self.version):
            raise ValidationError({"yaml_text": "name and version in the YAML must match the policy's"})


class Agent(models.Model):
    """A voice agent of an account, with its current policy."""

    id = models.CharField(primary_key=True, max_length=40, default=id_factory("agt"), editable=False)
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="agents")
    name = models.CharField(max_length=200)
    platform = models.CharField(max_length=64)
    upstream_model = models.CharField(max_length=128)
    policy = models.ForeignKey(Policy, on_delete=models.PROTECT, related_name="agents")
    created_at = models.DateTimeField(default=timezone.now)

    objects = TenantQuerySet.as_manager()
    ID_PREFIX, NotFound = "agt", AgentNotFound

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "name"], name="agent_name_unique")]
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.id})"


class SessionQuerySet(TenantQuerySet):
    def with_alerts(self):
        return self.filter(alert_count__gt=0)


class Session(models.Model):
    """One call. Holds the policy snapshot taken at start, the chain's head and size, and the seal once ended.

    ``tree_size``, ``chain_head``, ``merkle_frontier``, ``redaction_count`` and ``alert_count`` are maintained by
    ``audit.writing.append_events`` under the session row lock; reports never trust them and recompute from bytes.
    """

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        OK = "ok", "Ended OK"
        ERROR = "error", "Ended with error"
        PARTIAL = "partial", "Ended partially"

    id = models.CharField(primary_key=True, max_length=40, default=id_factory("sess"), editable=False)
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="sessions")
    agent = models.ForeignKey(Agent, on_delete=models.PROTECT, related_name="sessions")
    external_ref = models.CharField(max_length=128)
    platform = models.CharField(max_length=64)
    upstream_model = models.CharField(max_length=128)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    policy = models.ForeignKey(Policy, on_delete=models.PROTECT, related_name="sessions")
    policy_snapshot = models.TextField()
    policy_name = models.CharField(max_length=100)
    policy_version = models.PositiveIntegerField()
    policy_sha256 = models.CharField(max_length=64)
    tree_size = models.PositiveBigIntegerField(default=0)
    chain_head = models.CharField(max_length=64, default=ZERO_HASH)
    merkle_frontier = models.JSONField(default=list)
    redaction_count = models.PositiveBigIntegerField(default=0)
    alert_count = models.PositiveBigIntegerField(default=0)
    sealed_at = models.DateTimeField(null=True, blank=True)
    seal = models.JSONField(null=True, blank=True)  # {"session_id","tree_size","merkle_root_hex",...,"signature"}

    objects = SessionQuerySet.as_manager()
    ID_PREFIX, NotFound = "sess", SessionNotFound

    class Meta:
        constraints = [models.UniqueConstraint(fields=["agent", "external_ref"], name="session_ref_unique")]
        indexes = [models.Index(fields=["account", "-started_at"], name="session_account_started")]
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return self.id

    @property
    def is_sealed(self) -> bool:
        return self.sealed_at is not None

    @property
    def duration_ms(self) -> int | None:
        if self.ended_at is None:
            return None
        return int((self.ended_at - self.started_at).total_seconds() * 1000)

    @property
    def merkle_root_hex(self) -> str:
        from audit.merkle import MerkleAccumulator

        return MerkleAccumulator.from_frontier(self.tree_size, self.merkle_frontier).root().hex()


class AuditEvent(AppendOnlyModel):
    """One event of a session's chain. Written once by ``append_events``; never updated, never deleted.

    ``canonical`` holds the RFC 8785 bytes exactly as hashed (text, never jsonb: jsonb would reorder keys).
    ``event_hash`` = SHA-256(0x00 || canonical), the RFC 6962 leaf hash; ``prev_hash`` links the chain.
    ``kind``, ``ts``, ``turn`` and ``entity_kind`` are copies for filtering and inspection only.
    """

    id = models.CharField(primary_key=True, max_length=40, editable=False)
    session = models.ForeignKey(Session, on_delete=models.PROTECT, related_name="events", db_index=False)
    seq = models.PositiveBigIntegerField()
    kind = models.CharField(max_length=32)
    ts = models.DateTimeField()
    turn = models.PositiveIntegerField(null=True, blank=True)
    entity_kind = models.CharField(max_length=32, blank=True)
    canonical = models.TextField()
    event_hash = models.CharField(max_length=64)
    prev_hash = models.CharField(max_length=64)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["session", "seq"], name="event_session_seq_unique"),
            models.UniqueConstraint(fields=["session", "prev_hash"], name="event_session_prev_unique"),
        ]
        ordering = ["session", "seq"]

    def __str__(self) -> str:
        return f"{self.session_id}#{self.seq} {self.kind}"


class IdempotencyRecord(models.Model):
    """The answer to one event batch posted with an ``Idempotency-Key``.

    A retry with the same key and the same body gets the stored answer instead of a second append; the same key
    with another body is refused. Written by the ingestion API inside the append's own transaction (under the
    session lock), so a crash can never leave events without their record or a record without its events.
    Keys are unique per session; a session belongs to one account, so a key never crosses accounts.
    ``response_body`` is the append summary (seqs, sizes, hashes): it never holds event contents.
    """

    session = models.ForeignKey(Session, on_delete=models.PROTECT, related_name="idempotency_records", db_index=False)
    key = models.CharField(max_length=255)
    request_sha256 = models.CharField(max_length=64)
    principal = models.CharField(max_length=64)  # key_… or usr_…: who posted the batch
    response_status = models.PositiveSmallIntegerField()
    response_body = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["session", "key"], name="idempotency_session_key_unique")]

    def __str__(self) -> str:
        return f"{self.session_id} idempotency record {self.pk}"
