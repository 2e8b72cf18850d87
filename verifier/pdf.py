"""Checking a PDF report (placeholder while the reader is written)."""

import argparse

from verifier.outcome import Outcome


def run_pdf(args: argparse.Namespace, outcome: Outcome) -> int:
    raise NotImplementedError
