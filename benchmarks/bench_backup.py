"""`dcsctl backup` vs `etcdctl snapshot save`, `dcsctl restore` vs `etcdutl snapshot restore`,
on the same >= 100 MB database, in one run.

    .venv/bin/python benchmarks/bench_backup.py [--size-mb 110] [--rounds 3] [--value-kib 1]
        [--no-restore]

--value-kib 64 fills a >= 1 GB database in a minute (1 KiB values take ~10); each round
also times the stream alone: dcsctl's client (EtcdClient.snapshot into a file, sha256 on
the way, as `backup` streams) against `etcdctl snapshot save` of the same member.

Uses loopback addresses 127.0.97.10-12 and its own DCSCTL_HOME; cleans up by PID.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from etcd3aio import Etcd3Client

REPO = Path(__file__).resolve().parent.parent
BIN = REPO / ".venv" / "bin"
IPS = ["127.0.97.10", "127.0.97.11", "127.0.97.12"]
FILL_DEADLINE_S = 300


def dcsctl(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "dcsctl"), *argv], env=env, check=True,
                          capture_output=True, text=True, timeout=600)


async def fill(env_vars: dict[str, str], size_mb: int, value_kib: int = 1) -> int:
    """Write size_mb of value_kib KiB values with 50 concurrent writers (bounded in time)."""
    client = Etcd3Client(
        [f"{ip}:2379" for ip in IPS], tls_server_name="bbench.patroni.mydomain",
        ca_cert=Path(env_vars["ETCDCTL_CACERT"]).read_bytes(),
        cert_chain=Path(env_vars["ETCDCTL_CERT"]).read_bytes(),
        cert_key=Path(env_vars["ETCDCTL_KEY"]).read_bytes(),
    )
    await client.connect()
    value = os.urandom(512 * value_kib).hex().encode()  # incompressible
    total = size_mb * 1024 // value_kib
    deadline = time.monotonic() + FILL_DEADLINE_S
    queue = iter(range(total))

    async def writer() -> int:
        written = 0
        for index in queue:
            if time.monotonic() > deadline:
                break
            await client.kv.put(f"/bench/{index:08d}", value, timeout=10)
            written += 1
        return written

    try:
        return sum(await asyncio.gather(*(writer() for _ in range(50))))
    finally:
        await client.close()


def stream_round(env: dict[str, str], spec_file: Path, etcdctl: list[str],
                 clean_env: dict[str, str], scratch: Path, index: int) -> dict[str, float]:
    """The stream alone, from the member etcdctl uses, alternating which goes first."""
    import hashlib

    from dcsctl.ops.cluster import Context
    from dcsctl.spec import parse

    cluster = Context(env).cluster(parse(spec_file.read_text()))
    endpoint = f"https://{IPS[0]}:2379"
    target = scratch / "stream.db"

    def ours() -> float:
        started = time.perf_counter()
        digest = hashlib.sha256()
        with target.open("wb") as handle, cluster.admin_client(timeout=60) as client:
            def sink(chunk: bytes) -> None:
                digest.update(chunk)
                handle.write(chunk)
            client.snapshot(endpoint, sink)
            handle.flush()
            os.fsync(handle.fileno())
        return time.perf_counter() - started

    def theirs() -> float:
        started = time.perf_counter()
        subprocess.run([*etcdctl, "snapshot", "save", str(target)], env=clean_env,
                       check=True, capture_output=True, timeout=600)
        return time.perf_counter() - started

    first, second = (ours, theirs) if index % 2 == 0 else (theirs, ours)
    times = {first.__name__: first()}
    target.unlink()
    times[second.__name__] = second()
    target.unlink()
    return {"dcsctl_stream_s": times["ours"], "etcdctl_stream_s": times["theirs"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mb", type=int, default=110)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--value-kib", type=int, default=1)
    parser.add_argument("--no-restore", action="store_true")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="dcsctl-bench-backup-"))
    env = {**os.environ, "DCSCTL_HOME": str(scratch / "home"), "DCSCTL_ETCD_BIN_DIR": str(BIN)}
    spec_file = scratch / "bbench.yaml"
    spec = yaml.safe_load(dcsctl(env, "init", "--name", "bbench").stdout)
    for member, ip in zip(spec["members"], IPS, strict=True):
        member["address"] = ip
    spec["etcd"] = {"quota_backend_bytes": 4 * 2**30}
    spec_file.write_text(yaml.safe_dump(spec))
    rows: list[dict[str, float]] = []
    try:
        dcsctl(env, "up", "-f", str(spec_file))
        exports = dict(
            line.removeprefix("export ").split("=", 1)
            for line in dcsctl(env, "env", "-f", str(spec_file)).stdout.splitlines()
            if line.startswith("export ETCDCTL_")
        )
        exports = {k: shlex.split(v)[0] for k, v in exports.items()}
        filled_at = time.perf_counter()
        written = asyncio.run(fill(exports, args.size_mb, args.value_kib))
        fill_s = time.perf_counter() - filled_at
        status = json.loads(dcsctl(env, "status", "--json", "-f", str(spec_file)).stdout)
        db_size = max(m["status"]["db_size"] for m in status["members"])
        print(f"filled {written} keys in {fill_s:.1f} s; db {db_size / 1e6:.1f} MB",
              file=sys.stderr)
        etcdctl = [str(BIN / "etcdctl"), f"--endpoints=https://{IPS[0]}:2379",
                   f"--cacert={exports['ETCDCTL_CACERT']}", f"--cert={exports['ETCDCTL_CERT']}",
                   f"--key={exports['ETCDCTL_KEY']}"]
        clean_env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
        snapshot = None
        for index in range(args.rounds):
            backup_dir = scratch / f"backups-{index}"
            started = time.perf_counter()
            result = json.loads(dcsctl(env, "backup", "--dir", str(backup_dir), "--json",
                                       "-f", str(spec_file)).stdout)
            dcsctl_s = time.perf_counter() - started
            snapshot = Path(result["path"])
            size = snapshot.stat().st_size
            target = scratch / f"etcdctl-{index}.db"
            started = time.perf_counter()
            subprocess.run([*etcdctl, "snapshot", "save", str(target)], env=clean_env,
                           check=True, capture_output=True, timeout=600)
            etcdctl_s = time.perf_counter() - started
            rows.append({"size_mb": size / 1e6, "dcsctl_s": dcsctl_s, "etcdctl_s": etcdctl_s,
                         "dcsctl_in_process_s": float(result["seconds"]),
                         "dcsctl_mb_s": size / 1e6 / dcsctl_s,
                         "etcdctl_mb_s": target.stat().st_size / 1e6 / etcdctl_s})
            target.unlink()
            rows[-1].update(stream_round(env, spec_file, etcdctl, clean_env, scratch, index))
        assert snapshot is not None
        restores = []
        for index in range(0 if args.no_restore else args.rounds):
            started = time.perf_counter()
            done = dcsctl(env, "restore", str(snapshot), "--yes", "-f", str(spec_file))
            dcsctl_s = time.perf_counter() - started
            match = re.search(r"\[data\].*\((\d+\.\d+) s\)", done.stderr)
            data_s = float(match.group(1)) if match else float("nan")
            out_dir = scratch / f"etcdutl-{index}"
            started = time.perf_counter()
            subprocess.run(
                [str(BIN / "etcdutl"), "snapshot", "restore", str(snapshot), "--data-dir",
                 str(out_dir), "--name", "x", "--initial-cluster", f"x=https://{IPS[0]}:2380",
                 "--initial-advertise-peer-urls", f"https://{IPS[0]}:2380"],
                check=True, capture_output=True, timeout=600)
            etcdutl_s = time.perf_counter() - started
            restores.append({"dcsctl_s": dcsctl_s, "dcsctl_data_s": data_s,
                             "etcdutl_s": etcdutl_s})
    finally:
        subprocess.run([str(BIN / "dcsctl"), "destroy", "--yes", "-f", str(spec_file)],
                       env=env, capture_output=True, timeout=120, check=False)
        subprocess.run(["rm", "-rf", str(scratch)], check=False)
    backup_ratio = statistics.median(r["dcsctl_mb_s"] / r["etcdctl_mb_s"] for r in rows)
    restore_ratio = (statistics.median(r["dcsctl_s"] / r["etcdutl_s"] for r in restores)
                     if restores else float("nan"))
    data_ratio = (statistics.median(r["dcsctl_data_s"] / r["etcdutl_s"] for r in restores)
                  if restores else float("nan"))
    stream_ratio = statistics.median(r["etcdctl_stream_s"] / r["dcsctl_stream_s"] for r in rows)
    out = REPO / "benchmarks" / "out"
    out.mkdir(exist_ok=True)
    (out / "backup.json").write_text(json.dumps(
        {"db_size_bytes": db_size, "keys": written, "backups": rows, "restores": restores,
         "backup_throughput_ratio": backup_ratio, "restore_ratio": restore_ratio,
         "restore_data_phase_ratio": data_ratio}, indent=2))
    print(f"db: {db_size / 1e6:.1f} MB ({written} keys of {args.value_kib} KiB)\n")
    print("| round | snapshot | dcsctl backup (command) | of which in dcsctl's backup code | "
          "etcdctl snapshot save | throughput ratio (command) |")
    print("|---|---|---|---|---|---|")
    for i, r in enumerate(rows, 1):
        print(f"| {i} | {r['size_mb']:.1f} MB | {r['dcsctl_s']:.2f} s ({r['dcsctl_mb_s']:.0f} "
              f"MB/s) | {r['dcsctl_in_process_s']:.2f} s | {r['etcdctl_s']:.2f} s "
              f"({r['etcdctl_mb_s']:.0f} MB/s) | {r['dcsctl_mb_s'] / r['etcdctl_mb_s']:.2f} |")
    print(f"\nmedian backup throughput ratio dcsctl/etcdctl: **{backup_ratio:.2f}**\n")
    print("| round | dcsctl's stream (EtcdClient.snapshot + sha256 + write) | etcdctl snapshot "
          "save | stream throughput ratio |")
    print("|---|---|---|---|")
    for i, r in enumerate(rows, 1):
        print(f"| {i} | {r['dcsctl_stream_s']:.2f} s | {r['etcdctl_stream_s']:.2f} s | "
              f"{r['etcdctl_stream_s'] / r['dcsctl_stream_s']:.2f} |")
    print(f"\nmedian stream throughput ratio dcsctl/etcdctl: **{stream_ratio:.2f}**\n")
    if not restores:
        return 0
    print("| round | dcsctl restore (3 members, stop+restore+start+verify) | its [data] phase "
          "| etcdutl snapshot restore (1 member) | ratio total | ratio data phase |")
    print("|---|---|---|---|---|---|")
    for i, r in enumerate(restores, 1):
        print(f"| {i} | {r['dcsctl_s']:.2f} s | {r['dcsctl_data_s']:.2f} s | "
              f"{r['etcdutl_s']:.2f} s | {r['dcsctl_s'] / r['etcdutl_s']:.2f} | "
              f"{r['dcsctl_data_s'] / r['etcdutl_s']:.2f} |")
    print(f"\nmedian restore ratio: total **{restore_ratio:.2f}x**, data phase "
          f"**{data_ratio:.2f}x**")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
