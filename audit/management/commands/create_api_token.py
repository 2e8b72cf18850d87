from django.core.management.base import BaseCommand, CommandError

from masker.ids import is_valid_id
from masker.models import Account, ApiToken


class Command(BaseCommand):
    help = (
        "Issue an API token for an account and print its mk_… secret on stdout (shown once; only its hash is "
        "stored). The token's id and scopes go to stderr, so `TOKEN=$(manage.py create_api_token …)` works."
    )

    def add_arguments(self, parser):
        parser.add_argument("--account", required=True, help="acc_… id of the account")
        parser.add_argument(
            "--scopes",
            nargs="+",
            required=True,
            choices=ApiToken.SCOPES,
            metavar="SCOPE",
            help=f"one or more of: {', '.join(ApiToken.SCOPES)}",
        )
        parser.add_argument("--name", default="", help="a label, e.g. 'proxy-prod' (no secrets, no PHI)")

    def handle(self, *args, account: str, scopes: list[str], name: str, **options):
        found = Account.objects.filter(pk=account).first() if is_valid_id("acc", account) else None
        if found is None:
            raise CommandError(f"account {account} not found")
        if len(name) > 200:
            raise CommandError("--name is at most 200 characters")
        token, secret = ApiToken.issue(account=found, scopes=scopes, name=name)
        self.stdout.write(secret)
        self.stderr.write(f"issued {token.id} for {found.id} with scopes {' '.join(token.scopes)}", style_func=str)
