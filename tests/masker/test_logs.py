"""Log lines keep request data out: tracebacks without exception messages."""

import logging

from masker.logs import WITHHELD, SafeFormatter


def _record_of(exc: BaseException) -> logging.LogRecord:
    try:
        raise exc
    except type(exc) as caught:
        return logging.LogRecord(
            "masker.errors",
            logging.ERROR,
            __file__,
            1,
            "unhandled error",
            (),
            (type(caught), caught, caught.__traceback__),
        )


PHONE = "-".join(["555", "123", "4567"])  # built, so no source line shown in a traceback quotes it


def test_a_traceback_is_logged_without_the_exception_message():
    body = {"external_ref": f"Jane Doe {PHONE}"}
    try:
        try:
            raise KeyError(str(body))
        except KeyError as inner:
            raise ValueError(f"invalid input syntax for type integer: {PHONE}") from inner
    except ValueError as outer:
        record = _record_of(outer)
    text = SafeFormatter("%(message)s").format(record)
    assert PHONE not in text
    assert "Jane Doe" not in text
    assert f"builtins.ValueError {WITHHELD}" in text
    assert f"builtins.KeyError {WITHHELD}" in text
    assert "direct cause" in text
    assert "test_logs.py" in text  # the frames are kept
