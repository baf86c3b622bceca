"""`dcsctl backup` to an S3 store vs boto3's plain upload of the same snapshot file, in one
run against one versitygw (TLS, posix backend) on loopback, rounds alternating.

    .venv/bin/python benchmarks/bench_store.py [--size-mb 110] [--rounds 3]
    .venv/bin/python benchmarks/bench_store.py --size-mb 1100 --rounds 2     # >= 1 GB (slow)

Per round:
- dcsctl: `dcsctl backup --json` (stream from etcd, check, seal with AES-256-GCM, multipart
  upload, manifest). Its `upload_seconds` is the sealed streaming upload of the snapshot
  file alone; `seconds` is the whole command.
- reference: the same database saved locally (`dcsctl backup --dir`), then uploaded with
  boto3's `upload_file` at boto3's defaults (8 MiB parts, 10 threads), no encryption — what
  a user's own script would do with the same client library.
Ratios are throughputs: reference seconds / dcsctl seconds for the same bytes (>= 0.9 is
the goal for the upload). The end-to-end ratio compares `dcsctl backup` with
local `dcsctl backup --dir` + boto3 `upload_file`.

One 1-member lab cluster on 127.0.211.10 with its own DCSCTL_HOME; everything is removed
and every process stopped (by PID) at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.store.versitygw import versitygw  # noqa: E402

from dcsctl.ops.cluster import Context  # noqa: E402
from dcsctl.spec import parse  # noqa: E402

BIN = REPO / ".venv" / "bin"
MIB = 1 << 20
FILL_DEADLINE_S = 900


def dcsctl(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "dcsctl"), *argv], env=env, check=True,
                          capture_output=True, text=True, timeout=3600)


def fill(spec_file: Path, env: dict[str, str], size_mb: int) -> None:
    """size_mb of incompressible 1 MiB values (bounded in time)."""
    cluster = Context(env).cluster(parse(spec_file.read_text()))
    deadline = time.monotonic() + FILL_DEADLINE_S
    with cluster.admin_client(timeout=60) as client:
        for index in range(size_mb):
            if time.monotonic() > deadline:
                raise SystemExit(f"fill took more than {FILL_DEADLINE_S} s")
            client.put(f"/bench/{index:06d}", os.urandom(MIB))


def plain_upload(gateway_env: dict[str, str], path: Path, key: str) -> float:
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "s3", endpoint_url=gateway_env["endpoint"], region_name="us-east-1",
        aws_access_key_id=gateway_env["access"], aws_secret_access_key=gateway_env["secret"],
        verify=gateway_env["ca"], config=Config(s3={"addressing_style": "path"}))
    started = time.monotonic()
    client.upload_file(str(path), "dcs-backups", key)
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mb", type=int, default=110)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-store-") as scratch_name:
        scratch = Path(scratch_name)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ETCDCTL_", "DCSCTL_"))}
        env["DCSCTL_HOME"] = str(scratch / "home")
        with versitygw(scratch) as gateway:
            spec = {"name": "sbench", "members": [{"name": "sbench-0",
                                                    "address": "127.0.211.10"}],
                    "etcd": {"quota_backend_bytes": 8 * 2**30},
                    "backup": gateway.store_section("dcs-backups", prefix="bench/")}
            spec_file = scratch / "sbench.yaml"
            spec_file.write_text(yaml.safe_dump(spec))
            dcsctl(env, "up", "-f", str(spec_file))
            try:
                fill(spec_file, env, args.size_mb)
                local = scratch / "local"
                rounds = []
                reference = {"endpoint": gateway.endpoint, "access": gateway.access_key,
                             "secret": gateway.secret_key, "ca": str(gateway.ca_file)}
                for index in range(args.rounds):
                    order = ["dcsctl", "reference"] if index % 2 == 0 else \
                        ["reference", "dcsctl"]
                    row: dict[str, float] = {}
                    for side in order:
                        if side == "dcsctl":
                            result = json.loads(dcsctl(env, "backup", "--json", "--keep", "1",
                                                       "-f", str(spec_file)).stdout)
                            row["dcsctl_s"] = result["seconds"]
                            row["dcsctl_upload_s"] = result["upload_seconds"]
                            row["size"] = result["manifest"]["db_size"]
                        else:
                            started = time.monotonic()
                            saved = json.loads(dcsctl(env, "backup", "--dir", str(local),
                                                      "--json", "--keep", "1",
                                                      "-f", str(spec_file)).stdout)
                            row["local_backup_s"] = time.monotonic() - started
                            row["boto3_s"] = plain_upload(reference, Path(saved["path"]),
                                                          f"plain/round-{index}.db")
                    row["upload_ratio"] = row["boto3_s"] / row["dcsctl_upload_s"]
                    row["end_to_end_ratio"] = (row["local_backup_s"] + row["boto3_s"]) \
                        / row["dcsctl_s"]
                    rounds.append(row)
                    print(json.dumps(row), flush=True)
            finally:
                dcsctl(env, "destroy", "--yes", "-f", str(spec_file))
    summary = {
        "size_mb": args.size_mb, "rounds": rounds,
        "median_upload_ratio": statistics.median(r["upload_ratio"] for r in rounds),
        "median_end_to_end_ratio": statistics.median(r["end_to_end_ratio"] for r in rounds),
        "median_dcsctl_upload_mb_s": statistics.median(
            r["size"] / MIB / r["dcsctl_upload_s"] for r in rounds),
        "median_boto3_mb_s": statistics.median(r["size"] / MIB / r["boto3_s"] for r in rounds),
        "load_average_end": os.getloadavg()[0],
    }
    out = REPO / "benchmarks" / "out"
    out.mkdir(exist_ok=True)
    (out / f"store-{args.size_mb}.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps({k: v for k, v in summary.items() if k != "rounds"}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
