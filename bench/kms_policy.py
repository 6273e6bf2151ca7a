"""Authorization cost: the KMS load against a key with a realistic policy and a grant,
side by side with a key that has the default policy, on one server in one run.

The realistic key policy has 10 statements with 3 conditions each (the statement that
admits the caller is the last Allow, so every statement is evaluated), an explicit
Deny whose conditions do not match, and one grant. Target: >= 85% of the default
key's throughput. Run from the repository root:

    python bench/kms_policy.py [--repeat 3] [--duration 4] [--output json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import kms as base
from bench import servers

TARGET_RATIO = 0.85


def realistic_policy(account: str) -> str:
    root = f"arn:aws:iam::{account}:root"
    statements: list[dict[str, Any]] = []
    for i in range(8):
        statements.append(
            {
                "Sid": f"Team{i}",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{account}:role/team-{i}"},
                "Action": ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey*"],
                "Resource": "*",
                "Condition": {
                    "StringEquals": {"kms:EncryptionContext:team": f"team-{i}"},
                    "StringLike": {"kms:ViaService": "s3.*.amazonaws.com"},
                    "Bool": {"aws:SecureTransport": "true"},
                },
            }
        )
    statements.append(
        {
            "Sid": "DenyOutsideNetwork",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "kms:*",
            "Resource": "*",
            "Condition": {
                "NotIpAddress": {"aws:SourceIp": ["127.0.0.0/8", "10.0.0.0/8"]},
                "Bool": {"aws:ViaAWSService": "false"},
                "StringNotEquals": {"aws:PrincipalAccount": account},
            },
        }
    )
    statements.append(
        {
            "Sid": "Operators",
            "Effect": "Allow",
            "Principal": {"AWS": root},
            "Action": "kms:*",
            "Resource": "*",
            "Condition": {
                "StringEquals": {"kms:CallerAccount": account},
                "Bool": {"aws:ViaAWSService": "false"},
                "IpAddress": {"aws:SourceIp": "127.0.0.0/8"},
            },
        }
    )
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def realistic_key(account: str) -> Any:
    """A create hook for bench.kms.prepare: the realistic policy plus one grant."""

    def create(kms: Any) -> str:
        key_id: str = kms.create_key(
            Description="sealbox-bench-policy", Policy=realistic_policy(account)
        )["KeyMetadata"]["KeyId"]
        kms.create_grant(
            KeyId=key_id,
            GranteePrincipal=f"arn:aws:iam::{account}:role/batch",
            Operations=["Decrypt", "GenerateDataKey"],
            Constraints={"EncryptionContextSubset": {"team": "batch"}},
        )
        return key_id

    return create


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
    with tempfile.TemporaryDirectory(prefix="sealbox-policy-bench-") as tmp:
        server = servers.start_sealbox(Path(tmp), args.startup_timeout, args.sealbox_cmd, [])
        try:
            plain = base.Target(server=server, region=args.region)
            policy = base.Target(server=server, region=args.region)
            base.prepare(plain, args.pool)
            account = plain.clients(1)[0].describe_key(KeyId=plain.key_id)["KeyMetadata"][
                "AWSAccountId"
            ]
            base.prepare(policy, args.pool, realistic_key(account))
            if plain.sanity != "ok" or policy.sanity != "ok":
                raise SystemExit(f"sanity: default={plain.sanity} realistic={policy.sanity}")
            results: dict[str, list[float]] = {}
            for run in range(ns.repeat):
                for op in ops:
                    for n in threads:
                        for name, target in (("default", plain), ("realistic", policy)):
                            cell = base.run_cell(target, op, n, args)
                            results.setdefault(f"{op} x{n} {name}", []).append(cell.ops_per_s)
                            base.log(f"run {run + 1} {op} x{n} {name}: {cell.ops_per_s:.1f} ops/s")
        finally:
            server.stop()
    report = {}
    for op in ops:
        for n in threads:
            d = statistics.median(results[f"{op} x{n} default"])
            r = statistics.median(results[f"{op} x{n} realistic"])
            report[f"{op} x{n}"] = {"default": d, "realistic": r, "ratio": r / d if d else None}
    if ns.output == "json":
        print(json.dumps(report, indent=2))
    else:
        print(f"{'cell':<22}{'default ops/s':>15}{'realistic ops/s':>17}{'ratio':>8}")
        for cell, row in report.items():
            print(f"{cell:<22}{row['default']:>15.1f}{row['realistic']:>17.1f}{row['ratio']:>8.2f}")
        worst = min(row["ratio"] or 0 for row in report.values())
        verdict = "PASS" if worst >= TARGET_RATIO else "FAIL"
        print(f"{verdict}  realistic policy keeps >= {TARGET_RATIO:.0%}: worst {worst:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
