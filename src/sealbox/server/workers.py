"""Run N uvicorn workers, each on its own SO_REUSEPORT socket.

uvicorn's own multi-worker mode shares one listening socket, and whichever worker is
awake accepts most connections: under keep-alive load one worker did four times the
work of the other. With a socket per worker the kernel spreads connections across
them. The supervisor restarts a worker that dies and stops all of them on SIGINT or
SIGTERM.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
import time
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn

log = logging.getLogger("sealbox")

APP = "sealbox.server.app:create_app"
_STARTUP_GRACE_SECONDS = 10.0
_PR_SET_PDEATHSIG = 1
JOURNAL_SOCKET = "journal.sock"


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def die_with_parent() -> None:
    """Linux: a worker gets SIGTERM when its supervisor dies, even by SIGKILL, so no
    orphaned worker keeps serving (and holding the data directory)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def _serve(host: str, port: int, options: dict[str, Any]) -> None:
    """One worker process: its own socket, one uvicorn server."""
    die_with_parent()
    sock = _bind(host, port)
    config = uvicorn.Config(APP, factory=True, host=host, port=port, **options)
    uvicorn.Server(config).run(sockets=[sock])


def check_port_free(host: str, port: int) -> None:
    """Fail fast, before any worker starts, if something else holds the port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))


def run(
    workers: int, host: str, port: int, options: dict[str, Any], journal_dir: Path | None = None
) -> int:
    """Supervise the workers until asked to stop; returns the exit status.

    With several workers and a journal_dir, the journal process (audit/journal_process)
    runs beside them and makes every worker's audit events durable.
    """
    if workers == 1:
        uvicorn.run(APP, factory=True, host=host, port=port, **options)
        return 0
    check_port_free(host, port)
    ctx = multiprocessing.get_context("spawn")
    stopping = False
    journal = None if journal_dir is None else _Journal(ctx, journal_dir, options)

    def start() -> BaseProcess:
        proc = ctx.Process(target=_serve, args=(host, port, options), name="sealbox-worker")
        proc.start()
        return proc

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    started = time.monotonic()
    if journal is not None:
        try:
            journal.start()
        except OSError as exc:
            log.error("%s; not serving without it", exc)
            journal.stop()
            return 1
    procs = [start() for _ in range(workers)]
    status = 0
    while not stopping:
        time.sleep(0.2)
        if journal is not None and not journal.alive():
            log.warning("the audit journal process exited; restarting it")
            try:
                journal.start()
            except OSError as exc:
                log.error("%s; retrying", exc)  # until then, audited calls fail
        for i, proc in enumerate(procs):
            if proc.is_alive() or stopping:
                continue
            if time.monotonic() - started < _STARTUP_GRACE_SECONDS:
                log.error("a worker failed to start (exit %s); stopping", proc.exitcode)
                stopping, status = True, 1
                break
            log.warning("worker %s exited (%s); restarting it", proc.pid, proc.exitcode)
            procs[i] = start()
    for proc in procs:
        if proc.is_alive() and proc.pid is not None:
            proc.terminate()  # SIGTERM: uvicorn finishes in-flight requests
    for proc in procs:
        proc.join(timeout=30)
        if proc.is_alive():
            proc.kill()
    if journal is not None:
        journal.stop()  # after the workers: their last events are acknowledged
    return status


class _Journal:
    """The journal process: started before the workers, restarted if it dies."""

    def __init__(self, ctx: Any, directory: Path, options: dict[str, Any]) -> None:
        self._ctx = ctx
        self._dir = directory
        # A private directory of its own (mode 0700: only this user may connect), as
        # AF_UNIX paths are limited to 108 bytes and a data directory's may be longer.
        self._socket_dir = Path(tempfile.mkdtemp(prefix="sealbox-journal-"))
        self.socket_path = self._socket_dir / JOURNAL_SOCKET
        self._log_level = str(options.get("log_level", "info"))
        self._proc: BaseProcess | None = None
        # Workers are spawned after this is set, so they inherit it.
        os.environ["SEALBOX_AUDIT_JOURNAL_SOCKET"] = str(self.socket_path)

    def start(self) -> None:
        from sealbox.audit import journal_process

        proc = self._ctx.Process(
            target=journal_process.main,
            args=(self._dir, self.socket_path, self._log_level),
            name="sealbox-journal",
        )
        proc.start()
        self._proc = proc
        deadline = time.monotonic() + _STARTUP_GRACE_SECONDS
        while time.monotonic() < deadline and proc.is_alive():
            if _accepts(self.socket_path):
                return
            time.sleep(0.02)
        raise OSError("the audit journal process did not start")

    def alive(self) -> bool:
        return self._proc is not None and self._proc.is_alive()

    def stop(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(timeout=30)
            if self._proc.is_alive():
                self._proc.kill()
        shutil.rmtree(self._socket_dir, ignore_errors=True)


def _accepts(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
        return True
