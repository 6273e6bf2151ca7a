"""Asymmetric and HMAC KMS operations: Sealbox against moto in the same run.

Cells: ECC_NIST_P256 Sign and Verify (target >= 2,000/s each at 8 clients), RSA_2048
Sign, HMAC_256 GenerateMac; 1 and 8 clients; the lean pre-signed load generator of
bench/kms.py. Run from the repository root:

    python bench/kms_asymmetric.py [--repeat 3] [--duration 4] [--output json]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import kms as base
from bench import loadgen, servers
from bench.loadgen import DriveParams, LeanTarget

TARGET_OPS = 2000.0
MESSAGE = os.urandom(64)

# cell name -> (KMS operation, CreateKey arguments, request builder(key_id, client))
Cell = tuple[str, dict[str, str], Callable[[str, Any], dict[str, Any]]]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _sign_p256(key_id: str, kms: Any) -> dict[str, Any]:
    return {"KeyId": key_id, "Message": _b64(MESSAGE), "SigningAlgorithm": "ECDSA_SHA_256"}


def _verify_p256(key_id: str, kms: Any) -> dict[str, Any]:
    sig = kms.sign(KeyId=key_id, Message=MESSAGE, SigningAlgorithm="ECDSA_SHA_256")["Signature"]
    return {
        "KeyId": key_id,
        "Message": _b64(MESSAGE),
        "Signature": _b64(sig),
        "SigningAlgorithm": "ECDSA_SHA_256",
    }


def _sign_rsa(key_id: str, kms: Any) -> dict[str, Any]:
    return {"KeyId": key_id, "Message": _b64(MESSAGE), "SigningAlgorithm": "RSASSA_PSS_SHA_256"}


def _mac(key_id: str, kms: Any) -> dict[str, Any]:
    return {"KeyId": key_id, "Message": _b64(MESSAGE), "MacAlgorithm": "HMAC_SHA_256"}


CELLS: dict[str, Cell] = {
    "Sign ECC_NIST_P256": ("Sign", {"KeySpec": "ECC_NIST_P256", "KeyUsage": "SIGN_VERIFY"},
                           _sign_p256),
    "Verify ECC_NIST_P256": ("Verify", {"KeySpec": "ECC_NIST_P256", "KeyUsage": "SIGN_VERIFY"},
                             _verify_p256),
    "Sign RSA_2048": ("Sign", {"KeySpec": "RSA_2048", "KeyUsage": "SIGN_VERIFY"}, _sign_rsa),
    "GenerateMac HMAC_256": ("GenerateMac",
                             {"KeySpec": "HMAC_256", "KeyUsage": "GENERATE_VERIFY_MAC"}, _mac),
}  # fmt: skip


def run_cell(
    target: base.Target, op: str, payload: dict[str, Any], threads: int, args: argparse.Namespace
) -> loadgen.CellResult:
    signed = loadgen.presign(
        target.server.url,
        target.region,
        target.server.access_key,
        target.server.secret_key,
        op,
        [payload] * args.pool,
    )
    host, port = target.server.host_port
    lean = LeanTarget(host, port, signed, args.lean_engine, args.request_timeout)
    params = DriveParams(
        n_requests=args.pool,
        duration_s=args.duration,
        max_ops=max(1, -(-args.max_ops // threads)),
        warmup=args.warmup,
    )
    return loadgen.run_lean(lean, threads, params, target.server.cpu_seconds, args.lean_mode)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--duration", type=float, default=4.0)
    p.add_argument("--threads", default="1,8")
    p.add_argument("--output", choices=["table", "json"], default="table")
    ns = p.parse_args()
    args = base.parse_args(["--duration", str(ns.duration)])
    threads = [int(t) for t in ns.threads.split(",")]
    results: dict[str, list[loadgen.CellResult]] = {}
    with tempfile.TemporaryDirectory(prefix="sealbox-asym-bench-") as tmp:
        work = Path(tmp)
        running = {
            "sealbox": servers.start_sealbox(work, args.startup_timeout, args.sealbox_cmd, []),
            "moto": servers.start_moto(work, args.startup_timeout),
        }
        try:
            prepared: dict[tuple[str, str], tuple[base.Target, dict[str, Any]]] = {}
            for name, server in running.items():
                target = base.Target(server=server, region=args.region)
                kms = target.clients(1)[0]
                for cell, (_, create, build) in CELLS.items():
                    key_id = kms.create_key(**create)["KeyMetadata"]["KeyId"]
                    prepared[(name, cell)] = (target, build(key_id, kms))
            for run in range(ns.repeat):
                for cell, (op, _, _) in CELLS.items():
                    for n in threads:
                        for name in running:
                            target, payload = prepared[(name, cell)]
                            result = run_cell(target, op, payload, n, args)
                            results.setdefault(f"{name}|{cell}|{n}", []).append(result)
                            base.log(
                                f"run {run + 1} {name} {cell} x{n}: {result.ops_per_s:.1f} ops/s"
                                f" errors={result.errors}"
                            )
        finally:
            for server in running.values():
                server.stop()
    report: dict[str, Any] = {}
    for cell in CELLS:
        for n in threads:
            row: dict[str, Any] = {}
            for name in running:
                runs = results[f"{name}|{cell}|{n}"]
                row[name] = statistics.median(r.ops_per_s for r in runs)
                row[f"{name}_errors"] = sum(r.errors for r in runs)
                cpu = [r.server_cpu_ms_per_op for r in runs if r.server_cpu_ms_per_op]
                row[f"{name}_cpu_ms"] = statistics.median(cpu) if cpu else None
            row["ratio"] = row["sealbox"] / row["moto"] if row["moto"] else None
            report[f"{cell} x{n}"] = row
    if ns.output == "json":
        print(json.dumps(report, indent=2))
        return 0
    print(f"{'cell':<28}{'sealbox ops/s':>14}{'cpu ms':>8}{'moto ops/s':>12}{'ratio':>8}{'err':>6}")
    for cell_name, row in report.items():
        ratio = f"{row['ratio']:.2f}" if row["ratio"] else "n/a"
        cpu = f"{row['sealbox_cpu_ms']:.3f}" if row["sealbox_cpu_ms"] else "n/a"
        errors = row["sealbox_errors"] + row["moto_errors"]
        print(
            f"{cell_name:<28}{row['sealbox']:>14.1f}{cpu:>8}{row['moto']:>12.1f}{ratio:>8}"
            f"{errors:>6}"
        )
    for cell in ("Sign ECC_NIST_P256", "Verify ECC_NIST_P256"):
        got = report[f"{cell} x8"]["sealbox"]
        verdict = "PASS" if got >= TARGET_OPS else "FAIL"
        print(f"{verdict}  {cell} >= {TARGET_OPS:.0f}/s at 8 clients: {got:.0f}/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
