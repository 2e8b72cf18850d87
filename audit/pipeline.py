"""The two-process walk of a long log: this process fetches and leaf-hashes, a forked one checks, folds and tallies
a chunk behind (``ChainWalker.walk_chunk``), so the two halves of the work overlap on two cores.

A chunk and its hashes go through a pipe (a copy); the checker answers once, at the end (with the walker and the
tally) or at the first break. The child inherits the database connection and never touches it.

A walk of many sessions (``audit.walk.WindowWalker``) goes through the same pipe: ``NEXT_SESSION`` among the chunks
tells the checker's walker that the following chunks belong to the next session (``walker.next_session()``).
"""

import ctypes
import fcntl
import multiprocessing
import os
from collections.abc import Iterable
from contextlib import suppress
from typing import Any

from audit.errors import AuditChainBroken

# Among a walk's chunks: the chunks that follow belong to the next session (a walk of many sessions).
NEXT_SESSION: list[bytes] = []


def can_fork() -> bool:
    """Whether a two-process walk can help: it needs a second core to run on (this process may be pinned to one),
    ``fork`` (POSIX), and a process allowed to start children (a multiprocessing worker is daemonic and is not)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return (
        cores > 1 and "fork" in multiprocessing.get_all_start_methods() and not multiprocessing.current_process().daemon
    )


def walk_pipelined(walker: Any, chunks: Iterable[list[bytes]], tally: Any) -> tuple[Any, Any]:
    """Walk ``chunks`` with ``walker`` (an ``audit.walk.ChainWalker``) and ``tally`` in a forked checker; return the
    checker's walker and tally. Raises ``AuditChainBroken`` as the in-process walk would."""
    context = multiprocessing.get_context("fork")
    data_recv, data_send = context.Pipe(duplex=False)
    result_recv, result_send = context.Pipe(duplex=False)
    _widen(data_send)
    checker = context.Process(
        target=_check_in_child,
        args=(data_recv, result_send, (data_send, result_recv), walker, tally),
        daemon=True,
    )
    checker.start()
    data_recv.close()
    result_send.close()
    try:
        _feed(walker, chunks, data_send, result_recv)
        try:
            outcome = result_recv.recv()
        except EOFError:
            raise RuntimeError("the audit walk's checking process ended without an answer") from None
    finally:
        data_send.close()
        checker.join(timeout=10)
        if checker.is_alive():
            checker.kill()
            checker.join()
        result_recv.close()
    if outcome[0] == "broken":
        raise AuditChainBroken(outcome[1], outcome[2])
    if outcome[0] == "error":
        raise RuntimeError(f"the audit walk's checking process failed: {outcome[1]}")
    return outcome[1], outcome[2]


def _feed(walker: Any, chunks: Iterable[list[bytes]], data_send, result_recv) -> None:
    """Send every chunk with its leaf hashes, as two raw messages (pickling them cost both processes more than the
    pipe itself): the hashes, flagged, then the rows joined on newlines. Canonical JSON never holds a raw newline;
    a chunk with a row that does (altered bytes) is pickled as a list instead, so that row is found where it
    stands. Stops early when the checker has answered (a break)."""
    for chunk in chunks:
        if result_recv.poll():
            return
        if chunk is NEXT_SESSION:
            try:
                data_send.send_bytes(b"S")
            except BrokenPipeError:
                return
            continue
        digests = walker.hash_chunk(chunk)
        joined = b"\n".join(chunk)
        try:
            if joined.count(b"\n") == len(chunk) - 1:
                data_send.send_bytes(b"J" + digests)
                data_send.send_bytes(joined)
            else:
                data_send.send_bytes(b"L" + digests)
                data_send.send(chunk)
        except BrokenPipeError:
            return
    with suppress(BrokenPipeError):  # the checker may have stopped at a break in the last chunk
        data_send.send_bytes(b"")


def _widen(connection_end) -> None:
    """Let ~1 MB (a few chunks) wait in the pipe, so neither process stalls whenever the other is descheduled.
    Linux only; elsewhere the pipe keeps its default size."""
    with suppress(AttributeError, OSError):
        fcntl.fcntl(connection_end.fileno(), fcntl.F_SETPIPE_SZ, 1 << 20)


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters


def _keep_freed_memory() -> None:
    """Let this short-lived process keep what it frees: each chunk's pipe buffers are freed and allocated again,
    and by default glibc hands such memory back to the kernel every time and faults it in again. Elsewhere than
    glibc this changes nothing."""
    with suppress(AttributeError, OSError):
        libc = ctypes.CDLL(None)
        libc.mallopt(_M_TRIM_THRESHOLD, 256 << 20)
        libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20)


def _check_in_child(data_recv, result_send, parent_ends, walker: Any, tally: Any) -> None:
    for end in parent_ends:
        end.close()
    _keep_freed_memory()
    try:
        while head := data_recv.recv_bytes():
            if head == b"S":
                walker.next_session()
                continue
            chunk = data_recv.recv_bytes().split(b"\n") if head[:1] == b"J" else data_recv.recv()
            events, kinds = walker.walk_chunk(chunk, head[1:])
            if tally is not None and events:
                tally.add_events(events, kinds)
        result_send.send(("ok", walker, tally))
    except AuditChainBroken as broken:
        result_send.send(("broken", broken.seq, broken.reason))
    except EOFError:  # the parent gave up (its own error): nobody is waiting for an answer
        pass
    except Exception as exc:  # answered, never left hanging; the type only (no event contents)
        result_send.send(("error", type(exc).__name__))
