"""CLI start-up: `dcsctl get`, `put`, `status` next to etcdctl's, same cluster, same run.

    .venv/bin/python benchmarks/bench_cli_startup.py [--rounds 30] [--before /path/to/dcsctl]

One lab cluster (3 members on 127.0.93.10-12, its own DCSCTL_HOME in a temp dir) is brought
up untimed; one untimed `dcsctl get` records the client profile the quick paths use (the
first `get`/`put` after a spec change is a full run, see cli/quick.py). Then, per round,
in an order that rotates from round to round:

- `dcsctl get /bench/key -f SPEC`  vs `etcdctl get /bench/key --print-value-only`
- `dcsctl put /bench/key VALUE -f SPEC` vs `etcdctl put /bench/key VALUE`
- `dcsctl status -f SPEC` vs `etcdctl endpoint status --cluster -w table` + `endpoint health
  --cluster` + `alarm list` (what dcsctl's one view shows, three commands)

etcdctl gets the endpoints and the admin certificate as flags (what `dcsctl env` exports).
Each command is timed from spawn to reaped (wall) and its peak resident memory read from
wait4's rusage (the largest of the process and the children it reaped: dcsctl's quick path
spawns etcdctl, and that etcdctl's peak counts). `--before` times another dcsctl
executable (e.g. the main branch's) in the same rounds. Results: a markdown table on stdout
and benchmarks/out/cli_startup.json. Every step is bounded; the cluster is destroyed at the
end, pass or fail.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import BIN, OUT, clean_environ, run

IPS = ("127.0.93.10", "127.0.93.11", "127.0.93.12")
KEY = "/bench/key"
TIME = "/usr/bin/time"  # GNU time (Debian's `time` package)
COMMAND_TIMEOUT_S = 30.0


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, int]:
    """(wall seconds, peak RSS in KiB) of one command, which must succeed.

    The peak comes from GNU time (`%M`: wait4's ru_maxrss, which covers the children the
    command reaped, so the etcdctl a quick path spawns counts). Not from this process's
    own wait4: a child forked from this Python starts with its resident pages and keeps
    that high-water mark across exec."""
    started = time.perf_counter()
    done = subprocess.run([TIME, "-f", "%M", *argv], env=env, stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          timeout=COMMAND_TIMEOUT_S, check=False)
    wall = time.perf_counter() - started
    if done.returncode not in (0, 5):  # status exits 5 if unhealthy: still a full view
        raise RuntimeError(f"{' '.join(argv[:4])} exited {done.returncode}: "
                           f"{done.stderr[-500:]}")
    return wall, int(done.stderr.strip().splitlines()[-1])


def spec_for(scratch: Path) -> Path:
    """A 3-member lab spec on this benchmark's own loopback addresses."""
    spec_file = scratch / "bench.yaml"
    spec_file.write_text("name: clibench\ndomain: patroni.test\nmembers:\n" + "".join(
        f"  - {{name: clibench-{i}, address: {ip}}}\n" for i, ip in enumerate(IPS)))
    return spec_file


def summary(samples: list[tuple[float, int]]) -> dict[str, float]:
    walls = sorted(w for w, _ in samples)
    return {"median_s": statistics.median(walls),
            "p90_s": walls[int(0.9 * (len(walls) - 1))],
            "median_rss_mib": statistics.median(r for _, r in samples) / 1024,
            "max_rss_mib": max(r for _, r in samples) / 1024}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--before", type=Path, help="another dcsctl executable to time too")
    options = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench-cli-"))
    env = clean_environ()
    env["DCSCTL_HOME"] = str(scratch / "home")
    env["DCSCTL_ETCD_BIN_DIR"] = str(BIN)
    dcsctl = str(BIN / "dcsctl")
    spec_file = spec_for(scratch)
    try:
        run([dcsctl, "up", "-f", str(spec_file)], env=env)
        run([dcsctl, "put", KEY, "warm", "-f", str(spec_file)], env=env)
        run([dcsctl, "get", KEY, "-f", str(spec_file)], env=env)  # records the profile
        pki = scratch / "home" / "clibench" / "pki"
        etcdctl = [str(BIN / "etcdctl"), "--endpoints=" + ",".join(
            f"https://{ip}:2379" for ip in IPS), f"--cacert={pki / 'ca.crt'}",
            f"--cert={pki / 'admin.crt'}", f"--key={pki / 'admin.key'}"]
        sides: dict[str, list[list[str]]] = {
            "etcdctl get": [[*etcdctl, "get", KEY, "--print-value-only"]],
            "dcsctl get": [[dcsctl, "get", KEY, "-f", str(spec_file)]],
            "etcdctl put": [[*etcdctl, "put", KEY, "value"]],
            "dcsctl put": [[dcsctl, "put", KEY, "value", "-f", str(spec_file)]],
            "etcdctl status (3 commands)": [
                [*etcdctl, "endpoint", "status", "--cluster", "-w", "table"],
                [*etcdctl, "endpoint", "health", "--cluster"], [*etcdctl, "alarm", "list"]],
            "dcsctl status": [[dcsctl, "status", "-f", str(spec_file)]],
        }
        if options.before is not None:
            for verb in ("get", "put", "status"):
                now = sides[f"dcsctl {verb}"][0]
                sides[f"before {verb}"] = [[str(options.before), *now[1:]]]
        names = list(sides)
        samples: dict[str, list[tuple[float, int]]] = {name: [] for name in names}
        load_start = os.getloadavg()[0]
        for round_index in range(options.rounds):
            shift = round_index % len(names)
            for name in names[shift:] + names[:shift]:
                runs = [timed(argv, env) for argv in sides[name]]
                samples[name].append((sum(w for w, _ in runs), max(r for _, r in runs)))
        load_end = os.getloadavg()[0]
    finally:
        subprocess.run([dcsctl, "destroy", "--yes", "-f", str(spec_file)], env=env,
                       capture_output=True, timeout=120, check=False)
        shutil.rmtree(scratch, ignore_errors=True)
    results = {name: summary(s) for name, s in samples.items()}
    ratios = {}
    for verb, reference in (("get", "etcdctl get"), ("put", "etcdctl put"),
                            ("status", "etcdctl status (3 commands)")):
        per_round = [d / e for (d, _), (e, _) in
                     zip(samples[f"dcsctl {verb}"], samples[reference], strict=True)]
        ratios[verb] = statistics.median(per_round)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "cli_startup.json").write_text(json.dumps(
        {"rounds": options.rounds, "load": [load_start, load_end], "results": results,
         "ratios": ratios}, indent=2))
    print(f"{options.rounds} rounds; load average {load_start:.2f} at start, "
          f"{load_end:.2f} at end\n")
    print("| command | median wall | p90 wall | median peak RSS | goal |")
    print("|---|---|---|---|---|")
    for name, r in results.items():
        goal = ""
        if name.startswith("dcsctl "):
            met = r["median_s"] <= 0.12 and r["max_rss_mib"] <= 40
            goal = f"≤ 0.12 s, ≤ 40 MiB: {'met' if met else 'NOT met'}"
        print(f"| {name} | {r['median_s']:.3f} s | {r['p90_s']:.3f} s | "
              f"{r['median_rss_mib']:.1f} MiB | {goal} |")
    print()
    for verb, ratio in ratios.items():
        print(f"dcsctl {verb} / etcdctl, median of per-round ratios: {ratio:.2f}×")
    return 0


if __name__ == "__main__":
    sys.exit(main())
