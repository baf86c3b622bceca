"""`dcsctl check perf` vs `etcdctl check perf` on one lab cluster, loads s, m and l.

    .venv/bin/python benchmarks/bench_check_perf.py [--loads s,m,l] [--duration 60]

Same cluster, same run, alternating per load. etcdctl gets the admin certificate through
flags (no ETCDCTL_* environment) and the same endpoints; its keys are deleted and its
history compacted after each run so both start from the same database. Loopback
127.0.98.10-12.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
BIN = REPO / ".venv" / "bin"
IPS = ["127.0.98.10", "127.0.98.11", "127.0.98.12"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--loads", default="s,m,l")
    parser.add_argument("--duration", type=int, default=60)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="dcsctl-bench-perf-"))
    env = {**os.environ, "DCSCTL_HOME": str(scratch / "home"), "DCSCTL_ETCD_BIN_DIR": str(BIN)}
    spec_file = scratch / "perf.yaml"

    def dcsctl(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN / "dcsctl"), *argv, "-f", str(spec_file)], env=env,
                              check=check, capture_output=True, text=True, timeout=900)

    spec = yaml.safe_load(subprocess.run([str(BIN / "dcsctl"), "init", "--name", "pbench"],
                                         env=env, check=True, capture_output=True,
                                         text=True).stdout)
    for member, ip in zip(spec["members"], IPS, strict=True):
        member["address"] = ip
    spec_file.write_text(yaml.safe_dump(spec))
    rows = []
    try:
        dcsctl("up")
        exports = {
            name: shlex.split(value)[0]
            for name, value in (line.removeprefix("export ").split("=", 1)
                                for line in dcsctl("env").stdout.splitlines()
                                if line.startswith("export ETCDCTL_"))
        }
        etcdctl = [str(BIN / "etcdctl"), f"--endpoints={exports['ETCDCTL_ENDPOINTS']}",
                   f"--cacert={exports['ETCDCTL_CACERT']}", f"--cert={exports['ETCDCTL_CERT']}",
                   f"--key={exports['ETCDCTL_KEY']}"]
        clean_env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
        for load in args.loads.split(","):
            ours = json.loads(dcsctl("check", "perf", "--load", load, "--duration",
                                     str(args.duration), "--json", check=False).stdout)
            theirs = subprocess.run(
                [*etcdctl, "check", "perf", f"--load={load}", "--auto-compact",
                 "--auto-defrag"], env=clean_env, capture_output=True, text=True,
                timeout=900, check=False)
            match = re.search(r"Throughput (?:is|too low:) (\d+) writes/s", theirs.stdout)
            etcdctl_rps = int(match.group(1)) - 1 if match else 0  # etcdctl prints int+1
            slowest = re.search(r"(\d+\.\d+)s\n", theirs.stdout)
            stats = ours["stats"]
            rows.append({
                "load": load, "target": ours["load"]["limit"],
                "dcsctl_rps": stats["rps"], "etcdctl_rps": etcdctl_rps,
                "ratio": stats["rps"] / etcdctl_rps if etcdctl_rps else float("nan"),
                "dcsctl_p50_ms": stats["p50"] * 1000, "dcsctl_p90_ms": stats["p90"] * 1000,
                "dcsctl_p99_ms": stats["p99"] * 1000,
                "dcsctl_slowest_s": stats["slowest"],
                "etcdctl_slowest_s": float(slowest.group(1)) if slowest else float("nan"),
                "dcsctl_verdict": ours["verdict"][-1],
                "etcdctl_verdict": theirs.stdout.strip().splitlines()[-1]
                if theirs.stdout.strip() else f"error: {theirs.stderr.strip()[-200:]}",
            })
            print(rows[-1], file=sys.stderr)
    finally:
        dcsctl("destroy", "--yes", check=False)
        subprocess.run(["rm", "-rf", str(scratch)], check=False)
    out = REPO / "benchmarks" / "out"
    out.mkdir(exist_ok=True)
    (out / "check_perf.json").write_text(json.dumps(rows, indent=2))
    print("| load | target | dcsctl writes/s | etcdctl writes/s | ratio | dcsctl p50 / p90 / p99 "
          "| slowest dcsctl / etcdctl | verdicts dcsctl / etcdctl |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['load']} | {r['target']}/s | {r['dcsctl_rps']:.0f} | {r['etcdctl_rps']} | "
              f"{r['ratio']:.3f} | {r['dcsctl_p50_ms']:.1f} / {r['dcsctl_p90_ms']:.1f} / "
              f"{r['dcsctl_p99_ms']:.1f} ms | {r['dcsctl_slowest_s']:.3f} / "
              f"{r['etcdctl_slowest_s']:.3f} s | {r['dcsctl_verdict']} / "
              f"{r['etcdctl_verdict']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
