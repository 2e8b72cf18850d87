"""A verification's outcome: what was checked (OK), what failed (FAIL), warnings, and the exit status.

Exit status: 0 = verified; 1 = verification failed, every problem named on its own ``FAIL`` line; 2 = the check
asked for could not be run (unreadable file, bad usage). Messages name line numbers, seqs, kinds, ids and report
fields, never the content of an event.
"""

from __future__ import annotations

from typing import IO

EXIT_OK, EXIT_FAILED, EXIT_UNABLE = 0, 1, 2
MAX_PROBLEMS = 25  # printed in full; the rest are counted


class CannotVerify(Exception):
    """The check asked for cannot be run (exit 2): not a verdict on the evidence."""


class Outcome:
    """Problems (verdict: failed), warnings (printed, not fatal) and what was checked (OK lines)."""

    def __init__(self, out: IO[str]):
        self.out = out
        self.problems = 0
        self.signature_unchecked = False  # a signed object was met and its signature not checked (no keys)

    def fail(self, message: str) -> None:
        self.problems += 1
        if self.problems <= MAX_PROBLEMS:
            print(f"FAIL    {message}", file=self.out)

    def warn(self, message: str) -> None:
        print(f"WARNING {message}", file=self.out)

    def ok(self, message: str) -> None:
        print(f"OK      {message}", file=self.out)

    def info(self, message: str) -> None:
        print(f"NOTE    {message}", file=self.out)

    def finish(self, subject: str) -> int:
        """Print the verdict line and return the exit status."""
        if self.problems:
            hidden = self.problems - MAX_PROBLEMS
            if hidden > 0:
                print(f"FAIL    ... and {hidden} more problem(s) not shown", file=self.out)
            print(f"NOT VERIFIED: {subject}: {self.problems} problem(s)", file=self.out)
            return EXIT_FAILED
        suffix = " (signature NOT checked)" if self.signature_unchecked else ""
        print(f"VERIFIED: {subject}{suffix}", file=self.out)
        return EXIT_OK
