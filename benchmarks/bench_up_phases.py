"""Where `dcsctl up` spends its time, per etcd line: phases, first election, auth enable.

    .venv/bin/python benchmarks/bench_up_phases.py [--rounds 20] [--etcd 3.5.36 3.7.4]
        [--log-level info] [--dcsctl PATH]

--log-level info lets etcd log its raft lines, which the election columns need (dcsctl's
default, warn, leaves them empty); --dcsctl times another dcsctl executable (e.g. the
main branch's, for a before/after).

Per round and per etcd version (the versions alternate inside a round, so both see the
same machine load): a fresh `dcsctl up -f SPEC --json` on 127.0.96.10-12 with its own
DCSCTL_HOME, timed from spawn to exit; the per-phase seconds it reports; and, from the
members' own logs (etcd's JSON `ts`), how long after the first member started a leader was
elected, at which raft term (term 2 = the first election won; higher = a split or lost
first vote), and when auth was enabled. Then `dcsctl destroy --yes` (untimed). Output: a
markdown table on stdout and benchmarks/out/up_phases.json. Every step is bounded; each
round's cluster is destroyed, pass or fail.
"""

from __future__ import annotations

import argparse
import datetime as dt
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
from harness import BIN, OUT, REPO, clean_environ, poll, port_free, run

IPS = ("127.0.96.10", "127.0.96.11", "127.0.96.12")
NAME = "phasebench"


def _ts(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def election_facts(home: Path) -> dict[str, float | int | None]:
    """From the member logs: seconds from the first log line to the first 'became leader',
    its term, and to auth being enabled."""
    first = leader_at = auth_at = None
    term = None
    for log in sorted((home / NAME / "members").glob("*/etcd.log")):
        for line in log.read_text().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            at = _ts(entry["ts"])
            first = at if first is None else min(first, at)
            message = str(entry.get("msg", ""))
            if " became leader at term " in message and (leader_at is None or at < leader_at):
                leader_at, term = at, int(message.rsplit(" ", 1)[1])
            if "enabled authentication" in message.lower() or message == "enabled auth":
                auth_at = at if auth_at is None else min(auth_at, at)
    if first is None:
        return {"leader_s": None, "term": None, "auth_s": None}
    return {"leader_s": None if leader_at is None else leader_at - first, "term": term,
            "auth_s": None if auth_at is None else auth_at - first}


def one_up(version: str, scratch: Path, dcsctl: str, log_level: str) -> dict[str, object]:
    home = scratch / f"home-{version}"
    env = clean_environ()
    env["DCSCTL_HOME"] = str(home)
    env["DCSCTL_ETCD_BIN_DIR"] = str(REPO / ".tools" / f"etcd-{version}" / "bin")
    spec_file = scratch / f"{version}.yaml"
    # log_level info: the raft lines ("became leader at term N") are info; dcsctl's
    # default is warn.
    spec_file.write_text(f"name: {NAME}\ndomain: patroni.test\netcd: {{log_level: {log_level}}}\n"
                         "members:\n" + "".join(
        f"  - {{name: {NAME}-{i}, address: {ip}}}\n" for i, ip in enumerate(IPS)))
    poll(lambda: all(port_free(ip, p) for ip in IPS for p in (2379, 2380)),
         what="the benchmark's ports to be free", timeout=60)
    try:
        started = time.perf_counter()
        done = run([dcsctl, "up", "-f", str(spec_file), "--json"], env=env)
        wall = time.perf_counter() - started
        phases = {p["name"]: p["seconds"] for p in json.loads(done.stdout)["phases"]}
        return {"version": version, "wall_s": wall, "phases": phases, **election_facts(home)}
    finally:
        subprocess.run([dcsctl, "destroy", "--yes", "-f", str(spec_file)], env=env,
                       capture_output=True, timeout=120, check=False)
        shutil.rmtree(home, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--etcd", nargs="+", default=["3.5.36", "3.7.4"])
    parser.add_argument("--log-level", default="warn")
    parser.add_argument("--dcsctl", default=str(BIN / "dcsctl"))
    options = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench-up-phases-"))
    rows: list[dict[str, object]] = []
    load_start = os.getloadavg()[0]
    try:
        for round_index in range(options.rounds):
            order = options.etcd if round_index % 2 == 0 else options.etcd[::-1]
            for version in order:
                row = one_up(version, scratch, options.dcsctl, options.log_level)
                rows.append(row)
                print(json.dumps(row), file=sys.stderr)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    load_end = os.getloadavg()[0]
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "up_phases.json").write_text(json.dumps(
        {"load": [load_start, load_end], "rows": rows}, indent=2))
    print(f"dcsctl: {options.dcsctl}; etcd log level {options.log_level}")
    print(f"{options.rounds} rounds; load average {load_start:.2f} at start, "
          f"{load_end:.2f} at end\n")
    print("| etcd | up median | rounds ≤ 2 s | start | health | bootstrap | auth | "
          "leader after (median) | first leader at term 2 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for version in options.etcd:
        mine = [r for r in rows if r["version"] == version]
        walls = [float(r["wall_s"]) for r in mine]  # type: ignore[arg-type]

        def phase(name: str, rows_: list[dict[str, object]] = mine) -> str:
            values = [float(r["phases"].get(name, 0.0)) for r in rows_]  # type: ignore[union-attr]
            return f"{statistics.median(values):.2f} s (max {max(values):.2f})"

        leaders = [float(r["leader_s"]) for r in mine  # type: ignore[arg-type]
                   if r["leader_s"] is not None] or [float("nan")]
        first_try = sum(1 for r in mine if r["term"] == 2)
        print(f"| {version} | {statistics.median(walls):.2f} s | "
              f"{sum(w <= 2.0 for w in walls)}/{len(walls)} | {phase('start')} | "
              f"{phase('health')} | {phase('bootstrap')} | {phase('auth')} | "
              f"{statistics.median(leaders):.2f} s (max {max(leaders):.2f}) | "
              f"{first_try}/{len(mine)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
