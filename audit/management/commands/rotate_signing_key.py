from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from audit.signing import current_key, retire_public_key, rotate_key


class Command(BaseCommand):
    help = (
        "Rotate the Ed25519 signing key: publish the current public key as retired (old reports and seals keep "
        "verifying with it, GET /api/v1/keys lists it) and switch new signatures to a fresh key. With "
        "--retire-current, only publish the current key as retired (for a key given in MASKER_SIGNING_KEY: run "
        "this, then replace the variable)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--retire-current",
            action="store_true",
            help="only publish the current public key as retired; do not create a new key",
        )

    def handle(self, *args, retire_current: bool, **options):
        try:
            if retire_current:
                key = current_key()
                path = retire_public_key(key.public_key)
                self.stdout.write(f"published {key.kid} as retired ({path}); it still signs until replaced")
                return
            old_kid, new_kid = rotate_key()
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"rotated: {old_kid} retired (still published), {new_kid} now signs")
