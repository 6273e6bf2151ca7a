"""S3 benchmark: Sealbox (every object encrypted at rest) against moto, driven by boto3.

Starts Sealbox and moto side by side (or uses running ones via --sealbox-url / --moto-url)
and runs these scenarios (``--only NAME[,NAME]`` picks some):

* ``memory``    2 GiB single PUT and GET (streamed from/to nowhere): rise of the server
                tree's resident memory (/proc/<pid>/statm, summed), sampled every 20 ms
* ``large``     64 MiB single PUT and GET, SSE-S3 and SSE-KMS (moto in the same run)
* ``multipart`` 1 GiB multipart upload, 8 MiB parts, 8 concurrent (boto3 TransferConfig)
* ``ranged``    1 MiB ranged GETs from a 1 GiB object vs GETs of a plain 1 MiB object,
                8 threads
* ``small``     4 KiB PUT and GET, 8 threads: ops/s and server CPU per op, SSE-S3,
                SSE-KMS and SSE-KMS with a Bucket Key, moto with the same client
                (boto3, and the lean replay generator of bench/loadgen.py)
* ``kmscalls``  internal KMS operations (GET /_sealbox/metrics) for 1,000 SSE-KMS PUTs
                with and without a Bucket Key

Every figure is the median of --runs runs (interleaved across servers and modes); every
loop is bounded by a count and a deadline. Prints a table and one PASS/FAIL line per
project target, or --output json.

Run from the repository root:  python bench/s3.py [--quick] [--only small] [--runs 3]
See bench/README.md.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import itertools
import json
import os
import random
import re
import secrets
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import loadgen, servers
from bench.kms import NOISE_CORES, _fmt, _raise_exit, aggregate, log, started_servers, wait_quiet
from bench.loadgen import CellResult, DriveParams, LeanTarget, SignedRequest, _rusage_cpu
from bench.servers import ManagedServer

T = TypeVar("T")

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
SCENARIOS = ("memory", "large", "multipart", "ranged", "small", "kmscalls")
SSE_S3, SSE_KMS, SSE_KMS_BK, PLAIN = "SSE-S3", "SSE-KMS", "SSE-KMS+BK", "no SSE"
SEALBOX_MODES = (SSE_S3, SSE_KMS, SSE_KMS_BK)
THREADS = 8
INTERNAL_KMS_METRIC = "sealbox_kms_internal_operations_total"  # server/metrics.py

# Project targets (see the issue).
TARGET_PUT_LARGE = 150.0  # MiB/s, 64 MiB single PUT, SSE-KMS
TARGET_GET_LARGE = 500.0  # MiB/s, 64 MiB GET, SSE-KMS
TARGET_KMS_VS_S3 = 0.9  # SSE-KMS throughput / SSE-S3 throughput
TARGET_MULTIPART = 250.0  # MiB/s, 1 GiB, 8 concurrent parts
TARGET_PUT_CPU_MS = 1.0  # server CPU per 4 KiB PUT
TARGET_GET_CPU_MS = 0.5  # server CPU per 4 KiB GET
TARGET_SMALL_VS_MOTO = 3.0  # ops/s ratio, same client
TARGET_RANGED = 300.0  # 1 MiB ranged GETs per second, 8 threads
TARGET_RANGED_SLOWDOWN = 2.0  # plain 1 MiB GET rate / ranged GET rate
TARGET_MEMORY_MIB = 100.0  # server RSS rise for a 2 GiB PUT or GET
TARGET_BK_KMS_CALLS = 5  # internal KMS operations for 1,000 PUTs with a Bucket Key


@dataclass(frozen=True)
class Sizes:
    large: int = 64 * MiB
    multipart: int = 1 * GiB
    part: int = 8 * MiB
    ranged_object: int = 1 * GiB
    range_len: int = 1 * MiB
    small: int = 4 * KiB
    small_pool: int = 1024  # distinct keys per small-object cell
    kms_puts: int = 1000
    memory: int = 2 * GiB


QUICK = Sizes(
    large=8 * MiB,
    multipart=64 * MiB,
    ranged_object=64 * MiB,
    small_pool=128,
    kms_puts=100,
    memory=256 * MiB,
)


def _size(n: int) -> str:
    return f"{n // GiB} GiB" if n >= GiB and n % GiB == 0 else f"{n / MiB:g} MiB"


# --------------------------------------------------------------------------- data


class SyntheticFile:
    """A seekable, read-only file of ``size`` bytes made on the fly from a 1 MiB random
    pattern (its odd length makes every 8 MiB part different): nothing is held in memory
    or read from disk, so multi-GiB uploads are bounded by the network path only."""

    def __init__(self, size: int, seed: int = 0) -> None:
        self._pattern = memoryview(random.Random(seed).randbytes(MiB + 4099))
        self._size = size
        self._pos = 0

    def read(self, n: int | None = -1) -> bytes:
        remaining = self._size - self._pos
        if n is None or n < 0 or n > remaining:
            n = remaining
        pat, plen = self._pattern, len(self._pattern)
        pieces: list[memoryview] = []
        got, at = 0, self._pos % plen
        while got < n:  # bounded: each pass takes >= 1 byte
            take = min(plen - at, n - got)
            pieces.append(pat[at : at + take])
            got += take
            at = 0
        self._pos += n
        return b"".join(pieces)

    def seek(self, offset: int, whence: int = 0) -> int:
        base = (0, self._pos, self._size)[whence]
        self._pos = max(0, min(self._size, base + offset))
        return self._pos

    def tell(self) -> int:
        return self._pos

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        return None


def get_discard(s3: Any, bucket: str, key: str, **extra: Any) -> int:
    """GET an object and throw its body away 1 MiB at a time; returns the bytes read."""
    body = s3.get_object(Bucket=bucket, Key=key, **extra)["Body"]
    n = 0
    try:
        for chunk in body.iter_chunks(MiB):
            n += len(chunk)
    finally:
        body.close()
    return n


def transfer_config(sizes: Sizes) -> Any:
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(
        multipart_threshold=sizes.part,
        multipart_chunksize=sizes.part,
        max_concurrency=THREADS,
        use_threads=True,
    )


# --------------------------------------------------------------------------- /proc


def tree_pids(root: int) -> list[int]:
    """``root`` and all of its live descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = servers._read_stat(int(entry))
            if st is not None:
                children.setdefault(st[0], []).append(int(entry))
    out, stack, seen = [], [root], set()
    while stack:  # bounded: each pid once
        pid = stack.pop()
        if pid not in seen:
            seen.add(pid)
            out.append(pid)
            stack.extend(children.get(pid, ()))
    return out


PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def tree_rss(pids: Sequence[int]) -> int:
    """Resident bytes of these processes (those that have exited count as 0)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm", "rb") as f:
                total += int(f.read().split()[1]) * PAGE_SIZE
        except (OSError, IndexError, ValueError):
            pass
    return total


class RssPeak:
    """Samples the RSS of a process tree every ``interval`` s in a thread while active."""

    MAX_SAMPLES = 200_000  # ~1 h at 20 ms

    def __init__(self, root: int, interval: float = 0.02) -> None:
        self.root, self.interval = root, interval
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        pids = tree_pids(self.root)
        for i in range(self.MAX_SAMPLES):
            if i % 50 == 49:
                pids = tree_pids(self.root)
            self.peak = max(self.peak, tree_rss(pids))
            self.samples += 1
            if self._stop.wait(self.interval):
                break

    def __enter__(self) -> RssPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self.peak = max(self.peak, tree_rss(tree_pids(self.root)))


def internal_kms_ops(server: ManagedServer) -> dict[str, float] | None:
    """S3's internal KMS operations so far, by operation, from /_sealbox/metrics."""
    host, port = server.host_port
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.request("GET", "/_sealbox/metrics")
        resp = conn.getresponse()
        text = resp.read().decode("utf-8", "replace")
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()
    if resp.status != 200:
        return None
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(INTERNAL_KMS_METRIC + "{") and 'caller_service="s3"' in line:
            labels, _, value = line.rpartition(" ")
            m = re.search(r'operation="([^"]*)"', labels)
            op = m.group(1) if m else "?"
            out[op] = out.get(op, 0.0) + float(value)
    return out


# --------------------------------------------------------------------------- targets


@dataclass
class S3Target:
    """A server, its buckets (one per encryption mode) and boto3 clients for it."""

    server: ManagedServer
    region: str
    buckets: dict[str, str] = field(default_factory=dict)
    key_id: str = ""
    sanity: str = "not run"
    _clients: list[Any] = field(default_factory=list)

    def client(self, service: str = "s3", pool: int = 2) -> Any:
        """boto3 defaults except: no retries (errors are counted, not hidden), longer read
        timeout (multi-GiB bodies), path-style addressing (127.0.0.1)."""
        import boto3
        from botocore.config import Config

        cfg = Config(
            retries={"total_max_attempts": 1, "mode": "standard"},
            connect_timeout=5,
            read_timeout=300,
            max_pool_connections=pool,
            s3={"addressing_style": "path"},
        )
        return boto3.session.Session().client(
            service,
            endpoint_url=self.server.url,
            region_name=self.region,
            aws_access_key_id=self.server.access_key,
            aws_secret_access_key=self.server.secret_key,
            config=cfg,
        )

    def clients(self, n: int) -> list[Any]:
        while len(self._clients) < n:
            self._clients.append(self.client())
        return self._clients[:n]

    @property
    def modes(self) -> list[str]:
        return list(self.buckets)

    def make_bucket(self, mode: str, prefix: str = "bench") -> str:
        s3 = self.clients(1)[0]
        slug = re.sub(r"[^a-z0-9]+", "-", mode.lower())
        name = f"{prefix}-{slug}-{secrets.token_hex(4)}"
        s3.create_bucket(Bucket=name)
        if mode != PLAIN:
            default: dict[str, str] = {"SSEAlgorithm": "AES256"}
            if mode in (SSE_KMS, SSE_KMS_BK):
                default = {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": self.key_id}
            s3.put_bucket_encryption(
                Bucket=name,
                ServerSideEncryptionConfiguration={
                    "Rules": [
                        {
                            "ApplyServerSideEncryptionByDefault": default,
                            "BucketKeyEnabled": mode == SSE_KMS_BK,
                        }
                    ]
                },
            )
        return name


def prepare(target: S3Target, modes: Sequence[str]) -> None:
    """Create the KMS key and one bucket per mode; check a round trip in each."""
    if any(m in (SSE_KMS, SSE_KMS_BK) for m in modes):
        kms = target.client("kms")
        target.key_id = kms.create_key(Description="sealbox-s3-bench")["KeyMetadata"]["KeyId"]
    problems: list[str] = []
    s3 = target.clients(1)[0]
    want = {SSE_S3: ("AES256", False), SSE_KMS: ("aws:kms", False), SSE_KMS_BK: ("aws:kms", True)}
    for mode in modes:
        try:
            bucket = target.buckets[mode] = target.make_bucket(mode)
            body = os.urandom(100_000)
            put = s3.put_object(Bucket=bucket, Key="sanity", Body=body)
            got = s3.get_object(Bucket=bucket, Key="sanity")
            if got["Body"].read() != body:
                problems.append(f"{mode}: GET did not return the PUT body")
            part = s3.get_object(Bucket=bucket, Key="sanity", Range="bytes=1000-1999")
            if part["Body"].read() != body[1000:2000]:
                problems.append(f"{mode}: ranged GET returned the wrong bytes")
            if mode in want:
                sse = (put.get("ServerSideEncryption"), bool(put.get("BucketKeyEnabled")))
                if sse != want[mode]:
                    problems.append(f"{mode}: PUT answered SSE {sse}, expected {want[mode]}")
        except Exception as exc:
            problems.append(f"{mode}: {type(exc).__name__}: {str(exc)[:200]}")
    target.sanity = "ok" if not problems else "; ".join(problems)


# --------------------------------------------------------------------------- results


@dataclass
class Bench:
    args: argparse.Namespace
    sizes: Sizes
    targets: dict[str, S3Target]
    rows: list[dict[str, Any]] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    noise: list[str] = field(default_factory=list)  # measurements another process disturbed
    cells: dict[str, Any] = field(default_factory=dict)  # per-run details for --output json

    def quiet(self) -> None:
        if self.args.wait_quiet > 0:
            wait_quiet(self.args.wait_quiet)

    def measure(
        self, what: str, server: ManagedServer, fn: Callable[[], object]
    ) -> Measured | None:
        """Time one step (see measured); a failure is recorded and gives None."""
        m = self.attempt(what, partial(measured, server, fn))
        if m is not None and (m.other_cores or 0.0) > NOISE_CORES:
            self.noise.append(f"{what}: {m.other_cores:.2f} other cores")
        return m

    def attempt(self, what: str, fn: Callable[[], T]) -> T | None:
        """Run one measured step; a failure is recorded (and shown) instead of aborting."""
        try:
            return fn()
        except Exception as exc:
            msg = f"{what}: {type(exc).__name__}: {str(exc)[:300]}"
            self.errors.append(msg)
            log(f"ERROR {msg}")
            return None

    def row(
        self,
        scenario: str,
        what: str,
        unit: str,
        runs: Sequence[float | None],
        moto: Sequence[float | None] = (),
        note: str = "",
    ) -> float | None:
        s, m = _med(runs), _med(moto)
        self.rows.append(
            {
                "scenario": scenario,
                "measurement": what,
                "unit": unit,
                "sealbox": s,
                "moto": m,
                "ratio": round(s / m, 3) if s and m else None,
                "sealbox_runs": list(runs),
                "moto_runs": list(moto),
                "note": note,
            }
        )
        return s

    def check(self, target: str, ok: bool | None, figure: str) -> None:
        status = "N/A" if ok is None else ("PASS" if ok else "FAIL")
        self.checks.append({"target": target, "status": status, "figure": figure})


def _med(values: Sequence[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return round(statistics.median(vals), 4) if vals else None


@dataclass(frozen=True)
class Measured:
    wall_s: float
    server_cpu_s: float | None
    other_cores: float | None  # CPU used by neither the server nor this process

    def rate(self, nbytes: int) -> float:
        return nbytes / MiB / self.wall_s

    @property
    def server_cores(self) -> float | None:
        return None if self.server_cpu_s is None else self.server_cpu_s / self.wall_s


def measured(server: ManagedServer, fn: Callable[[], object]) -> Measured:
    """Wall time, server CPU and other processes' CPU over one call."""
    cpu0, sys0, me0 = server.cpu_seconds(), servers.system_busy_seconds(), _rusage_cpu()
    t0 = time.perf_counter()
    fn()
    wall = time.perf_counter() - t0
    cpu1, sys1, me1 = server.cpu_seconds(), servers.system_busy_seconds(), _rusage_cpu()
    cpu = None if cpu0 is None or cpu1 is None else cpu1 - cpu0
    other = None
    if cpu is not None and sys0 is not None and sys1 is not None and wall > 0:
        other = max(0.0, (sys1 - sys0) - cpu - (me1 - me0)) / wall
    return Measured(wall, cpu, other)


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


# --------------------------------------------------------------------------- scenarios


def scenario_memory(b: Bench) -> None:
    t = b.targets.get("sealbox")
    if t is None:
        return
    size, mode = b.sizes.memory, SSE_KMS
    s3, bucket = t.clients(1)[0], t.buckets[mode]
    label = _size(size)
    if t.server.pid is None:
        b.check(f"{label} PUT/GET raise server RSS < {TARGET_MEMORY_MIB:g} MiB", None, "no pid")
        return
    pid = t.server.pid
    # Warm every worker (lazy imports, first-request allocations) before the baseline.
    for i in range(4):
        s3.put_object(Bucket=bucket, Key=f"mem/warm{i}", Body=os.urandom(4 * MiB))
        get_discard(s3, bucket, f"mem/warm{i}")
    rises: dict[str, list[float | None]] = {"PUT": [], "GET": []}
    rates: dict[str, list[float | None]] = {"PUT": [], "GET": []}
    base_mib: list[float | None] = []
    for rep in range(b.args.runs):
        key = f"mem/big{rep}"
        b.quiet()
        time.sleep(0.5)
        base = tree_rss(tree_pids(pid))
        base_mib.append(base / MiB)
        steps: list[tuple[str, Callable[[], object]]] = [
            ("PUT", partial(s3.put_object, Bucket=bucket, Key=key, Body=SyntheticFile(size))),
            ("GET", partial(get_discard, s3, bucket, key)),
        ]
        for op, fn in steps:
            with RssPeak(pid) as peak:
                got = b.measure(f"memory {op} {label}", t.server, fn)
            if got is None:
                rises[op].append(None)
                rates[op].append(None)
                continue
            rises[op].append((peak.peak - base) / MiB)
            rates[op].append(got.rate(size))
            log(
                f"memory run {rep + 1}: {op} {label} {got.rate(size):.0f} MiB/s, "
                f"RSS rise {(peak.peak - base) / MiB:.1f} MiB ({peak.samples} samples)"
            )
        b.attempt("memory cleanup", partial(s3.delete_object, Bucket=bucket, Key=key))
    base_note = f"baseline RSS {_fmt(_med(base_mib), '.0f')} MiB (server tree)"
    for op in ("PUT", "GET"):
        worst = max((v for v in rises[op] if v is not None), default=None)
        b.row(
            "memory",
            f"{op} {label} {mode}: server RSS rise",
            "MiB",
            rises[op],
            note=f"max {_fmt(worst, '.1f')} MiB; {base_note}",
        )
        b.row("memory", f"{op} {label} {mode} throughput", "MiB/s", rates[op])
        b.check(
            f"{label} {op} raises server RSS < {TARGET_MEMORY_MIB:g} MiB (worst run)",
            None if worst is None else worst < TARGET_MEMORY_MIB,
            f"{_fmt(worst, '.1f')} MiB",
        )


def scenario_large(b: Bench) -> None:
    size = b.sizes.large
    label = _size(size)
    data = os.urandom(size)
    etag = f'"{hashlib.md5(data).hexdigest()}"'  # noqa: S324 (S3's ETag)
    cells = [
        (name, mode)
        for name, t in b.targets.items()
        for mode in t.modes
        if mode in (SSE_S3, SSE_KMS, PLAIN)
    ]
    rates: dict[tuple[str, str, str], list[float | None]] = {}
    cpus: dict[tuple[str, str, str], list[float | None]] = {}
    for rep in range(b.args.runs):
        for name, mode in cells:
            t = b.targets[name]
            s3, bucket, key = t.clients(1)[0], t.buckets[mode], f"large/{rep}"

            def put(s3: Any = s3, bucket: str = bucket, key: str = key) -> None:
                resp = s3.put_object(Bucket=bucket, Key=key, Body=data)
                if resp.get("ETag") != etag:
                    raise ValueError(f"ETag {resp.get('ETag')} != {etag}")

            def get(s3: Any = s3, bucket: str = bucket, key: str = key) -> None:
                n = get_discard(s3, bucket, key)
                if n != size:
                    raise ValueError(f"GET returned {n} bytes, expected {size}")

            for op, fn in (("PUT", put), ("GET", get)):
                b.quiet()
                got = b.measure(f"large {name} {op} {mode}", t.server, fn)
                rate = None if got is None else got.rate(size)
                cpu = None if got is None or got.server_cpu_s is None else got.server_cpu_s * 1000
                cpu = None if cpu is None else cpu / (size / MiB)
                rates.setdefault((name, op, mode), []).append(rate)
                cpus.setdefault((name, op, mode), []).append(cpu)
                log(f"large run {rep + 1}: {name} {op} {label} {mode}: {_fmt(rate, '.0f')} MiB/s")
            b.attempt("large cleanup", partial(s3.delete_object, Bucket=bucket, Key=key))
    b.cells["large"] = {"|".join(k): v for k, v in rates.items()}
    if "sealbox" not in b.targets:
        for (name, op, mode), runs in rates.items():
            b.row("large", f"{op} {label} {mode} ({name})", "MiB/s", runs)
        return
    med: dict[tuple[str, str], float | None] = {}
    for op in ("PUT", "GET"):
        for mode in (SSE_S3, SSE_KMS):
            runs = rates.get(("sealbox", op, mode), [])
            moto = rates.get(("moto", op, PLAIN), []) if mode == SSE_KMS else []
            cpu = _med(cpus.get(("sealbox", op, mode), []))
            mcpu = _med(cpus.get(("moto", op, PLAIN), [])) if moto else None
            note = f"server CPU {_fmt(cpu, '.1f')} ms/MiB"
            if moto:
                note += f" (moto {_fmt(mcpu, '.1f')}, moto has no SSE)"
            med[(op, mode)] = b.row("large", f"{op} {label} {mode}", "MiB/s", runs, moto, note)
    for op, target in (("PUT", TARGET_PUT_LARGE), ("GET", TARGET_GET_LARGE)):
        v = med[(op, SSE_KMS)]
        b.check(
            f"{label} {op} SSE-KMS >= {target:g} MiB/s",
            None if v is None else v >= target,
            f"{_fmt(v, '.0f')} MiB/s",
        )
        r = _ratio(med[(op, SSE_KMS)], med[(op, SSE_S3)])
        b.check(
            f"{label} {op} SSE-KMS within 10% of SSE-S3",
            None if r is None else r >= TARGET_KMS_VS_S3,
            f"SSE-KMS/SSE-S3 = {_fmt(r, '.2f')}",
        )


def _multipart_upload(s3: Any, bucket: str, key: str, size: int, sizes: Sizes, seed: int) -> None:
    """upload_fileobj of a SyntheticFile: parts of sizes.part, THREADS at a time."""
    s3.upload_fileobj(SyntheticFile(size, seed), bucket, key, Config=transfer_config(sizes))


def _check_size(s3: Any, bucket: str, key: str, size: int) -> int:
    got = int(s3.head_object(Bucket=bucket, Key=key)["ContentLength"])
    if got != size:
        raise ValueError(f"{key} has {got} bytes, expected {size}")
    return got


def scenario_multipart(b: Bench) -> None:
    t = b.targets.get("sealbox")
    if t is None:
        return
    size, mode = b.sizes.multipart, SSE_KMS
    label = _size(size)
    bucket = t.buckets[mode]
    s3 = t.client(pool=THREADS + 2)  # s3transfer's threads share one client
    rates: list[float | None] = []
    cores: list[float | None] = []
    for rep in range(b.args.runs):
        key = f"multipart/{rep}"
        b.quiet()
        up = partial(_multipart_upload, s3, bucket, key, size, b.sizes, rep)
        got = b.measure(f"multipart {label}", t.server, up)
        if (
            got is not None
            and b.attempt("multipart size", partial(_check_size, s3, bucket, key, size)) is None
        ):
            got = None
        rates.append(None if got is None else got.rate(size))
        cores.append(None if got is None else got.server_cores)
        log(f"multipart run {rep + 1}: {_fmt(rates[-1], '.0f')} MiB/s")
        b.attempt(
            "multipart cleanup", partial(t.clients(1)[0].delete_object, Bucket=bucket, Key=key)
        )
    parts = -(-size // b.sizes.part)
    v = b.row(
        "multipart",
        f"upload {label} {mode}, {parts} x {_size(b.sizes.part)} parts, {THREADS} concurrent",
        "MiB/s",
        rates,
        note=f"server {_fmt(_med(cores), '.2f')} cores",
    )
    b.check(
        f"{label} multipart upload ({THREADS} concurrent parts) >= {TARGET_MULTIPART:g} MiB/s",
        None if v is None else v >= TARGET_MULTIPART,
        f"{_fmt(v, '.0f')} MiB/s",
    )


def _params(b: Bench, pool: int, warmup: int = 2) -> DriveParams:
    return DriveParams(
        n_requests=pool,
        duration_s=b.args.duration,
        max_ops=max(1, -(-b.args.max_ops // THREADS)),
        warmup=warmup,
    )


def _cell_note(m: dict[str, Any]) -> str:
    note = (
        f"srv {_fmt(m['server_cpu_ms_per_op'], '.3f')} ms CPU/op, "
        f"cli {_fmt(m['client_cpu_ms_per_op'], '.3f')} ms/op, p99 {_fmt(m['p99_ms'], '.1f')} ms"
    )
    if m["errors"]:
        sample = " ".join(str(m["error_samples"][0]).split())[:100] if m["error_samples"] else ""
        note += f", {m['errors']} ERRORS: {sample}"
    if (m["other_cores_max"] or 0) > NOISE_CORES:
        note += f", noisy ({m['other_cores_max']:.2f} other cores)"
    return note


def scenario_ranged(b: Bench) -> None:
    t = b.targets.get("sealbox")
    if t is None:
        return
    size, rlen, mode = b.sizes.ranged_object, b.sizes.range_len, SSE_KMS
    bucket = t.buckets[mode]
    big, plain = "ranged/big", "ranged/plain"
    log(f"ranged: uploading the {_size(size)} object")
    s3 = t.client(pool=THREADS + 2)

    def setup() -> int:
        _multipart_upload(s3, bucket, big, size, b.sizes, 99)
        s3.put_object(Bucket=bucket, Key=plain, Body=os.urandom(rlen))
        return _check_size(s3, bucket, big, size)

    if b.attempt("ranged setup", setup) is None:
        return
    rng = random.Random(7)
    offsets = [rng.randrange(0, size - rlen + 1) for _ in range(4096)]

    def ranged(c: Any, j: int) -> None:
        off = offsets[j % len(offsets)]
        body = c.get_object(Bucket=bucket, Key=big, Range=f"bytes={off}-{off + rlen - 1}")["Body"]
        if len(body.read()) != rlen:
            raise ValueError("short ranged GET")

    def whole(c: Any, j: int) -> None:
        if len(c.get_object(Bucket=bucket, Key=plain)["Body"].read()) != rlen:
            raise ValueError("short GET")

    raw: dict[str, list[CellResult]] = {"ranged": [], "plain": []}
    for rep in range(b.args.runs):
        for name, call in (("ranged", ranged), ("plain", whole)):
            b.quiet()
            cell = loadgen.run_boto3(
                t.clients(THREADS), call, THREADS, _params(b, len(offsets)), t.server.cpu_seconds
            )
            raw[name].append(cell)
            log(f"ranged run {rep + 1}: {name} {cell.ops_per_s:.0f} GET/s errors={cell.errors}")
    agg = {name: aggregate(cells) for name, cells in raw.items()}
    b.cells["ranged"] = {n: [c.summary() for c in cells] for n, cells in raw.items()}
    r_ops = b.row(
        "ranged",
        f"{_size(rlen)} ranged GET of a {_size(size)} object, x{THREADS} ({mode})",
        "GET/s",
        [c.ops_per_s for c in raw["ranged"]],
        note=_cell_note(agg["ranged"]),
    )
    p_ops = b.row(
        "ranged",
        f"GET of a plain {_size(rlen)} object, x{THREADS} ({mode})",
        "GET/s",
        [c.ops_per_s for c in raw["plain"]],
        note=_cell_note(agg["plain"]),
    )
    slow = _ratio(p_ops, r_ops)
    b.check(
        f"ranged {_size(rlen)} GETs >= {TARGET_RANGED:g}/s (x{THREADS})",
        None if r_ops is None else r_ops >= TARGET_RANGED and not agg["ranged"]["errors"],
        f"{_fmt(r_ops, '.0f')}/s, {agg['ranged']['errors']} errors",
    )
    b.check(
        f"ranged GET no slower than {TARGET_RANGED_SLOWDOWN:g}x a plain {_size(rlen)} GET",
        None if slow is None else slow <= TARGET_RANGED_SLOWDOWN,
        f"plain/ranged rate = {_fmt(slow, '.2f')} ({_fmt(p_ops, '.0f')} vs {_fmt(r_ops, '.0f')}/s)",
    )
    for key in (big, plain):
        b.attempt("ranged cleanup", partial(t.clients(1)[0].delete_object, Bucket=bucket, Key=key))


def presign_s3(
    t: S3Target, method: str, bucket: str, keys: Sequence[str], body: bytes = b""
) -> list[SignedRequest]:
    """Sign one request per key as boto3 does over http (SigV4 with the payload's SHA-256,
    CRC32 in a header for PUTs) and serialise it for the lean generator."""
    import base64
    import zlib

    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    host, port = t.server.host_port
    netloc = f"{host}:{port}"
    signer = S3SigV4Auth(Credentials(t.server.access_key, t.server.secret_key), "s3", t.region)
    extra: dict[str, str] = {}
    if method == "PUT":
        crc = base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()
        extra = {"x-amz-checksum-crc32": crc, "x-amz-sdk-checksum-algorithm": "CRC32"}
    out: list[SignedRequest] = []
    for key in keys:
        path = f"/{bucket}/{key}"
        req = AWSRequest(
            method=method,
            url=f"http://{netloc}{path}",
            data=body,
            headers={"Host": netloc, **extra},
        )
        signer.add_auth(req)
        headers = tuple((str(k), str(v)) for k, v in req.headers.items())
        head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
        if method == "PUT":
            head += f"Content-Length: {len(body)}\r\n"
        out.append(SignedRequest(path, headers, body, (head + "\r\n").encode("latin-1") + body))
    return out


def put_new_keys(bucket: str, prefix: str, body: bytes) -> Callable[[Any, int], None]:
    """A call for loadgen.run_boto3 that PUTs ``body`` under a new key every time."""
    counter = itertools.count()

    def call(c: Any, j: int) -> None:
        c.put_object(Bucket=bucket, Key=f"{prefix}{next(counter)}", Body=body)

    return call


def preload(t: S3Target, bucket: str, keys: Sequence[str], body: bytes) -> None:
    """PUT ``body`` under every key, with THREADS clients."""
    clients = t.clients(THREADS)

    def put(i: int) -> None:
        clients[i % THREADS].put_object(Bucket=bucket, Key=keys[i], Body=body)

    with ThreadPoolExecutor(THREADS) as ex:
        list(ex.map(put, range(len(keys))))


def scenario_small(b: Bench) -> None:
    size, pool = b.sizes.small, b.sizes.small_pool
    label = _size(size) if size >= MiB else f"{size // KiB} KiB"
    body = os.urandom(size)
    get_keys = [f"small/get{i}" for i in range(pool)]
    cells = [(name, mode) for name, t in b.targets.items() for mode in t.modes]
    for name, mode in cells:  # objects for the GET cells
        preload(b.targets[name], b.targets[name].buckets[mode], get_keys, body)

    def boto3_call(op: str, bucket: str, rep: int) -> Callable[[Any, int], None]:
        if op == "PUT":  # a new key every time
            return put_new_keys(bucket, f"small/p{rep}-", body)
        return lambda c, j: c.get_object(Bucket=bucket, Key=get_keys[j % pool])["Body"].read()

    raw: dict[tuple[str, str, str, str], list[CellResult]] = {}
    for rep in range(b.args.runs):
        for client in b.args.small_clients:
            for op in ("PUT", "GET"):
                for name, mode in cells:  # interleaved: drift hits every server alike
                    t = b.targets[name]
                    bucket = t.buckets[mode]
                    b.quiet()
                    if client == "boto3":
                        cell = loadgen.run_boto3(
                            t.clients(THREADS),
                            boto3_call(op, bucket, rep),
                            THREADS,
                            _params(b, pool),
                            t.server.cpu_seconds,
                        )
                    else:
                        keys = get_keys if op == "GET" else [f"small/l{i}" for i in range(pool)]
                        signed = presign_s3(t, op, bucket, keys, body if op == "PUT" else b"")
                        host, port = t.server.host_port
                        lean = LeanTarget(host, port, signed, "raw", 30.0)
                        cell = loadgen.run_lean(
                            lean, THREADS, _params(b, pool, 10), t.server.cpu_seconds, "processes"
                        )
                    raw.setdefault((client, op, name, mode), []).append(cell)
                    log(
                        f"small run {rep + 1} {client:<5} {op} {name:<7} {mode:<10}: "
                        f"{cell.ops_per_s:7.0f} ops/s srv "
                        f"{_fmt(cell.server_cpu_ms_per_op, '.3f')} ms/op errors={cell.errors}"
                    )
    agg = {k: aggregate(v) for k, v in raw.items()}
    b.cells["small"] = {"|".join(k): [c.summary() for c in v] for k, v in raw.items()}
    for client in b.args.small_clients:
        for op in ("PUT", "GET"):
            moto = raw.get((client, op, "moto", PLAIN), [])
            moto_agg = agg.get((client, op, "moto", PLAIN))
            for name, mode in cells:
                if name == "moto" and "sealbox" in b.targets:
                    continue
                runs = raw[(client, op, name, mode)]
                note = _cell_note(agg[(client, op, name, mode)])
                b.row(
                    "small",
                    f"{op} {label} x{THREADS} {mode} [{client}]"
                    + ("" if name == "sealbox" else f" ({name})"),
                    "ops/s",
                    [c.ops_per_s for c in runs],
                    [c.ops_per_s for c in moto] if name == "sealbox" else (),
                    note,
                )
            if moto_agg is not None and "sealbox" in b.targets:
                b.row(
                    "small",
                    f"{op} {label} x{THREADS} moto [{client}] server CPU",
                    "ms/op",
                    [c.server_cpu_ms_per_op for c in moto],
                    note=_cell_note(moto_agg),
                )
    if "sealbox" not in b.targets or "boto3" not in b.args.small_clients:
        return
    checked = (SSE_S3, SSE_KMS_BK)
    for op, target in (("PUT", TARGET_PUT_CPU_MS), ("GET", TARGET_GET_CPU_MS)):
        worst = max(
            ((agg[("boto3", op, "sealbox", m)]["server_cpu_ms_per_op"] or 0.0, m) for m in checked),
        )
        b.check(
            f"server CPU per {label} {op} <= {target:g} ms ({', '.join(checked)}, boto3)",
            worst[0] <= target if worst[0] else None,
            f"worst {worst[0]:.3f} ms ({worst[1]})",
        )
    for client in b.args.small_clients:
        if (client, "PUT", "moto", PLAIN) not in agg:
            continue
        ratios = [
            (
                _ratio(
                    agg[(client, op, "sealbox", m)]["ops_per_s"],
                    agg[(client, op, "moto", PLAIN)]["ops_per_s"],
                ),
                op,
                m,
            )
            for op in ("PUT", "GET")
            for m in checked
        ]
        worst_r = min(ratios, key=lambda r: r[0] or 0.0)
        b.check(
            f"{label} ops/s >= {TARGET_SMALL_VS_MOTO:g}x moto, x{THREADS} ({client} client"
            + (", informational" if client != "boto3" else "")
            + ")",
            None if worst_r[0] is None else worst_r[0] >= TARGET_SMALL_VS_MOTO,
            f"worst {_fmt(worst_r[0], '.2f')}x ({worst_r[1]} {worst_r[2]})",
        )
    for client in b.args.small_clients:
        kms = agg[(client, "PUT", "sealbox", SSE_KMS_BK)]["ops_per_s"]
        sse3 = agg[(client, "PUT", "sealbox", SSE_S3)]["ops_per_s"]
        r = _ratio(kms, sse3)
        b.check(
            f"{label} PUT SSE-KMS+BK within 10% of SSE-S3 ({client} client)",
            None if r is None else r >= TARGET_KMS_VS_S3,
            f"{_fmt(kms, '.0f')} vs {_fmt(sse3, '.0f')} ops/s = {_fmt(r, '.2f')}",
        )


def scenario_kmscalls(b: Bench) -> None:
    t = b.targets.get("sealbox")
    if t is None:
        return
    n = b.sizes.kms_puts
    body = os.urandom(b.sizes.small)
    calls: dict[str, list[float | None]] = {SSE_KMS_BK: [], SSE_KMS: []}
    detail: list[dict[str, Any]] = []
    for rep in range(b.args.runs):
        for mode in (SSE_KMS_BK, SSE_KMS):
            bucket = t.make_bucket(mode, prefix="kmscalls")  # fresh: no cached bucket key
            before = internal_kms_ops(t.server)
            cell = loadgen.run_boto3(
                t.clients(THREADS),
                put_new_keys(bucket, "k", body),
                THREADS,
                DriveParams(n_requests=n, duration_s=120.0, max_ops=-(-n // THREADS), warmup=0),
                t.server.cpu_seconds,
            )
            after = internal_kms_ops(t.server)
            if before is None or after is None:
                b.errors.append("kmscalls: GET /_sealbox/metrics failed")
                calls[mode].append(None)
                continue
            delta = {op: after.get(op, 0.0) - before.get(op, 0.0) for op in after}
            calls[mode].append(sum(delta.values()))
            detail.append(
                {
                    "run": rep + 1,
                    "mode": mode,
                    "puts": cell.ok,
                    "errors": cell.errors,
                    "internal_kms": {k: v for k, v in delta.items() if v},
                }
            )
            log(
                f"kmscalls run {rep + 1} {mode}: {cell.ok} PUTs ({cell.errors} errors) -> "
                f"{sum(delta.values()):.0f} internal KMS ops {delta}"
            )
    b.cells["kmscalls"] = detail
    puts = [d["puts"] for d in detail]
    for mode in (SSE_KMS_BK, SSE_KMS):
        b.row(
            "kmscalls",
            f"internal KMS ops for {n:,} PUTs, {mode}",
            "calls",
            calls[mode],
            note=f"PUTs ok per run: {sorted(set(puts))}; fresh bucket per run",
        )
    worst = max((v for v in calls[SSE_KMS_BK] if v is not None), default=None)
    without = _med(calls[SSE_KMS])
    b.check(
        f"{n:,} SSE-KMS PUTs with a Bucket Key cost <= {TARGET_BK_KMS_CALLS} KMS ops (worst run)",
        None if worst is None else worst <= TARGET_BK_KMS_CALLS,
        f"{_fmt(worst, '.0f')} with vs {_fmt(without, '.0f')} without",
    )


SCENARIO_FUNCS: dict[str, Callable[[Bench], None]] = {
    "memory": scenario_memory,
    "large": scenario_large,
    "multipart": scenario_multipart,
    "ranged": scenario_ranged,
    "small": scenario_small,
    "kmscalls": scenario_kmscalls,
}


# --------------------------------------------------------------------------- output


def format_report(b: Bench, header: str) -> str:
    lines = [header, ""]
    first = "sealbox" if "sealbox" in b.targets else "value"
    cols = f"{'scenario':<10}{'measurement':<52}{first:>11}{'moto':>10} {'unit':<6}{'ratio':>7}"
    lines += [cols, "-" * len(cols)]
    for r in b.rows:
        lines.append(
            f"{r['scenario']:<10}{r['measurement']:<52}{_fmt(r['sealbox'], ',.1f'):>11}"
            f"{_fmt(r['moto'], ',.1f') if r['moto'] is not None else '':>10} {r['unit']:<6}"
            f"{_fmt(r['ratio'], '.2f') + 'x' if r['ratio'] is not None else '':>7}"
        )
        if r["note"]:
            lines.append(f"{'':<12}{r['note']}")
    if b.errors:
        lines += ["", "== errors =="] + [f"! {e}" for e in b.errors[:20]]
    if b.noise:
        lines += ["", f"== noisy: other processes used > {NOISE_CORES} cores during =="]
        lines += [f"! {n}" for n in b.noise[:10]]
    if b.checks:
        lines += ["", "== targets =="]
        lines += [f"{c['status']:<5} {c['target']}: {c['figure']}" for c in b.checks]
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Benchmark Sealbox's S3 API (and moto's, in the same run) with boto3.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--only", default=",".join(SCENARIOS), help="comma list of scenarios")
    p.add_argument("--quick", action="store_true", help="small sizes and 1 s cells (smoke run)")
    p.add_argument("--runs", type=int, help="runs per measurement, medians [default 3, quick 1]")
    p.add_argument("--duration", type=float, help="seconds per load cell [default 3, quick 1]")
    p.add_argument("--max-ops", type=int, default=100_000, help="request cap per load cell")
    p.add_argument("--small-clients", default="boto3,lean", help="clients for 'small'")
    p.add_argument("--servers", default="sealbox,moto", help="comma list of sealbox,moto")
    env = os.environ.get
    for flag, kind, default, text in (
        ("--sealbox-url", str, None, "use a running Sealbox (loopback) instead of starting one"),
        ("--sealbox-pid", int, None, "pid whose process tree is that Sealbox"),
        ("--moto-url", str, None, "use a running moto server instead of starting one"),
        ("--moto-pid", int, None, "pid of that moto server"),
        ("--access-key", str, env("SEALBOX_ROOT_ACCESS_KEY_ID", "testing"), "for --sealbox-url"),
        ("--secret-key", str, env("SEALBOX_ROOT_SECRET_ACCESS_KEY", "testing"), "ditto"),
        ("--sealbox-cmd", str, f"{sys.executable} -m sealbox", "command that starts Sealbox"),
        ("--region", str, "us-east-1", "region for signing"),
        ("--startup-timeout", float, 60.0, "seconds to wait for a server to start"),
        ("--wait-quiet", float, 0.0, "before each measurement wait up to N s for an idle box"),
    ):
        p.add_argument(flag, type=kind, default=default, help=text)
    p.add_argument("--sealbox-arg", action="append", default=[], help="extra 'serve' argument")
    p.add_argument("--output", choices=("table", "json"), default="table")
    p.add_argument("--keep-logs", action="store_true", help="keep server logs and data dir")
    p.add_argument("--strict", action="store_true", help="exit 1 if a target check fails")
    args = p.parse_args(argv)
    args.calibrate = False  # for bench.kms.started_servers
    args.only = [s for s in args.only.split(",") if s]
    args.servers = [s for s in args.servers.split(",") if s]
    args.small_clients = [c for c in args.small_clients.split(",") if c]
    args.runs = args.runs or (1 if args.quick else 3)
    args.duration = args.duration or (1.0 if args.quick else 3.0)
    for name, allowed in (("only", SCENARIOS), ("servers", ("sealbox", "moto"))):
        for v in getattr(args, name):
            if v not in allowed:
                p.error(f"--{name}: unknown {v!r} (choose from {', '.join(allowed)})")
    if any(c not in ("boto3", "lean") for c in args.small_clients):
        p.error("--small-clients: boto3 and/or lean")
    if not 1 <= args.runs <= 20 or not 0 < args.duration <= 120 or args.max_ops < 1:
        p.error("--runs must be in [1, 20], --duration in (0, 120], --max-ops >= 1")
    if not 0 <= args.wait_quiet <= 600:
        p.error("--wait-quiet must be in [0, 600]")
    return args


def run(args: argparse.Namespace, work_dir: Path) -> tuple[dict[str, Any], str, bool]:
    import boto3
    import botocore

    sizes = QUICK if args.quick else Sizes()
    with started_servers(args, work_dir) as running:
        targets = {n: S3Target(server=s, region=args.region) for n, s in running.items()}
        for name, t in targets.items():
            prepare(t, SEALBOX_MODES if name == "sealbox" else (PLAIN,))
            log(f"{name}: {t.server.url} pid={t.server.pid} buckets={t.buckets} sanity={t.sanity}")
        b = Bench(args=args, sizes=sizes, targets=targets)
        t0 = time.monotonic()
        for name in SCENARIOS:  # fixed order: memory first, on a server still fresh
            if name in args.only:
                log(f"--- scenario {name}")
                s0 = time.monotonic()
                SCENARIO_FUNCS[name](b)
                log(f"--- scenario {name} took {time.monotonic() - s0:.1f}s")
        elapsed = time.monotonic() - t0
        if b.errors:
            for name, t in targets.items():
                tail = t.server.log_tail(30)
                if tail:
                    log(f"{name} had errors; last lines of its log:\n{tail}")
    for name, t in targets.items():
        if t.sanity != "ok":
            b.check(f"sanity ({name})", False, t.sanity)
    config = {
        "quick": args.quick,
        "runs": args.runs,
        "duration_s": args.duration,
        "scenarios": args.only,
        "sizes": sizes.__dict__,
        "threads": THREADS,
        "small_clients": args.small_clients,
        "boto3": boto3.__version__,
        "botocore": botocore.__version__,
        "cpus": os.cpu_count(),
        "elapsed_s": round(elapsed, 1),
    }
    doc = {
        "config": config,
        "servers": {
            n: {"url": t.server.url, "pid": t.server.pid, "sanity": t.sanity, "buckets": t.buckets}
            for n, t in targets.items()
        },
        "rows": b.rows,
        "checks": b.checks,
        "errors": b.errors,
        "noise": b.noise,
        "cells": b.cells,
    }
    where = ", ".join(f"{n} {t.server.url} (pid {t.server.pid})" for n, t in targets.items())
    header = (
        f"== S3: {where} ==\n"
        f"boto3 {boto3.__version__} defaults over http, median of {args.runs} run(s), "
        f"{args.duration:g} s per load cell, {os.cpu_count()} CPUs, {elapsed:.0f} s"
        + "".join(f"\nsanity {n}: {t.sanity}" for n, t in targets.items())
    )
    passed = all(c["status"] != "FAIL" for c in b.checks)
    return doc, format_report(b, header), passed


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_exit)
    work_dir = Path(tempfile.mkdtemp(prefix="sealbox-s3-bench-"))
    try:
        doc, text, passed = run(args, work_dir)
    except KeyboardInterrupt:
        log("interrupted; servers stopped")
        return 130
    finally:
        if args.keep_logs:
            log(f"logs and data kept in {work_dir}")
        else:
            shutil.rmtree(work_dir, ignore_errors=True)
    print(json.dumps(doc, indent=2) if args.output == "json" else text)
    return 1 if args.strict and not passed else 0


if __name__ == "__main__":
    sys.exit(main())
