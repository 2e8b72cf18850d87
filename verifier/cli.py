"""The command line: ``python3 masker-verify.pyz report|pdf|proof|period|bundle|receipts …`` (see ``--help``).

Every command prints one line per thing it checked (``OK``), per problem (``FAIL``) and per warning, then a
verdict. Exit status: 0 verified; 1 verification failed; 2 the check could not be run (unreadable file, bad
usage). ``main`` is the one entry point, for the archive, ``python3 -m verifier`` and tests alike.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import IO

from verifier import PROG
from verifier.bundle import verify_bundle
from verifier.inputs import close_binary, open_binary, read_json_file, report_object
from verifier.outcome import EXIT_UNABLE, CannotVerify, Outcome
from verifier.pdf import run_pdf
from verifier.period import exports_in_folder, verify_period_report
from verifier.proofs import run_proof
from verifier.receipts import verify_receipts
from verifier.report import check_report_files
from verifier.signatures import load_keys


def run_report(args: argparse.Namespace, outcome: Outcome) -> int:
    report = report_object(read_json_file(args.report, "report"), args.report)
    return check_report_files(outcome, report, events=args.events, keys=args.keys)


def run_period(args: argparse.Namespace, outcome: Outcome) -> int:
    report = report_object(read_json_file(args.report, "report"), args.report)
    keys = load_keys(args.keys) if args.keys else None
    exports = exports_in_folder(args.events_dir) if args.events_dir is not None else None
    verify_period_report(outcome, report, exports, keys)
    return outcome.finish(f"{report.get('scope')} report {report.get('id')}")


def run_bundle(args: argparse.Namespace, outcome: Outcome) -> int:
    return outcome.finish(verify_bundle(outcome, args.bundle, args.keys))


def run_receipts(args: argparse.Namespace, outcome: Outcome) -> int:
    keys = load_keys(args.keys)
    receipts = open_binary(args.receipts, "receipts file")
    try:
        events = open_binary(args.events, "events file")
        try:
            verify_receipts(outcome, receipts, events, keys)
        finally:
            close_binary(events)
    finally:
        close_binary(receipts)
    return outcome.finish(f"receipts {args.receipts} against events {args.events}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Verify Masker compliance reports, evidence bundles, audit-log exports, proofs and receipts "
        "offline, without trusting the server. Exit 0: verified; 1: verification failed (each problem is named); "
        "2: cannot check.",
        epilog=f"Example: {PROG} report masker-report-SESSION.json --events masker-events-SESSION.ndjson "
        "--keys keys.json",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    report = sub.add_parser("report", help="check a JSON report against the events export, its seal and signature")
    report.add_argument("report", help="REPORT.json: the body of GET /api/v1/sessions/{id}/report")
    pdf = sub.add_parser("pdf", help="check a PDF report: its attached JSON as `report` does, and its printed pages")
    pdf.add_argument("pdf", help="REPORT.pdf: the body of GET /api/v1/sessions/{id}/report?format=pdf")
    for command in (report, pdf):
        command.add_argument("--events", required=True, help="EVENTS.ndjson (GET /api/v1/sessions/{id}/events), or -")
        command.add_argument(
            "--keys", help="KEYS.json: the JWKS of GET /api/v1/keys; without it the signatures are NOT checked"
        )
    proof = sub.add_parser("proof", help="check an inclusion or consistency proof as served")
    proof.add_argument("proof", help="PROOF.json: the body of .../events/{seq}/proof or .../consistency")
    proof.add_argument(
        "--report",
        action="append",
        help="a report whose tree_size and root the proof must match (repeat for a consistency proof's two reports)",
    )
    proof.add_argument("--keys", help="KEYS.json: also check the signatures of the --report files")
    proof.add_argument("--event", help="a file holding the proven event's NDJSON line (inclusion proofs)")
    period = sub.add_parser(
        "period",
        help="check a period report (agent or account): its period root, signature "
        "and, with --events-dir, every session's export and the summed figures",
    )
    period.add_argument("report", help="REPORT.json: the body of GET /api/v1/reports or /api/v1/agents/{id}/report")
    period.add_argument("--events-dir", help="a folder of the sessions' exports (masker-events-<session>.ndjson)")
    period.add_argument(
        "--keys", help="KEYS.json: the JWKS of GET /api/v1/keys; without it the signature is NOT checked"
    )
    bundle = sub.add_parser(
        "bundle",
        help="check an evidence bundle (one zip): its signed manifest, every file's "
        "SHA-256, every session's export, the period root and the report's figures",
    )
    bundle.add_argument("bundle", help="EVIDENCE.zip: an evidence bundle of a period report")
    bundle.add_argument(
        "--keys",
        help="KEYS.json: the keys to trust (the JWKS of GET /api/v1/keys, received "
        "separately); without it the bundle's own keys.json is used, which proves the bundle is "
        "whole, not who signed it",
    )
    receipts = sub.add_parser("receipts", help="check signed receipts (one per line) against the events export")
    receipts.add_argument("receipts", help="RECEIPTS.ndjson: the receipt of each start/append/end, one per line")
    receipts.add_argument("events", help="EVENTS.ndjson (GET /api/v1/sessions/{id}/events), or -")
    receipts.add_argument("--keys", required=True, help="KEYS.json: the JWKS of GET /api/v1/keys")
    return parser


COMMANDS = {
    "report": run_report,
    "pdf": run_pdf,
    "proof": run_proof,
    "period": run_period,
    "bundle": run_bundle,
    "receipts": run_receipts,
}


def main(argv: Sequence[str] | None = None, out: IO[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 verified, 1 failed, 2 cannot check). Output goes to
    ``out`` (default: standard output)."""
    out = out or sys.stdout
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or bad usage (2)
        return exc.code if isinstance(exc.code, int) else EXIT_UNABLE
    try:
        return COMMANDS[args.command](args, Outcome(out))
    except CannotVerify as exc:
        print(f"ERROR   {exc}", file=out)
        return EXIT_UNABLE
