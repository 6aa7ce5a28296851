"""The server's side of the SQL worker processes: start, feed, time-limit, kill, restart.

Each SQL call takes an idle worker (starting one, up to ``size``), brings its copy of the
data up to date (``Snapshot``: only the views the statement reads, and only what changed), sends the
request and waits at most the time limit plus ``KILL_GRACE`` for the answer. A worker that
has not answered by then is killed (``SIGKILL``) and the call fails with a time-out; one that
died (its address space is capped, see ``worker``) fails the call with an out-of-memory
error. Either way the next call starts a fresh worker, and the server never stopped serving.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
import threading
import time
import weakref
from typing import Any

from mcp_state.errors import (
    DatabaseUnavailableError,
    InvalidArgumentError,
    InvalidSQLError,
    NotFoundError,
    QueryTimeoutError,
    StateError,
    WorkerDiedError,
)
from mcp_state.sql.snapshot import Snapshot, TableState
from mcp_state.sql.worker import FRAME_HEADER, write_frame

# The worker is killed this long after the time limit if DuckDB's interrupt did not stop it.
KILL_GRACE = 0.5
START_TIMEOUT = 30.0
LOAD_TIMEOUT = 60.0
# Requests sent to a worker before its answers are read (each answer is a few bytes of a pipe).
PIPELINE = 64

_ERRORS: dict[str, type[StateError]] = {
    cls.kind: cls for cls in (InvalidSQLError, QueryTimeoutError, NotFoundError, InvalidArgumentError)
}


class Worker:
    """One worker process and the fingerprints of the tables it holds."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mcp_state.sql.worker", json.dumps(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,  # unbuffered: select() on the pipe sees every byte not yet read
            stderr=subprocess.DEVNULL,
            cwd="/",
            close_fds=True,
            start_new_session=True,  # a Ctrl-C meant for the server is the server's to handle
        )
        self.loaded: dict[str, TableState] = {}
        self.info: dict[str, Any] = self.call(None, START_TIMEOUT)

    @property
    def pid(self) -> int:
        return self.process.pid

    def call(self, request: dict[str, Any] | None, seconds: float) -> Any:
        """Send ``request`` (None: only read) and return the answer, within ``seconds``."""
        if request is not None:
            self.send(request)
        return self.receive(seconds)

    def send(self, request: dict[str, Any]) -> None:
        """Send ``request`` without waiting for its answer (``receive`` reads the answers in order)."""
        assert self.process.stdin is not None
        parts = request.get("parts")
        if parts is not None:
            request = {key: value for key, value in request.items() if key != "parts"}
        try:
            write_frame(self.process.stdin, request, parts)
        except OSError:
            self.kill()
            raise WorkerDiedError("died") from None

    def receive(self, seconds: float) -> Any:
        """The next answer, within ``seconds``."""
        assert self.process.stdout is not None
        try:
            deadline = time.monotonic() + seconds
            header = _read_exact(self.process.stdout, FRAME_HEADER.size, deadline)
            body = (
                None
                if header is None
                else _read_exact(self.process.stdout, FRAME_HEADER.unpack(header)[0], deadline)
            )
            reply = None if body is None else json.loads(body)
        except (OSError, ValueError):
            reply = None
        if reply is None:
            timed_out = self.process.poll() is None
            self.kill()
            raise WorkerDiedError("timeout" if timed_out else "died")
        if "ok" in reply:
            return reply["ok"]
        raise _error(str(reply.get("error")), str(reply.get("message", "")))

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()

    @property
    def alive(self) -> bool:
        return self.process.poll() is None


class WorkerPool:
    """Up to ``size`` workers, each serving one call at a time."""

    def __init__(self, config: dict[str, Any], size: int) -> None:
        self.config = config
        self.size = max(1, size)
        self._idle: list[Worker] = []
        self._busy = 0
        self._state = threading.Condition()
        self._closed = False
        self._starting = 0
        self._finalizer = weakref.finalize(self, _kill_all, self._idle)

    def run(
        self,
        snapshot: Snapshot,
        request: dict[str, Any],
        timeout: float,
        wanted: frozenset[str] | None = None,
    ) -> Any:
        """``request`` on a worker whose copies of ``wanted`` (None: every view) are up to date."""
        worker = self._acquire()
        healthy = False
        try:
            self._sync(worker, snapshot, wanted)
            try:
                result = worker.call(request, timeout + KILL_GRACE)
            except WorkerDiedError as died:
                if str(died) == "timeout":
                    raise QueryTimeoutError(
                        f"the query ran longer than the {timeout:g} s time limit and was stopped; narrow it: "
                        "filter with WHERE, aggregate, or read fewer rows"
                    ) from None
                raise InvalidSQLError(
                    "the query needs more memory than the SQL tool allows and was stopped; aggregate, "
                    "filter with WHERE or select fewer columns"
                ) from None
            healthy = True
            return result
        except StateError:
            healthy = worker.alive
            raise
        finally:
            self._release(worker, healthy)

    def _sync(self, worker: Worker, snapshot: Snapshot, wanted: frozenset[str] | None) -> None:
        """Bring the worker's copy of the data up to date with the database.

        Pipelined: the worker loads one chunk while the next is read from the database; its
        answers (short) are read once all is sent, or every ``PIPELINE`` requests."""
        sent = 0
        try:
            for request in snapshot.changes(worker.loaded, wanted):
                if request["op"] == "state":
                    for _ in range(sent):
                        worker.receive(LOAD_TIMEOUT)
                    worker.loaded = request["state"]
                    return
                worker.send(request)
                sent += 1
                if sent >= PIPELINE:
                    for _ in range(sent):
                        worker.receive(LOAD_TIMEOUT)
                    sent = 0
        except WorkerDiedError:
            raise DatabaseUnavailableError(
                "the SQL tool could not load a copy of the data within its memory ceiling; "
                "retry, or give the SQL tool more memory (SqlEngine memory_ceiling)"
            ) from None
        except BaseException:
            worker.kill()  # answers may be left unread: it cannot serve another call
            raise

    def _acquire(self) -> Worker:
        with self._state:
            while True:
                if self._closed:
                    raise DatabaseUnavailableError("the SQL tool was shut down")
                while self._idle:
                    worker = self._idle.pop()
                    if worker.alive:
                        self._busy += 1
                        self._top_up()
                        return worker
                if self._busy + self._starting < self.size:
                    self._busy += 1
                    break
                self._state.wait()
        try:
            return Worker(self.config)
        except BaseException:
            with self._state:
                self._busy -= 1
                self._state.notify()
            raise

    def _release(self, worker: Worker, healthy: bool) -> None:
        if not healthy:
            worker.kill()
        with self._state:
            self._busy -= 1
            if healthy and not self._closed:
                self._idle.append(worker)
            elif self._closed:
                worker.kill()
            self._top_up()
            self._state.notify()

    def _top_up(self) -> None:
        """Start one more worker in the background while fewer than ``size`` exist (under
        ``_state``): the next concurrent call, or the one after a kill, finds it ready."""
        if self._closed or self._busy + len(self._idle) + self._starting >= self.size:
            return
        self._starting += 1
        threading.Thread(target=self._start_one, name="mcp-state-sql-worker-start", daemon=True).start()

    def _start_one(self) -> None:
        worker: Worker | None = None
        try:
            worker = Worker(self.config)
        except Exception:
            worker = None  # the next call starts one itself and reports why it cannot
        with self._state:
            self._starting -= 1
            if worker is not None:
                if self._closed:
                    worker.kill()
                else:
                    self._idle.append(worker)
            self._state.notify()

    def pids(self) -> list[int]:
        with self._state:
            return [w.pid for w in self._idle if w.alive]

    def close(self) -> None:
        with self._state:
            self._closed = True
            idle, self._idle[:] = list(self._idle), []
            self._state.notify_all()
        for worker in idle:
            worker.kill()


def _read_exact(stream: Any, size: int, deadline: float) -> bytes | None:
    """``size`` bytes from the unbuffered ``stream``, or None at its end or at ``deadline``."""
    chunks: list[bytes] = []
    while size > 0:
        ready, _, _ = select.select([stream], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            return None
        chunk = stream.read(size)
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _kill_all(workers: list[Worker]) -> None:
    for worker in list(workers):
        worker.kill()


def _error(kind: str, message: str) -> StateError:
    if kind in _ERRORS:
        return _ERRORS[kind](message)
    if kind == "out_of_memory":
        return InvalidSQLError(
            "the query needs more memory than the SQL tool allows; aggregate, filter with WHERE or select fewer columns"
        )
    return InvalidSQLError(f"the query could not be run: {message}")


def default_workers() -> int:
    return max(1, min(2, os.cpu_count() or 1))
