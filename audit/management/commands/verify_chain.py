from django.core.management.base import BaseCommand, CommandError

from audit.errors import AuditChainBroken
from audit.models import Session
from audit.walk import verify_session
from masker.ids import is_valid_id


class Command(BaseCommand):
    help = "Re-hash a session's audit log from its stored bytes and check every link. Exit 0 when it verifies."

    def add_arguments(self, parser):
        parser.add_argument("session_id")

    def handle(self, *args, session_id: str, **options):
        session = Session.objects.filter(pk=session_id).first() if is_valid_id("sess", session_id) else None
        if session is None:
            raise CommandError(f"session {session_id} not found")
        try:
            summary = verify_session(session)
        except AuditChainBroken as exc:
            raise CommandError(f"{session.id}: chain BROKEN at seq {exc.seq}: {exc.reason}") from None
        sealed = "sealed" if session.is_sealed else "open"
        if session.is_sealed and session.seal["merkle_root_hex"] != summary.merkle_root_hex:
            raise CommandError(f"{session.id}: root does not match the signed seal")
        self.stdout.write(
            f"{session.id}: OK size={summary.tree_size} root={summary.merkle_root_hex} head={summary.chain_head_hex} "
            f"({sealed})"
        )
