"""What durable, hash-chained auditing costs: the KMS load against two Sealbox servers
in one run, one normal and one started with the benchmark-only `--bench-disable-audit`.

Target: with every event durable and chained, >= 85% of the throughput without the
audit sink. Run from the repository root:

    python bench/kms_audit.py [--repeat 3] [--duration 4] [--output json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import kms as base
from bench import servers

TARGET_RATIO = 0.85


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--duration", type=float, default=4.0)
    p.add_argument("--threads", default="1,8")
    p.add_argument("--ops", default=",".join(base.OPS))
    p.add_argument("--output", choices=["table", "json"], default="table")
    ns = p.parse_args()
    args = base.parse_args(["--servers", "sealbox", "--duration", str(ns.duration)])
    threads = [int(t) for t in ns.threads.split(",")]
    ops = ns.ops.split(",")
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="sealbox-audit-bench-") as tmp:
        audited_dir, silent_dir = Path(tmp) / "audited", Path(tmp) / "silent"
        audited_dir.mkdir()
        silent_dir.mkdir()
        audited = servers.start_sealbox(audited_dir, args.startup_timeout, args.sealbox_cmd, [])
        silent = servers.start_sealbox(
            silent_dir, args.startup_timeout, args.sealbox_cmd, ["--bench-disable-audit"]
        )
        try:
            targets = {
                "audited": base.Target(server=audited, region=args.region),
                "no-audit": base.Target(server=silent, region=args.region),
            }
            for name, target in targets.items():
                base.prepare(target, args.pool)
                if target.sanity != "ok":
                    raise SystemExit(f"{name}: {target.sanity}")
            for run in range(ns.repeat):
                for op in ops:
                    for n in threads:
                        for name, target in targets.items():
                            cell = base.run_cell(target, op, n, args)
                            results.setdefault(f"{op} x{n} {name}", []).append(cell.ops_per_s)
                            base.log(f"run {run + 1} {op} x{n} {name}: {cell.ops_per_s:.1f} ops/s")
        finally:
            audited.stop()
            silent.stop()
    report = {}
    for op in ops:
        for n in threads:
            a = statistics.median(results[f"{op} x{n} audited"])
            s = statistics.median(results[f"{op} x{n} no-audit"])
            report[f"{op} x{n}"] = {"audited": a, "no_audit": s, "ratio": a / s if s else None}
    if ns.output == "json":
        print(json.dumps(report, indent=2))
        return 0
    print(f"{'cell':<22}{'audited ops/s':>15}{'no-audit ops/s':>16}{'ratio':>8}")
    for cell, row in report.items():
        print(f"{cell:<22}{row['audited']:>15.1f}{row['no_audit']:>16.1f}{row['ratio']:>8.2f}")
    worst = min(row["ratio"] or 0 for row in report.values())
    verdict = "PASS" if worst >= TARGET_RATIO else "FAIL"
    print(f"{verdict}  durable chained audit keeps >= {TARGET_RATIO:.0%}: worst {worst:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
