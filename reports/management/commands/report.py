"""``manage.py report``: an operator's period report (scope agent or account), signed, rendered to a file and
recorded in the report register like a download."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from audit.models import Agent
from masker.errors import ApiError
from masker.ids import is_valid_id
from masker.models import Account
from reports.period import (
    build_period_report,
    parse_window,
    record_period_report,
    render_period_json,
    sign_period_report,
)
from reports.period_rendering import render_period_pdf


class Command(BaseCommand):
    help = (
        "Write a period report: every session of an agent (--agent) or of an account (--account) that started in "
        "[--from, --to), each re-verified. A window without --max-events is bounded by "
        "MASKER_SYNC_REPORT_MAX_EVENTS, as over the API."
    )

    def add_arguments(self, parser):
        subject = parser.add_mutually_exclusive_group(required=True)
        subject.add_argument("--agent", help="agt_… id: the agent's sessions (scope agent)")
        subject.add_argument("--account", help="acc_… id: every agent's sessions (scope account)")
        parser.add_argument("--from", dest="start", help="RFC 3339, inclusive (default: 30 days before --to)")
        parser.add_argument("--to", dest="end", help="RFC 3339, exclusive (default: now)")
        parser.add_argument("--format", choices=("json", "pdf"), default="json")
        parser.add_argument("--output", required=True, help="the file to write ('-' for standard output, JSON)")
        parser.add_argument("--max-events", type=int, help="walk at most this many events (default: the setting)")

    def handle(self, *args, agent, account, start, end, format, output, max_events, **options):
        now = timezone.now()
        try:
            window = parse_window(start, end, now=now)
            agent_row = None
            if agent is not None:
                agent_row = Agent.objects.select_related("account").filter(pk=agent).first()
                if agent_row is None or not is_valid_id("agt", agent):
                    raise CommandError(f"agent {agent} not found")
                account_row = agent_row.account
            else:
                account_row = Account.objects.filter(pk=account).first()
                if account_row is None:
                    raise CommandError(f"account {account} not found")
            report = sign_period_report(
                build_period_report(
                    account_row, agent=agent_row, window=window, generated_at=now, max_events=max_events
                )
            )
        except ApiError as error:
            raise CommandError(f"{error.code}: {error.message}") from None
        if format == "pdf" and output == "-":
            raise CommandError("a PDF needs --output FILE")
        body = render_period_pdf(report) if format == "pdf" else render_period_json(report)
        if output == "-":
            self.stdout.write(body.decode("utf-8"), ending="")
        else:
            Path(output).write_bytes(body)
        record_period_report(report, report_format=format, generated_by="manage.py report")
        summary = report.sections["summary"]
        self.stderr.write(
            f"{report.id}: {report.scope} report, {summary['total_sessions']} session(s), "
            f"{summary['total_events']} event(s), verdict {summary['verdict']}, root {report.merkle_root_hex}"
        )
