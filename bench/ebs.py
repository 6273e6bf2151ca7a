"""EBS benchmark: attached volumes over NBD (fio) and the EBS direct APIs (boto3 ``ebs``).

Starts two Sealbox servers with ``--nbd-port`` (or uses a running one via --sealbox-url
and --nbd-port): one as shipped, one with the benchmark-only null cipher
(SEALBOX_BENCH_EBS_NULL_CIPHER=1: volume units copied through unencrypted on the very same
code path) so the cost of XTS is a ratio of two otherwise identical servers. On each it
creates a volume with boto3 ``ec2``, attaches it (attach = export over NBD) and runs
``fio --ioengine=nbd`` against ``nbd://127.0.0.1:PORT/vol-...``:

* ``seqwrite`` sequential 1 MiB writes, queue depth 8, ended by a FLUSH (--end_fsync)
* ``seqread``  sequential 1 MiB reads of what was written (real ciphertext, not holes)
* ``randread`` 4 KiB random reads over the written range, queue depth 16

and, on the encrypted server only, the direct APIs with 8 client threads:

* ``put``      StartSnapshot, PutSnapshotBlock of N 512 KiB blocks (SHA-256 checked),
               CompleteSnapshot (its time is counted in the "put+complete" figure)
* ``get``      GetSnapshotBlock of every block of that snapshot (tokens from
               ListSnapshotBlocks)

Every figure is the median of --runs runs (encrypted and null-cipher cells interleaved);
each cell records the server tree's CPU, the client's CPU and what the rest of the
machine used (a figure taken while other processes used > NOISE_CORES is flagged).
Every loop is bounded by a count (fio by size or --runtime). Prints a table and one
PASS/FAIL line per project target, or --output json.

Run from the repository root:  python bench/ebs.py [--quick] [--only nbd,direct] [--runs 3]
Needs fio with its nbd engine (``apt-get install -y fio``). See bench/README.md.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import os
import random
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import servers
from bench.kms import NOISE_CORES, _fmt, _raise_exit, log, wait_quiet
from bench.servers import ManagedServer

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
BLOCK = 512 * KiB
THREADS = 8
INSTANCE = "i-0123456789abcdef0"
NULL_ENV = "SEALBOX_BENCH_EBS_NULL_CIPHER"
SCENARIOS = ("nbd", "direct")
ENC, NULL = "xts", "null"

# Project targets (issue 6, Performance).
TARGET_SEQ_MBPS = 200.0  # MB/s (10^6), sequential 1 MiB writes and reads over NBD
TARGET_RAND_IOPS = 5000.0  # 4 KiB random reads, queue depth 16
TARGET_DIRECT_MBPS = 100.0  # MB/s, PutSnapshotBlock / GetSnapshotBlock, 8 threads


@dataclass(frozen=True)
class Sizes:
    volume_gib: int = 2
    seq_bytes: int = 1 * GiB  # written then read, sequentially
    seq_depth: int = 8
    rand_seconds: float = 5.0
    rand_depth: int = 16
    direct_blocks: int = 512  # 256 MiB per PutSnapshotBlock run


QUICK = Sizes(volume_gib=1, seq_bytes=128 * MiB, rand_seconds=1.5, direct_blocks=64)


# --------------------------------------------------------------------------- cells


@dataclass
class Cell:
    """One measurement: a rate, and where the CPU went while it ran."""

    value: float  # MB/s or IOPS
    wall_s: float
    server_cpu_s: float | None
    client_cpu_s: float
    other_cores: float | None
    extra: dict[str, Any] = field(default_factory=dict)


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _self_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


@contextlib.contextmanager
def measured(server: ManagedServer, out: dict[str, float | None]) -> Iterator[None]:
    """CPU of the server tree, of this process and its children, and of the rest."""
    s0, c0, b0 = server.cpu_seconds(), _self_cpu() + _children_cpu(), servers.system_busy_seconds()
    t0 = time.perf_counter()
    yield
    wall = time.perf_counter() - t0
    s1, c1, b1 = server.cpu_seconds(), _self_cpu() + _children_cpu(), servers.system_busy_seconds()
    srv = None if s0 is None or s1 is None else s1 - s0
    cli = c1 - c0
    other = None
    if b0 is not None and b1 is not None and wall > 0:
        other = max(0.0, ((b1 - b0) - (srv or 0.0) - cli) / wall)
    out.update(wall_s=wall, server_cpu_s=srv, client_cpu_s=cli, other_cores=other)


def _cell(value: float, m: dict[str, float | None], **extra: Any) -> Cell:
    wall = m["wall_s"] or 0.0
    return Cell(value, wall, m["server_cpu_s"], m["client_cpu_s"] or 0.0, m["other_cores"], extra)


def summarize(cells: Sequence[Cell], unit_bytes: float | None = None) -> dict[str, Any]:
    """Medians over runs; server CPU per MB (or per op when unit_bytes is None)."""

    def med(values: list[float]) -> float | None:
        return round(statistics.median(values), 3) if values else None

    per_unit: list[float] = []
    for c in cells:
        if c.server_cpu_s is None or not c.value or not c.wall_s:
            continue
        units = c.value * c.wall_s
        per_unit.append(c.server_cpu_s * 1000 / units)
    return {
        "runs": len(cells),
        "values": [round(c.value, 1) for c in cells],
        "median": med([c.value for c in cells]),
        "server_cores": med([c.server_cpu_s / c.wall_s for c in cells if c.server_cpu_s]),
        "client_cores": med([c.client_cpu_s / c.wall_s for c in cells if c.wall_s]),
        "server_cpu_ms_per_unit": med(per_unit),
        "other_cores_max": round(max((c.other_cores or 0.0 for c in cells), default=0.0), 3),
        "extra": [c.extra for c in cells if c.extra],
    }


# --------------------------------------------------------------------------- servers


@contextlib.contextmanager
def _env(name: str, value: str | None) -> Iterator[None]:
    old = os.environ.get(name)
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


@dataclass
class Target:
    """A Sealbox with an NBD port, and (once prepared) an attached volume."""

    server: ManagedServer
    nbd_port: int
    region: str
    volume_id: str = ""
    written: int = 0

    def client(self, service: str) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            service,
            endpoint_url=self.server.url,
            region_name=self.region,
            aws_access_key_id=self.server.access_key,
            aws_secret_access_key=self.server.secret_key,
            config=Config(
                max_pool_connections=THREADS * 2,
                retries={"max_attempts": 1, "mode": "standard"},
            ),
        )

    @property
    def uri(self) -> str:
        return f"nbd://127.0.0.1:{self.nbd_port}/{self.volume_id}"


def start_target(args: argparse.Namespace, work_dir: Path, null: bool) -> Target:
    name = NULL if null else ENC
    sub = work_dir / name
    sub.mkdir()
    port = servers.free_port()
    with _env(NULL_ENV, "1" if null else None):
        server = servers.start_sealbox(
            sub,
            args.startup_timeout,
            args.sealbox_cmd,
            ["--nbd-port", str(port), *args.sealbox_arg],
        )
    server.name = f"sealbox-{name}"
    return Target(server=server, nbd_port=port, region=args.region)


@contextlib.contextmanager
def started_targets(args: argparse.Namespace, work_dir: Path) -> Iterator[dict[str, Target]]:
    out: dict[str, Target] = {}
    try:
        if args.sealbox_url:
            ext = ManagedServer(
                "sealbox", args.sealbox_url, args.sealbox_pid, args.access_key, args.secret_key
            )
            servers.wait_ready(ext, "/_sealbox/health", 10.0)
            out[ENC] = Target(server=ext, nbd_port=args.nbd_port, region=args.region)
        else:
            out[ENC] = start_target(args, work_dir, null=False)
            if "nbd" in args.only and not args.no_null:
                out[NULL] = start_target(args, work_dir, null=True)
        yield out
    finally:
        for t in out.values():
            t.server.stop()


def _wait(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise TimeoutError(f"timed out waiting for {what}")


def attach_volume(t: Target, size_gib: int) -> None:
    ec2 = t.client("ec2")
    volume_id = ec2.create_volume(Size=size_gib, AvailabilityZone=f"{t.region}a")["VolumeId"]
    _wait(
        lambda: ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]["State"] == "available",
        f"{volume_id} to be available",
    )
    ec2.attach_volume(VolumeId=volume_id, InstanceId=INSTANCE, Device="/dev/sdf")
    t.volume_id = volume_id
    probe = ["nbdinfo", "--size", t.uri] if shutil.which("nbdinfo") else None

    def exported() -> bool:
        if probe is None:
            return bool(fio_job(t, "probe", "read", 4 * KiB, 1, size=4 * KiB, check=False))
        return subprocess.run(probe, capture_output=True, timeout=30).returncode == 0

    _wait(exported, f"the NBD export of {volume_id}")


# --------------------------------------------------------------------------- fio


def fio_job(
    t: Target,
    name: str,
    rw: str,
    bs: int,
    depth: int,
    *,
    size: int | None = None,
    runtime: float | None = None,
    end_fsync: bool = False,
    check: bool = True,
) -> dict[str, Any] | None:
    argv = [
        "fio",
        f"--name={name}",
        "--ioengine=nbd",
        f"--uri={t.uri}",
        f"--rw={rw}",
        f"--bs={bs}",
        f"--iodepth={depth}",
        "--numjobs=1",
        "--output-format=json",
        "--randrepeat=0",
    ]
    if size is not None:
        argv.append(f"--size={size}")
    if runtime is not None:
        argv += ["--time_based=1", f"--runtime={runtime:g}s"]
    if end_fsync:
        argv.append("--end_fsync=1")
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        if check:
            raise RuntimeError(f"fio failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
        return None
    text = proc.stdout
    doc: dict[str, Any] = json.loads(text[text.index("{") :])
    return doc


def _fio_rate(doc: dict[str, Any], direction: str) -> tuple[float, float, dict[str, Any]]:
    """(MB/s, IOPS, latency percentiles in ms) of a fio JSON report's only job."""
    job = doc["jobs"][0][direction]
    pct = job.get("clat_ns", {}).get("percentile", {})
    lat = {
        k: round(pct[v] / 1e6, 3)
        for k, v in (("p50_ms", "50.000000"), ("p99_ms", "99.000000"))
        if v in pct
    }
    if job.get("io_bytes", 0) <= 0:
        raise RuntimeError(f"fio moved no data ({direction})")
    return job["bw_bytes"] / 1e6, float(job["iops"]), lat


def nbd_seqwrite(t: Target, s: Sizes) -> Cell:
    m: dict[str, float | None] = {}
    with measured(t.server, m):
        doc = fio_job(t, "seqwrite", "write", MiB, s.seq_depth, size=s.seq_bytes, end_fsync=True)
    assert doc is not None
    # fio's bw excludes the final flush; the figure here includes it (bytes / wall).
    _, _, lat = _fio_rate(doc, "write")
    t.written = s.seq_bytes
    return _cell(
        s.seq_bytes / 1e6 / (m["wall_s"] or 1),
        m,
        fio_mbps=round(_fio_rate(doc, "write")[0], 1),
        **lat,
    )


def nbd_seqread(t: Target, s: Sizes) -> Cell:
    m: dict[str, float | None] = {}
    with measured(t.server, m):
        doc = fio_job(t, "seqread", "read", MiB, s.seq_depth, size=t.written)
    assert doc is not None
    mbps, _, lat = _fio_rate(doc, "read")
    return _cell(mbps, m, **lat)


def nbd_randread(t: Target, s: Sizes) -> Cell:
    m: dict[str, float | None] = {}
    with measured(t.server, m):
        doc = fio_job(
            t, "randread", "randread", 4 * KiB, s.rand_depth, size=t.written, runtime=s.rand_seconds
        )
    assert doc is not None
    _, iops, lat = _fio_rate(doc, "read")
    return _cell(iops, m, **lat)


# --------------------------------------------------------------------------- direct APIs


def _b64sha(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def direct_put(t: Target, s: Sizes, pool: list[tuple[bytes, str]]) -> tuple[Cell, Cell, str]:
    """PutSnapshotBlock of s.direct_blocks blocks on 8 threads, then CompleteSnapshot."""
    ebs = t.client("ebs")
    volume_gib = max(1, -(-s.direct_blocks * BLOCK // GiB))
    snapshot_id = ebs.start_snapshot(VolumeSize=volume_gib, Timeout=60)["SnapshotId"]
    digests: list[bytes] = [b""] * s.direct_blocks
    next_index = iter(range(s.direct_blocks))
    lock = threading.Lock()
    errors: list[str] = []

    def worker() -> None:
        client = t.client("ebs")
        while True:  # bounded: the shared iterator yields s.direct_blocks indexes
            with lock:
                index = next(next_index, None)
            if index is None or errors:
                return
            data, checksum = pool[index % len(pool)]
            try:
                client.put_snapshot_block(
                    SnapshotId=snapshot_id,
                    BlockIndex=index,
                    BlockData=data,
                    DataLength=BLOCK,
                    Checksum=checksum,
                    ChecksumAlgorithm="SHA256",
                )
            except Exception as exc:
                errors.append(repr(exc)[:300])
                return
            digests[index] = base64.b64decode(checksum)

    m_put: dict[str, float | None] = {}
    m_all: dict[str, float | None] = {}
    with measured(t.server, m_all):
        with measured(t.server, m_put), ThreadPoolExecutor(THREADS) as ex:
            for f in [ex.submit(worker) for _ in range(THREADS)]:
                f.result()
        if errors:
            raise RuntimeError(f"PutSnapshotBlock failed: {errors[0]}")
        aggregate = base64.b64encode(hashlib.sha256(b"".join(digests)).digest()).decode()
        ebs.complete_snapshot(
            SnapshotId=snapshot_id,
            ChangedBlocksCount=s.direct_blocks,
            Checksum=aggregate,
            ChecksumAlgorithm="SHA256",
            ChecksumAggregationMethod="LINEAR",
        )
    total = s.direct_blocks * BLOCK / 1e6
    put = _cell(total / (m_put["wall_s"] or 1), m_put)
    both = _cell(total / (m_all["wall_s"] or 1), m_all)
    return put, both, snapshot_id


def direct_get(t: Target, snapshot_id: str, s: Sizes, pool: list[tuple[bytes, str]]) -> Cell:
    ebs = t.client("ebs")
    tokens: dict[int, str] = {}
    kwargs: dict[str, Any] = {"SnapshotId": snapshot_id}
    for _ in range(1000):  # bounded pagination
        page = ebs.list_snapshot_blocks(**kwargs)
        tokens.update({b["BlockIndex"]: b["BlockToken"] for b in page["Blocks"]})
        if "NextToken" not in page:
            break
        kwargs["NextToken"] = page["NextToken"]
    if len(tokens) != s.direct_blocks:
        raise RuntimeError(f"snapshot lists {len(tokens)} blocks, wrote {s.direct_blocks}")
    items = sorted(tokens.items())
    lock = threading.Lock()
    it = iter(items)
    errors: list[str] = []

    def worker() -> None:
        client = t.client("ebs")
        while True:  # bounded by the iterator
            with lock:
                item = next(it, None)
            if item is None or errors:
                return
            index, token = item
            try:
                resp = client.get_snapshot_block(
                    SnapshotId=snapshot_id, BlockIndex=index, BlockToken=token
                )
                data = resp["BlockData"].read()
            except Exception as exc:
                errors.append(repr(exc)[:300])
                return
            if resp["Checksum"] != pool[index % len(pool)][1] or len(data) != BLOCK:
                errors.append(f"block {index} read back different")

    m: dict[str, float | None] = {}
    with measured(t.server, m), ThreadPoolExecutor(THREADS) as ex:
        for f in [ex.submit(worker) for _ in range(THREADS)]:
            f.result()
    if errors:
        raise RuntimeError(f"GetSnapshotBlock failed: {errors[0]}")
    return _cell(s.direct_blocks * BLOCK / 1e6 / (m["wall_s"] or 1), m)


# --------------------------------------------------------------------------- report


def _check(checks: list[dict[str, Any]], target: str, ok: bool | None, figure: str) -> None:
    status = "n/a" if ok is None else ("PASS" if ok else "FAIL")
    checks.append({"target": target, "status": status, "figure": figure})


def run(args: argparse.Namespace, work_dir: Path) -> tuple[dict[str, Any], str, bool]:
    sizes = QUICK if args.quick else Sizes()
    raw: dict[str, list[Cell]] = {}
    errors: list[str] = []
    load0 = os.getloadavg()
    t0 = time.monotonic()

    def add(key: str, cell: Cell) -> None:
        raw.setdefault(key, []).append(cell)
        log(f"{key}: {cell.value:,.1f} (server {cell.server_cpu_s or 0:.2f}s CPU, "
            f"other {_fmt(cell.other_cores, '.2f')} cores)")  # fmt: skip

    with started_targets(args, work_dir) as targets:
        if "nbd" in args.only:
            if shutil.which("fio") is None:
                raise SystemExit("fio is not installed: apt-get install -y fio")
            for t in targets.values():
                attach_volume(t, sizes.volume_gib)
                log(f"{t.server.name}: {t.server.url} pid={t.server.pid} {t.uri}")
            for _run in range(args.runs):
                for name, t in targets.items():  # interleaved: drift hits both alike
                    for label, func in (
                        ("seqwrite", nbd_seqwrite),
                        ("seqread", nbd_seqread),
                        ("randread", nbd_randread),
                    ):
                        if args.wait_quiet:
                            wait_quiet(args.wait_quiet)
                        try:
                            add(f"nbd.{label}.{name}", func(t, sizes))
                        except Exception as exc:
                            errors.append(f"nbd {label} {name}: {exc}")
                            log(f"! {errors[-1]}")
        if "direct" in args.only:
            t = targets[ENC]
            rng = random.Random(7)
            pool = [(d, _b64sha(d)) for d in (rng.randbytes(BLOCK) for _ in range(16))]
            for _run in range(args.runs):
                if args.wait_quiet:
                    wait_quiet(args.wait_quiet)
                try:
                    put, both, snapshot_id = direct_put(t, sizes, pool)
                    add("direct.put", put)
                    add("direct.put_complete", both)
                    if args.wait_quiet:
                        wait_quiet(args.wait_quiet)
                    add("direct.get", direct_get(t, snapshot_id, sizes, pool))
                    t.client("ec2").delete_snapshot(SnapshotId=snapshot_id)
                except Exception as exc:
                    errors.append(f"direct: {exc}")
                    log(f"! {errors[-1]}")
        if errors:
            for t in targets.values():
                log(f"{t.server.name} log tail:\n{t.server.log_tail(30)}")
    elapsed = time.monotonic() - t0
    load1 = os.getloadavg()

    summary = {k: summarize(v) for k, v in raw.items()}

    def med(key: str) -> float | None:
        s = summary.get(key)
        return None if s is None else s["median"]

    ratios: dict[str, float | None] = {}
    for label in ("seqwrite", "seqread", "randread"):
        enc, null = med(f"nbd.{label}.{ENC}"), med(f"nbd.{label}.{NULL}")
        ratios[label] = round(enc / null, 3) if enc and null else None

    checks: list[dict[str, Any]] = []
    for key, target, unit, goal in (
        (f"nbd.seqwrite.{ENC}", "NBD seq. 1 MiB writes + flush", "MB/s", TARGET_SEQ_MBPS),
        (f"nbd.seqread.{ENC}", "NBD sequential 1 MiB reads", "MB/s", TARGET_SEQ_MBPS),
        (f"nbd.randread.{ENC}", "NBD 4 KiB random reads, QD16", "IOPS", TARGET_RAND_IOPS),
        ("direct.put", "PutSnapshotBlock x8", "MB/s", TARGET_DIRECT_MBPS),
        ("direct.put_complete", "PutSnapshotBlock x8 + Complete", "MB/s", TARGET_DIRECT_MBPS),
        ("direct.get", "GetSnapshotBlock x8", "MB/s", TARGET_DIRECT_MBPS),
    ):  # fmt: skip
        v = med(key)
        if key in summary:
            _check(checks, f"{target} >= {goal:g} {unit}", None if v is None else v >= goal,
                   f"{_fmt(v, ',.1f')} {unit}")  # fmt: skip
    if errors:
        _check(checks, "no errors", False, f"{len(errors)} error(s)")
    noisy = [k for k, s in summary.items() if s["other_cores_max"] > NOISE_CORES]

    rows = []
    for key, s in summary.items():
        unit = "IOPS" if "randread" in key else "MB/s"
        per = "ms CPU/op" if unit == "IOPS" else "ms CPU/MB"
        rows.append(
            f"{key:<24}{_fmt(s['median'], ',.1f'):>10} {unit:<5}"
            f"{_fmt(s['server_cpu_ms_per_unit'], '.3f'):>8} {per:<10}"
            f"{_fmt(s['server_cores'], '.2f'):>6} srv{_fmt(s['client_cores'], '.2f'):>6} cli"
            f"  runs {s['values']}"
        )
    header = (
        f"== EBS: median of {args.runs} run(s), {os.cpu_count()} CPUs, {elapsed:.0f} s; "
        f"load average {load0[0]:.2f} before, {load1[0]:.2f} after =="
    )
    text = [header, *rows]
    if ratios:
        text.append(
            "encryption cost (xts / null cipher): "
            + ", ".join(f"{k} {_fmt(v, '.2f')}" for k, v in ratios.items())
        )
    if errors:
        text += ["", "== errors =="] + [f"! {e}" for e in errors[:20]]
    if noisy:
        text += ["", f"== noisy: other processes used > {NOISE_CORES} cores during =="]
        text += [f"! {k} (max {summary[k]['other_cores_max']:.2f})" for k in noisy]
    text += ["", "== targets =="] + [
        f"{c['status']:<5} {c['target']}: {c['figure']}" for c in checks
    ]
    doc = {
        "config": {
            "quick": args.quick,
            "runs": args.runs,
            "sizes": sizes.__dict__,
            "threads": THREADS,
            "cpus": os.cpu_count(),
            "elapsed_s": round(elapsed, 1),
            "loadavg_before": load0,
            "loadavg_after": load1,
        },
        "results": summary,
        "encryption_ratio": ratios,
        "checks": checks,
        "errors": errors,
        "noisy": noisy,
    }
    passed = all(c["status"] != "FAIL" for c in checks)
    return doc, "\n".join(text), passed


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Benchmark Sealbox EBS: volumes over NBD (fio) and the direct APIs (boto3).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--only", default=",".join(SCENARIOS), help="comma list of nbd,direct")
    p.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    p.add_argument("--runs", type=int, help="runs per measurement, medians [default 3, quick 1]")
    p.add_argument("--no-null", action="store_true", help="skip the null-cipher server")
    env = os.environ.get
    for flag, kind, default, text in (
        ("--sealbox-url", str, None, "use a running Sealbox (loopback; no null-cipher twin)"),
        ("--sealbox-pid", int, None, "pid whose process tree is that Sealbox"),
        ("--nbd-port", int, 10809, "NBD port of --sealbox-url"),
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
    p.add_argument("--keep-logs", action="store_true", help="keep server logs and data dirs")
    p.add_argument("--strict", action="store_true", help="exit 1 if a target check fails")
    args = p.parse_args(argv)
    args.only = [s for s in args.only.split(",") if s]
    args.runs = args.runs or (1 if args.quick else 3)
    for v in args.only:
        if v not in SCENARIOS:
            p.error(f"--only: unknown {v!r} (choose from {', '.join(SCENARIOS)})")
    if not 1 <= args.runs <= 20:
        p.error("--runs must be in [1, 20]")
    if not 0 <= args.wait_quiet <= 600:
        p.error("--wait-quiet must be in [0, 600]")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_exit)
    work_dir = Path(tempfile.mkdtemp(prefix="sealbox-ebs-bench-"))
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
