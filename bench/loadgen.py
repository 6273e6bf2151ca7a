"""Load generators for the KMS benchmark.

Two ways to drive a server:

* the *lean* generator: requests are SigV4-signed once with botocore (a pool of distinct
  requests per cell), serialised to bytes, and replayed over persistent HTTP/1.1 keep-alive
  connections. Each "client thread" of the benchmark is one connection with one request in
  flight, run either in its own process (``mode="processes"``) or as a thread of this
  process (``mode="threads"``). The wire side is either a tiny raw-socket HTTP/1.1 client
  (``engine="raw"``) or :mod:`http.client` (``engine="httpclient"``).
* plain boto3 clients, one per thread, for comparison.

Every loop is bounded by a deadline and by an operation count. Client CPU time is the
load generator's own user+system time over the measured window (per worker process via
getrusage, plus this process).
"""

from __future__ import annotations

import array
import contextlib
import http.client
import json
import math
import multiprocessing as mp
import queue
import resource
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from bench.servers import split_loopback_url, system_busy_seconds

START_DELAY_S = 0.05  # workers are released this long after the start time is published
STARTUP_TIMEOUT_S = 60.0  # connect + warm-up budget for all workers of a cell
MAX_CONSECUTIVE_FAILURES = 200  # a worker whose transport keeps failing gives up
ERROR_SAMPLES = 3


# --------------------------------------------------------------------------- signing


@dataclass(frozen=True)
class SignedRequest:
    """One pre-signed request: what http.client needs, and the same request as raw bytes."""

    path: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    raw: bytes


def presign(
    url: str,
    region: str,
    access_key: str,
    secret_key: str,
    target: str,
    payloads: Sequence[Mapping[str, Any]],
    service: str = "kms",
) -> list[SignedRequest]:
    """Sign one AWS JSON 1.1 request per payload (``X-Amz-Target: TrentService.<target>``).

    The headers signed are the ones botocore itself signs for KMS (Host, Content-Type,
    X-Amz-Target, X-Amz-Date); Content-Length is added afterwards, as botocore does.
    """
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    host, port = split_loopback_url(url)
    netloc = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
    signer = SigV4Auth(Credentials(access_key, secret_key), service, region)
    out: list[SignedRequest] = []
    for payload in payloads:
        body = json.dumps(payload, separators=(",", ":")).encode()
        req = AWSRequest(
            method="POST",
            url=f"http://{netloc}/",
            data=body,
            headers={
                "Host": netloc,
                "Content-Type": "application/x-amz-json-1.1",
                "X-Amz-Target": f"TrentService.{target}",
            },
        )
        signer.add_auth(req)
        headers = tuple((str(k), str(v)) for k, v in req.headers.items())
        head = "POST / HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
        head += f"Content-Length: {len(body)}\r\n\r\n"
        out.append(SignedRequest("/", headers, body, head.encode("latin-1") + body))
    return out


# --------------------------------------------------------------------------- connections


class Connection(Protocol):
    def roundtrip(self, req: SignedRequest) -> tuple[int, bytes]: ...

    def close(self) -> None: ...


class RawConnection:
    """A minimal HTTP/1.1 keep-alive client: sends pre-serialised bytes, reads one response.

    Handles Content-Length and chunked bodies and ``Connection: close``; reconnects lazily.
    """

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.addr = (host, port)
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self.buf = b""

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(self.addr, timeout=self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        self.buf = b""
        return sock

    def close(self) -> None:
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.close()
        self.sock = None
        self.buf = b""

    def _recv(self, sock: socket.socket) -> bytes:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        return chunk

    def roundtrip(self, req: SignedRequest) -> tuple[int, bytes]:
        sock = self.sock or self._connect()
        sock.sendall(req.raw)
        buf = self.buf
        end = buf.find(b"\r\n\r\n")
        while end < 0:
            buf += self._recv(sock)
            end = buf.find(b"\r\n\r\n")
            if end < 0 and len(buf) > 65536:
                raise ValueError("response header too large")
        head = buf[:end].lower()
        rest = buf[end + 4 :]
        if not head.startswith(b"http/1."):
            raise ValueError(f"bad status line: {head[:40]!r}")
        status = int(head[9:12])
        will_close = b"\r\nconnection: close" in head or head.startswith(b"http/1.0")
        pos = head.find(b"\r\ncontent-length:")
        if pos >= 0:
            stop = head.find(b"\r\n", pos + 2)
            length = int(head[pos + 17 : stop if stop >= 0 else len(head)])
            while len(rest) < length:
                rest += self._recv(sock)
            body, self.buf = rest[:length], rest[length:]
        elif b"\r\ntransfer-encoding: chunked" in head:
            body, self.buf = self._read_chunked(sock, rest)
        elif status in (204, 304) or 100 <= status < 200:
            body, self.buf = b"", rest
        else:  # body delimited by connection close
            parts = [rest]
            with contextlib.suppress(ConnectionError):
                while True:
                    parts.append(self._recv(sock))
            body = b"".join(parts)
            will_close = True
        if will_close:
            self.close()
        return status, body

    def _read_chunked(self, sock: socket.socket, rest: bytes) -> tuple[bytes, bytes]:
        body = bytearray()
        while True:
            nl = rest.find(b"\r\n")
            while nl < 0:
                rest += self._recv(sock)
                nl = rest.find(b"\r\n")
            size = int(rest[:nl].split(b";")[0], 16)
            rest = rest[nl + 2 :]
            if size == 0:  # optional trailers, then an empty line
                while not rest.startswith(b"\r\n") and b"\r\n\r\n" not in rest:
                    rest += self._recv(sock)
                end = 2 if rest.startswith(b"\r\n") else rest.index(b"\r\n\r\n") + 4
                return bytes(body), rest[end:]
            while len(rest) < size + 2:
                rest += self._recv(sock)
            body += rest[:size]
            rest = rest[size + 2 :]


class HttpClientConnection:
    """The same replay through :mod:`http.client` (keep-alive, reopened when closed)."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.conn = http.client.HTTPConnection(host, port, timeout=timeout)

    def close(self) -> None:
        self.conn.close()

    def roundtrip(self, req: SignedRequest) -> tuple[int, bytes]:
        self.conn.request("POST", req.path, body=req.body, headers=dict(req.headers))
        resp = self.conn.getresponse()
        body = resp.read()
        if resp.will_close:
            self.conn.close()
        return resp.status, body


def make_connection(engine: str, host: str, port: int, timeout: float) -> Connection:
    if engine == "raw":
        return RawConnection(host, port, timeout)
    if engine == "httpclient":
        return HttpClientConnection(host, port, timeout)
    raise ValueError(f"unknown engine {engine!r}")


# --------------------------------------------------------------------------- results


@dataclass
class WorkerResult:
    index: int
    ok: int = 0
    errors: int = 0
    latencies: bytes = b""  # array('d') of successful request latencies, seconds
    statuses: dict[int, int] = field(default_factory=dict)  # -1 = transport error
    error_samples: list[str] = field(default_factory=list)
    warmup_errors: int = 0
    t_start: float = 0.0
    t_end: float = 0.0
    cpu_s: float = 0.0  # this worker process's CPU over the window (process mode only)
    started: bool = False


@dataclass
class CellResult:
    """The outcome of one (server, op, concurrency) cell."""

    concurrency: int
    client: str  # "lean/processes/raw", "boto3", ...
    ok: int
    errors: int
    wall_s: float
    latencies: list[float]  # sorted, seconds, successful requests only
    client_cpu_s: float
    server_cpu_s: float | None
    system_busy_s: float | None  # whole machine, non-idle, over the same window
    statuses: dict[str, int]
    error_samples: list[str]
    warmup_errors: int

    @property
    def requests(self) -> int:
        return self.ok + self.errors

    @property
    def ops_per_s(self) -> float:
        return self.ok / self.wall_s if self.wall_s > 0 else 0.0

    def percentile_ms(self, q: float) -> float | None:
        """Nearest-rank percentile of successful-request latency, in ms."""
        lat = self.latencies
        if not lat:
            return None
        rank = max(1, math.ceil(q / 100.0 * len(lat)))
        return lat[rank - 1] * 1000.0

    @property
    def other_cores(self) -> float | None:
        """Cores used by everything but the server and the load generator during the cell."""
        if self.system_busy_s is None or self.server_cpu_s is None or self.wall_s <= 0:
            return None
        other = self.system_busy_s - self.server_cpu_s - self.client_cpu_s
        return max(0.0, other) / self.wall_s

    @property
    def server_cpu_ms_per_op(self) -> float | None:
        if self.server_cpu_s is None or self.requests == 0:
            return None
        return self.server_cpu_s * 1000.0 / self.requests

    @property
    def client_cpu_ms_per_op(self) -> float | None:
        if self.requests == 0:
            return None
        return self.client_cpu_s * 1000.0 / self.requests

    def summary(self) -> dict[str, Any]:
        return {
            "concurrency": self.concurrency,
            "client": self.client,
            "ok": self.ok,
            "errors": self.errors,
            "wall_s": round(self.wall_s, 4),
            "ops_per_s": round(self.ops_per_s, 2),
            "p50_ms": _round(self.percentile_ms(50)),
            "p99_ms": _round(self.percentile_ms(99)),
            "max_ms": _round(self.percentile_ms(100)),
            "server_cpu_s": _round(self.server_cpu_s),
            "server_cpu_ms_per_op": _round(self.server_cpu_ms_per_op),
            "server_cores": _round(
                None if self.server_cpu_s is None else self.server_cpu_s / self.wall_s
            ),
            "client_cpu_s": _round(self.client_cpu_s),
            "client_cpu_ms_per_op": _round(self.client_cpu_ms_per_op),
            "client_cores": _round(self.client_cpu_s / self.wall_s if self.wall_s else None),
            "other_cores": _round(self.other_cores),
            "statuses": self.statuses,
            "error_samples": self.error_samples,
            "warmup_errors": self.warmup_errors,
        }


def _round(v: float | None, nd: int = 4) -> float | None:
    return None if v is None else round(v, nd)


def _rusage_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


# --------------------------------------------------------------------------- the driving loop


@dataclass(frozen=True)
class DriveParams:
    n_requests: int  # size of the request pool cycled through
    duration_s: float
    max_ops: int  # per worker
    warmup: int  # requests per worker before the clock starts (not measured)


# do_request(i) -> (status, body); raises on transport failure.
DoRequest = Callable[[int], tuple[int, bytes]]


def _drive(
    params: DriveParams,
    index: int,
    do_request: DoRequest,
    reset: Callable[[], None],
    wait_start: Callable[[], float | None],
    measure_cpu: bool,
) -> WorkerResult:
    res = WorkerResult(index=index)
    statuses: Counter[int] = Counter()
    n = params.n_requests
    pos = (index * 7) % n

    def note_error(status: int, detail: str) -> None:
        statuses[status] += 1
        if len(res.error_samples) < ERROR_SAMPLES:
            res.error_samples.append(f"[{status}] {detail[:300]}")

    for _ in range(params.warmup):
        try:
            status, body = do_request(pos)
            if status != 200:
                res.warmup_errors += 1
                note_error(status, body.decode("utf-8", "replace"))
        except Exception as exc:  # transport failure: reported, not fatal
            res.warmup_errors += 1
            note_error(-1, repr(exc))
            reset()
        pos = (pos + 1) % n
    statuses.clear()  # warm-up statuses are not part of the measurement

    start = wait_start()
    if start is None:
        return res
    now = time.monotonic()
    if start > now:
        time.sleep(start - now)
    deadline = start + params.duration_s
    res.started = True
    res.t_start = time.monotonic()
    cpu0 = _rusage_cpu() if measure_cpu else 0.0
    lat = array.array("d")
    clock = time.monotonic
    ok = errors = consecutive_failures = 0
    max_ops = params.max_ops
    while ok + errors < max_ops:
        t0 = clock()
        if t0 >= deadline:
            break
        try:
            status, body = do_request(pos)
        except Exception as exc:
            errors += 1
            consecutive_failures += 1
            note_error(-1, repr(exc))
            reset()
            if consecutive_failures >= MAX_CONSECUTIVE_FAILURES:
                break
            time.sleep(0.001)
        else:
            if status == 200:
                lat.append(clock() - t0)
                ok += 1
            else:
                errors += 1
                note_error(status, body.decode("utf-8", "replace"))
            consecutive_failures = 0
        pos += 1
        if pos == n:
            pos = 0
    res.t_end = clock()
    if measure_cpu:
        res.cpu_s = _rusage_cpu() - cpu0
    if ok:
        statuses[200] += ok
    res.ok, res.errors = ok, errors
    res.statuses = dict(statuses)
    res.latencies = lat.tobytes()
    return res


def _collect(
    results: Sequence[WorkerResult],
    concurrency: int,
    client: str,
    client_cpu_s: float,
    server_cpu_s: float | None,
    system_busy_s: float | None,
    start: float,
) -> CellResult:
    lat = array.array("d")
    statuses: Counter[int] = Counter()
    samples: list[str] = []
    ends = [r.t_end for r in results if r.started]
    for r in results:
        lat.frombytes(r.latencies)
        statuses.update(r.statuses)
        samples.extend(r.error_samples)
    missing = concurrency - len([r for r in results if r.started])
    if missing:
        samples.append(f"{missing} worker(s) never started")
    return CellResult(
        concurrency=concurrency,
        client=client,
        ok=sum(r.ok for r in results),
        errors=sum(r.errors for r in results) + missing,
        wall_s=(max(ends) - start) if ends else 0.0,
        latencies=sorted(lat),
        client_cpu_s=client_cpu_s,
        server_cpu_s=server_cpu_s,
        system_busy_s=system_busy_s,
        statuses={str(k): v for k, v in sorted(statuses.items())},
        error_samples=samples[:ERROR_SAMPLES],
        warmup_errors=sum(r.warmup_errors for r in results),
    )


def _delta(snapshot: Callable[[], float | None], before: float | None) -> float | None:
    after = snapshot()
    return None if before is None or after is None else after - before


# --------------------------------------------------------------------------- threads


def run_threads(
    concurrency: int,
    params: DriveParams,
    make_worker: Callable[[int], tuple[DoRequest, Callable[[], None], Callable[[], None]]],
    client: str,
    server_cpu: Callable[[], float | None],
) -> CellResult:
    """Run ``concurrency`` threads in this process; ``make_worker(i)`` gives each one its
    (do_request, reset, close) triple. Client CPU = this process's CPU over the window."""
    ready: queue.Queue[int] = queue.Queue()
    go = threading.Event()
    start_box: list[float | None] = [None]
    results: list[WorkerResult] = []
    lock = threading.Lock()

    def body(i: int) -> None:
        do_request, reset, close = make_worker(i)

        def wait_start() -> float | None:
            ready.put(i)
            if not go.wait(STARTUP_TIMEOUT_S + params.duration_s):
                return None
            return start_box[0]

        try:
            r = _drive(params, i, do_request, reset, wait_start, measure_cpu=False)
        except Exception as exc:
            r = WorkerResult(index=i, error_samples=[f"worker crashed: {exc!r}"])
        finally:
            close()
        with lock:
            results.append(r)

    threads = [
        threading.Thread(target=body, args=(i,), name=f"load-{i}", daemon=True)
        for i in range(concurrency)
    ]
    for t in threads:
        t.start()
    try:
        _wait_ready(ready, concurrency)
        srv0 = server_cpu()
        sys0 = system_busy_seconds()
        cpu0 = _rusage_cpu()
        start = time.monotonic() + START_DELAY_S
        start_box[0] = start
        go.set()
        join_deadline = start + params.duration_s + STARTUP_TIMEOUT_S
        for t in threads:
            t.join(max(0.0, join_deadline - time.monotonic()))
        cpu1 = _rusage_cpu()
        srv = _delta(server_cpu, srv0)
        sysb = _delta(system_busy_seconds, sys0)
    finally:
        go.set()  # release anyone still waiting (start_box None => they return at once)
    with lock:
        done = list(results)
    return _collect(done, concurrency, client, cpu1 - cpu0, srv, sysb, start)


def _wait_ready(ready: Any, n: int) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    for _ in range(n):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("load workers did not become ready in time")
        try:
            ready.get(timeout=remaining)
        except queue.Empty:
            raise TimeoutError("load workers did not become ready in time") from None


# --------------------------------------------------------------------------- processes


@dataclass(frozen=True)
class LeanTarget:
    host: str
    port: int
    requests: Sequence[SignedRequest]
    engine: str
    timeout_s: float


def _lean_worker_parts(
    target: LeanTarget, index: int
) -> tuple[DoRequest, Callable[[], None], Callable[[], None]]:
    conn = make_connection(target.engine, target.host, target.port, target.timeout_s)
    reqs = target.requests

    def do_request(i: int) -> tuple[int, bytes]:
        return conn.roundtrip(reqs[i])

    return do_request, conn.close, conn.close


def _process_main(
    target: LeanTarget,
    params: DriveParams,
    index: int,
    ready_q: Any,
    result_q: Any,
    go: Any,
    start_val: Any,
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and cleans up
    do_request, reset, close = _lean_worker_parts(target, index)
    announced = False

    def wait_start() -> float | None:
        nonlocal announced
        announced = True
        ready_q.put(index)
        if not go.wait(STARTUP_TIMEOUT_S + params.duration_s):
            return None
        start = float(start_val.value)
        return start if start > 0 else None

    try:
        r = _drive(params, index, do_request, reset, wait_start, measure_cpu=True)
    except Exception as exc:
        r = WorkerResult(index=index, error_samples=[f"worker crashed: {exc!r}"])
        if not announced:
            ready_q.put(index)
    finally:
        close()
    result_q.put(r)


def run_lean_processes(
    target: LeanTarget,
    concurrency: int,
    params: DriveParams,
    server_cpu: Callable[[], float | None],
) -> CellResult:
    """One forked process per connection. Client CPU = the workers' CPU over the window
    (each measures itself) + this process's CPU over the same window."""
    ctx = mp.get_context("fork")
    ready_q = ctx.Queue()
    result_q = ctx.Queue()
    go = ctx.Event()
    start_val = ctx.Value("d", 0.0, lock=False)
    procs = [
        ctx.Process(
            target=_process_main,
            args=(target, params, i, ready_q, result_q, go, start_val),
            name=f"load-{i}",
            daemon=True,
        )
        for i in range(concurrency)
    ]
    results: list[WorkerResult] = []
    start = 0.0
    try:
        for p in procs:
            p.start()
        _wait_ready(ready_q, concurrency)
        srv0 = server_cpu()
        sys0 = system_busy_seconds()
        cpu0 = _rusage_cpu()
        start = time.monotonic() + START_DELAY_S
        start_val.value = start
        go.set()
        deadline = start + params.duration_s + STARTUP_TIMEOUT_S
        for _ in range(concurrency):
            try:
                results.append(result_q.get(timeout=max(0.1, deadline - time.monotonic())))
            except queue.Empty:
                break
        cpu1 = _rusage_cpu()
        srv = _delta(server_cpu, srv0)
        sysb = _delta(system_busy_seconds, sys0)
    finally:
        go.set()  # start_val stays 0 if we never started: workers then return at once
        for p in procs:
            p.join(timeout=5)
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join(timeout=5)
        ready_q.close()
        result_q.close()
    client_cpu = (cpu1 - cpu0) + sum(r.cpu_s for r in results)
    return _collect(
        results, concurrency, f"lean/processes/{target.engine}", client_cpu, srv, sysb, start
    )


def run_lean_threads(
    target: LeanTarget,
    concurrency: int,
    params: DriveParams,
    server_cpu: Callable[[], float | None],
) -> CellResult:
    return run_threads(
        concurrency,
        params,
        lambda i: _lean_worker_parts(target, i),
        f"lean/threads/{target.engine}",
        server_cpu,
    )


def run_lean(
    target: LeanTarget,
    concurrency: int,
    params: DriveParams,
    server_cpu: Callable[[], float | None],
    mode: str,
) -> CellResult:
    if mode == "processes":
        return run_lean_processes(target, concurrency, params, server_cpu)
    if mode == "threads":
        return run_lean_threads(target, concurrency, params, server_cpu)
    raise ValueError(f"unknown lean mode {mode!r}")


# --------------------------------------------------------------------------- boto3


def run_boto3(
    clients: Sequence[Any],
    call: Callable[[Any, int], None],
    concurrency: int,
    params: DriveParams,
    server_cpu: Callable[[], float | None],
) -> CellResult:
    """Plain boto3: thread i uses ``clients[i]`` and calls ``call(client, request_index)``.
    A ClientError counts as an error with its HTTP status."""
    from botocore.exceptions import ClientError

    def make_worker(i: int) -> tuple[DoRequest, Callable[[], None], Callable[[], None]]:
        client = clients[i]

        def do_request(j: int) -> tuple[int, bytes]:
            try:
                call(client, j)
            except ClientError as exc:
                meta = exc.response.get("ResponseMetadata", {})
                status = int(meta.get("HTTPStatusCode", 0) or 0)
                return status or 599, str(exc).encode()
            return 200, b""

        def noop() -> None:
            return None

        return do_request, noop, noop

    return run_threads(concurrency, params, make_worker, "boto3", server_cpu)
