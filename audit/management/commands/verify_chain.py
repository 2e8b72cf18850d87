from django.core.management.base import BaseCommand, CommandError

from audit.errors import AuditChainBroken
from audit.models import Session
from audit.walk import verify_session
from masker.ids import is_valid_id


class Command(BaseCommand):
    help = (
        "Walk a session's audit log from its stored bytes with every check a report makes (links, start, end, "
        "recorded head and prefix roots, seal signature). Exit 0 when it verifies."
    )

    def add_arguments(self, parser):
        parser.add_argument("session_id")

    def handle(self, *args, session_id: str, **options):
        session = Session.objects.filter(pk=session_id).first() if is_valid_id("sess", session_id) else None
        if session is None:
            raise CommandError(f"session {session_id} not found")
        try:
            summary = verify_session(session)
        except AuditChainBroken as exc:
            where = f"seq {exc.seq}" if isinstance(exc.seq, int) else exc.seq
            raise CommandError(f"{session.id}: chain BROKEN at {where}: {exc.reason}") from None
        sealed = "sealed, seal signature verified" if session.is_sealed else "open"
        self.stdout.write(
            f"{session.id}: OK size={summary.tree_size} root={summary.merkle_root_hex} head={summary.chain_head_hex} "
            f"({sealed})"
        )
