"""Log formatting that keeps request data out of the log.

An exception's message can quote what the client sent (a driver error quoting a value, a parser error quoting a
fragment of the body), and the body may hold PHI. Tracebacks are therefore written with their frames and
exception classes only; the messages are withheld. Our own log lines carry ids, kinds and counts only.
"""

import logging
import traceback

WITHHELD = "(message withheld: it may quote request data)"


class SafeFormatter(logging.Formatter):
    def formatException(self, ei) -> str:
        _, exc, _ = ei
        return "".join(_format(traceback.TracebackException.from_exception(exc))).rstrip("\n")


def _format(te: traceback.TracebackException) -> list[str]:
    lines: list[str] = []
    if te.__cause__ is not None:
        lines += _format(te.__cause__)
        lines.append("\nThe above exception was the direct cause of the following exception:\n\n")
    elif te.__context__ is not None and not te.__suppress_context__:
        lines += _format(te.__context__)
        lines.append("\nDuring handling of the above exception, another exception occurred:\n\n")
    lines.append("Traceback (most recent call last):\n")
    lines += te.stack.format()
    exc_type = te.exc_type
    name = f"{exc_type.__module__}.{exc_type.__qualname__}" if exc_type is not None else "Exception"
    lines.append(f"{name} {WITHHELD}\n")
    return lines
