from django.core.management.base import BaseCommand

from audit.demo import DEMO_EMAIL, DEMO_PASSWORD, OTHER_EMAIL, OTHER_PASSWORD, seed_demo


class Command(BaseCommand):
    help = "Create the demo accounts, users, policies, agents and sessions (idempotent)."

    def handle(self, *args, **options):
        data = seed_demo()
        self.stdout.write(f"Demo account {data.account.name} ({data.account.id}): {len(data.sessions)} sessions")
        self.stdout.write(f"Other account {data.other_account.name} ({data.other_account.id})")
        self.stdout.write(
            f"Sign in as {DEMO_EMAIL} / {DEMO_PASSWORD}  (other account: {OTHER_EMAIL} / {OTHER_PASSWORD})"
        )
