"""The two-process walk of a long log: this process fetches, leaf-hashes and folds the root (the least any verifying
read does), a forked one checks and tallies a chunk behind (``ChainWalker.check``), so the two halves of the work
overlap on two cores.

A chunk and its hashes go through a pipe (a copy); the checker answers once, at the end (with the walker and the
tally) or at the first break. The child inherits the database connection and never touches it. Between chunks,
this process tells the checker what its fold found: a prefix root that differs from one a report recorded (``A``,
raised by the checker after that chunk's checks, as an in-process walk orders them) and, once a session's chunks
are through, the folded tree itself (``R``), which the checker's walker finishes with.

A walk of many sessions (``audit.walk.WindowWalker``) goes through the same pipe: ``NEXT_SESSION`` among the chunks
tells the checker's walker that the following chunks belong to the next session (``walker.next_session()``), and
this process takes the next session's tree from ``trees``.
"""

import ctypes
import fcntl
import os
import pickle
import signal
import time
from collections.abc import Iterable, Iterator
from contextlib import suppress
from multiprocessing import Pipe
from typing import Any

from audit.errors import AuditChainBroken

# Among a walk's chunks: the chunks that follow belong to the next session (a walk of many sessions).
NEXT_SESSION: list[bytes] = []


def can_fork() -> bool:
    """Whether a two-process walk can help: it needs a second core to run on (this process may be pinned to one)
    and ``fork`` (POSIX). The checker is forked directly (``os.fork``), so a daemonic process -- a Celery prefork
    pool process -- can start it too."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return cores > 1 and hasattr(os, "fork")


def walk_pipelined(walker: Any, chunks: Iterable[list[bytes]], tally: Any, trees: Iterator[Any]) -> tuple[Any, Any]:
    """Walk ``chunks`` with ``walker`` (an ``audit.walk.ChainWalker`` or ``WindowWalker``) and ``tally`` in a forked
    checker, folding each session's root here into the next of ``trees`` (``audit.walk.TreeFold``: the first at
    once for a single session's walk, one per ``NEXT_SESSION`` for a window's); return the checker's walker and
    tally. Raises ``AuditChainBroken`` as the in-process walk would."""
    data_recv, data_send = Pipe(duplex=False)
    result_recv, result_send = Pipe(duplex=False)
    _widen(data_send)
    checker = _fork(_check_in_child, data_recv, result_send, (data_send, result_recv), walker, tally)
    data_recv.close()
    result_send.close()
    try:
        _feed(walker, chunks, trees, data_send, result_recv)
        try:
            outcome = result_recv.recv()
        except EOFError:
            raise RuntimeError("the audit walk's checking process ended without an answer") from None
    finally:
        data_send.close()
        _reap(checker)
        result_recv.close()
    if outcome[0] == "broken":
        raise AuditChainBroken(outcome[1], outcome[2])
    if outcome[0] == "error":
        raise RuntimeError(f"the audit walk's checking process failed: {outcome[1]}")
    return outcome[1], outcome[2]


def _fork(target, *args) -> int:
    """Run ``target(*args)`` in a forked process and return its pid. The child ends with ``os._exit``: none of this
    process's exit handlers run there (nothing closes the database connection it inherited), and signals it
    inherited handlers for (a worker's shutdown handlers) end it as they would any process."""
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        for number in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
            signal.signal(number, signal.SIG_DFL)
        target(*args)
        code = 0
    finally:
        os._exit(code)


def _reap(pid: int, timeout: float = 10.0) -> None:
    """Wait for the checker to end (it answers, then exits); kill it if it has not within ``timeout``."""
    deadline = time.monotonic() + timeout
    try:
        while os.waitpid(pid, os.WNOHANG) == (0, 0):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return
            time.sleep(0.002)
    except ChildProcessError:  # reaped already, by a SIGCHLD handler of the host process
        pass


def _feed(walker: Any, chunks: Iterable[list[bytes]], trees: Iterator[Any], data_send, result_recv) -> None:
    """Send every chunk with its leaf hashes, as two raw messages (pickling them cost both processes more than the
    pipe itself): the hashes, flagged, then the rows joined on newlines. Canonical JSON never holds a raw newline;
    a chunk with a row that does (altered bytes) is pickled as a list instead, so that row is found where it
    stands. Each chunk's hashes are folded into the current tree here; what the fold finds follows the chunk.
    Stops early when the checker has answered (a break)."""
    tree, started = None, False
    try:
        for chunk in chunks:
            if result_recv.poll():
                return
            if chunk is NEXT_SESSION:
                if tree is not None:
                    data_send.send_bytes(b"R" + pickle.dumps(tree, pickle.HIGHEST_PROTOCOL))
                tree, started = next(trees), True
                data_send.send_bytes(b"S")
                continue
            if not started:  # a single session's walk: its chunks come without NEXT_SESSION
                tree, started = next(trees), True
            digests = walker.hash_chunk(chunk)
            joined = b"\n".join(chunk)
            if joined.count(b"\n") == len(chunk) - 1:
                data_send.send_bytes(b"J" + digests)
                data_send.send_bytes(joined)
            else:
                data_send.send_bytes(b"L" + digests)
                data_send.send(chunk)
            if tree is not None:
                try:
                    tree.add(digests)
                except AuditChainBroken:  # at the recorded size just reached; the rest of this session is not folded
                    data_send.send_bytes(b"A" + str(tree.accumulator.size).encode("ascii"))
                    tree = None
        if not started:  # a single session's walk over no chunks at all
            tree = next(trees, None)
        if tree is not None:
            data_send.send_bytes(b"R" + pickle.dumps(tree, pickle.HIGHEST_PROTOCOL))
        data_send.send_bytes(b"")
    except BrokenPipeError:  # the checker stopped at a break
        return


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
            tag = head[:1]
            if tag == b"S":
                walker.next_session()
            elif tag == b"R":
                walker.folded(pickle.loads(head[1:]))  # noqa: S301 (from the parent of this process)
            elif tag == b"A":
                walker.tree_broken(int(head[1:]))
            else:
                chunk = data_recv.recv_bytes().split(b"\n") if tag == b"J" else data_recv.recv()
                events, kinds = walker.check(chunk, head[1:])
                if tally is not None and events:
                    tally.add_events(events, kinds)
        result_send.send(("ok", walker, tally))
    except AuditChainBroken as broken:
        result_send.send(("broken", broken.seq, broken.reason))
    except EOFError:  # the parent gave up (its own error): nobody is waiting for an answer
        pass
    except Exception as exc:  # answered, never left hanging; the type only (no event contents)
        result_send.send(("error", type(exc).__name__))
