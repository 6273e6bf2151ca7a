"""Start, probe and stop the servers under test, and read their CPU accounting from /proc.

Every server started here listens on 127.0.0.1 only, runs in its own session (process
group) and is killed, with all of its descendants, by :meth:`ManagedServer.stop`.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import os
import secrets
import shlex
import signal
import socket
import string
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

CLK_TCK = os.sysconf("SC_CLK_TCK")
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def split_loopback_url(url: str) -> tuple[str, int]:
    """(host, port) of an http:// URL; refuses anything that is not a loopback address."""
    parts = urlsplit(url)
    if parts.scheme != "http":
        raise ValueError(f"only http:// URLs are supported: {url!r}")
    host = parts.hostname or ""
    if host not in LOOPBACK_NAMES:
        try:
            is_loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            is_loopback = False
        if not is_loopback:
            raise ValueError(f"benchmark targets must be on the loopback interface: {url!r}")
    return host, parts.port or 80


# --------------------------------------------------------------------------- CPU accounting


def _read_stat(pid: int) -> tuple[int, int] | None:
    """(ppid, utime+stime+cutime+cstime in ticks) of a live process, or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = data[data.rfind(b")") + 2 :].split()
    # fields[0] is field 3 (state); ppid is field 4; utime..cstime are fields 14..17.
    ppid = int(fields[1])
    ticks = int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
    return ppid, ticks


def process_tree_cpu_seconds(root_pid: int) -> float | None:
    """CPU seconds (user + system) used by ``root_pid`` and all of its live descendants.

    Each process contributes its own utime+stime plus cutime+cstime (children it has
    already reaped), so a worker that was replaced during a measurement is not lost.
    Returns None if ``root_pid`` does not exist.
    """
    root = _read_stat(root_pid)
    if root is None:
        return None
    stats: dict[int, tuple[int, int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _read_stat(int(entry))
            if st is not None:
                stats[int(entry)] = st
    stats[root_pid] = root
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    total = 0
    stack = [root_pid]
    seen: set[int] = set()
    while stack:  # bounded: each pid is visited at most once
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        total += stats[pid][1]
        stack.extend(children.get(pid, ()))
    return total / CLK_TCK


def system_busy_seconds() -> float | None:
    """Machine-wide non-idle CPU seconds (all cores) from /proc/stat, incl. steal.

    Compared with the server's and the client's own CPU over a cell it shows how much CPU
    something else on the machine took (a noisy neighbour makes figures unreliable).
    """
    try:
        with open("/proc/stat", "rb") as f:
            first = f.readline().split()
    except OSError:
        return None
    # cpu user nice system idle iowait irq softirq steal guest guest_nice
    vals = [int(v) for v in first[1:9]]
    busy = vals[0] + vals[1] + vals[2] + vals[5] + vals[6] + vals[7]
    return busy / CLK_TCK


# --------------------------------------------------------------------------- servers


@dataclass
class ManagedServer:
    """A server under test: one we started (``proc`` set) or an already-running one."""

    name: str
    url: str
    pid: int | None
    access_key: str
    secret_key: str
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    cleanup: list[Path] = field(default_factory=list)

    @property
    def host_port(self) -> tuple[str, int]:
        return split_loopback_url(self.url)

    def cpu_seconds(self) -> float | None:
        return None if self.pid is None else process_tree_cpu_seconds(self.pid)

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the whole process group of a server we started (no-op otherwise)."""
        proc = self.proc
        if proc is None:
            return
        self.proc = None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=timeout)
        # Descendants may outlive a parent that exited: always sweep the group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)

    def log_tail(self, n: int = 40) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        lines = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(lines[-n:])


def http_get_status(host: str, port: int, path: str, timeout: float = 2.0) -> int | None:
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def wait_ready(server: ManagedServer, path: str, timeout: float, need_200: bool = True) -> None:
    """Poll ``path`` until the server answers (200, or anything when ``need_200`` is false)."""
    host, port = server.host_port
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc is not None and server.proc.poll() is not None:
            raise RuntimeError(
                f"{server.name} exited with code {server.proc.returncode} during startup:\n"
                + server.log_tail()
            )
        status = http_get_status(host, port, path)
        if status is not None and (status == 200 or not need_200):
            return
        time.sleep(0.1)
    raise TimeoutError(
        f"{server.name} at {server.url} not ready after {timeout:.0f}s "
        f"(GET {path}):\n" + server.log_tail()
    )


def _spawn(
    name: str, argv: list[str], env: dict[str, str], log_path: Path
) -> subprocess.Popen[bytes]:
    print(f"[bench] starting {name}: {shlex.join(argv)}", file=sys.stderr)
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # own process group: killpg reaches every worker
        )


def start_moto(work_dir: Path, startup_timeout: float) -> ManagedServer:
    port = free_port()
    log_path = work_dir / "moto.log"
    argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    proc = _spawn("moto", argv, dict(os.environ), log_path)
    server = ManagedServer(
        name="moto",
        url=f"http://127.0.0.1:{port}",
        pid=proc.pid,
        access_key="testing",
        secret_key="testing",
        proc=proc,
        log_path=log_path,
    )
    try:
        wait_ready(server, "/moto-api/", startup_timeout, need_200=False)
    except BaseException:
        server.stop()
        raise
    return server


def random_credentials() -> tuple[str, str]:
    upper = string.ascii_uppercase + string.digits
    access = "AKIA" + "".join(secrets.choice(upper) for _ in range(16))
    secret = secrets.token_urlsafe(30)[:40]
    return access, secret


def start_sealbox(
    work_dir: Path,
    startup_timeout: float,
    command: str,
    extra_args: list[str],
) -> ManagedServer:
    port = free_port()
    data_dir = work_dir / "sealbox-data"
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = work_dir / "sealbox.log"
    access, secret = random_credentials()
    env = dict(os.environ)
    env["SEALBOX_ROOT_ACCESS_KEY_ID"] = access
    env["SEALBOX_ROOT_SECRET_ACCESS_KEY"] = secret
    argv = [
        *shlex.split(command),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        *extra_args,
    ]
    proc = _spawn("sealbox", argv, env, log_path)
    server = ManagedServer(
        name="sealbox",
        url=f"http://127.0.0.1:{port}",
        pid=proc.pid,
        access_key=access,
        secret_key=secret,
        proc=proc,
        log_path=log_path,
    )
    try:
        wait_ready(server, "/_sealbox/health", startup_timeout, need_200=True)
    except BaseException:
        server.stop()
        raise
    return server


def start_null_server(
    work_dir: Path, startup_timeout: float, work_us: float = 0.0, workers: int = 1
) -> ManagedServer:
    """The trivial HTTP server of bench/nullserver.py, for calibrating the load generator."""
    port = free_port()
    log_path = work_dir / "nullserver.log"
    script = Path(__file__).resolve().with_name("nullserver.py")
    argv = [sys.executable, str(script), "--port", str(port)]
    argv += ["--work-us", str(work_us), "--workers", str(workers)]
    proc = _spawn("null server", argv, dict(os.environ), log_path)
    server = ManagedServer(
        name="null",
        url=f"http://127.0.0.1:{port}",
        pid=proc.pid,
        access_key="testing",
        secret_key="testing",
        proc=proc,
        log_path=log_path,
    )
    try:
        wait_ready(server, "/", startup_timeout, need_200=True)
    except BaseException:
        server.stop()
        raise
    return server
