"""Patroni under etcd leader kills: demotions (goal 0) and how close its lock came to expiring.

    .venv/bin/python benchmarks/bench_patroni_leader_kills.py [--kills 10]

A real Patroni + PostgreSQL (as the `postgres` user) on a dcsctl lab cluster. Each round
kills the etcd leader with SIGKILL, samples Patroni's role every 0.25 s for a bounded
window, and samples the remaining TTL of the lease behind /service/demo/leader: the
lock's ttl minus the lowest remaining TTL seen is the longest gap between Patroni's
renewals. Loopback addresses 127.0.96.x; everything cleaned up by PID.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.patroni.harness import patroni_node  # noqa: E402
from tests.support import cluster_of  # noqa: E402
from tests.support.lab import LabCluster, base_environ, kill_leftovers, run_cli  # noqa: E402

from dcsctl.errors import DcsctlError  # noqa: E402

TTL_S = 30
WINDOW_S = 15.0
LEADER_KEY = "/service/demo/leader"


class LockWatch(threading.Thread):
    """Samples the remaining TTL of the Patroni leader key's lease (bounded in time)."""

    def __init__(self, lab: LabCluster, seconds: float) -> None:
        super().__init__(daemon=True)
        self.lab, self.seconds = lab, seconds
        self.samples: list[tuple[float, int]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        cluster = cluster_of(self.lab)
        deadline = time.monotonic() + self.seconds
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                with cluster.admin_client(timeout=1.0) as client:
                    remaining = client.lease_ttl_of(LEADER_KEY)
                if remaining is not None:
                    self.samples.append((time.monotonic(), remaining))
            except DcsctlError:
                pass  # mid-election: the next sample will answer
            time.sleep(0.25)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kills", type=int, default=10)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="dcsctl-bench-patroni-"))
    scratch.chmod(0o755)
    home = scratch / "home"
    spec_file = scratch / "pbench.yaml"
    spec_file.write_text(yaml.safe_dump({
        "name": "pbench", "domain": "patroni.mydomain",
        "members": [{"name": f"dcs-0{i}", "address": f"127.0.96.{10 + i}"} for i in range(3)],
    }))
    lab = LabCluster("pbench", spec_file, home, base_environ(home))
    rounds = []
    watch = LockWatch(lab, seconds=args.kills * (WINDOW_S + 30) + 120)
    try:
        lab.ok("up")
        lab.ok("patroni", "add", "demo")
        bundle = scratch / "bundle"
        lab.ok("patroni", "config", "demo", "--node", "pg0", "--out", str(bundle))
        section = yaml.safe_load((bundle / "etcd3.yml").read_text())["etcd3"]
        with patroni_node("demo", "pg0", "127.0.96.50", section, bundle) as node:
            node.wait_primary()
            watch.start()
            for index in range(args.kills):
                members = lab.ok("status", "--json").json()["members"]
                assert isinstance(members, list)
                leader = next(m for m in members if m["status"] and m["status"]["is_leader"])
                killed_at = time.monotonic()
                os.kill(leader["pid"], signal.SIGKILL)
                roles, new_leader_s = [], None
                while time.monotonic() - killed_at < WINDOW_S:
                    roles.append(node.role())
                    if new_leader_s is None:
                        view = lab.dcsctl("status", "--json").json()["members"]
                        assert isinstance(view, list)
                        if any(m["status"] and m["status"]["is_leader"] for m in view):
                            new_leader_s = time.monotonic() - killed_at
                    time.sleep(0.25)
                demotions = sum(1 for a, b in zip(["primary", *roles], roles, strict=False)
                                if a == "primary" and b != "primary")
                window = [ttl for t, ttl in watch.samples if t >= killed_at]
                rounds.append({"round": index + 1, "killed": leader["name"],
                               "new_etcd_leader_s": new_leader_s, "demotions": demotions,
                               "min_remaining_ttl_s": min(window, default=None),
                               "roles_sampled": len(roles)})
                print(f"round {index + 1}: {rounds[-1]}", file=sys.stderr)
                lab.ok("up")
    finally:
        watch.stop.set()
        run_cli(["destroy", "--yes", "-f", str(spec_file)], lab.environ)
        kill_leftovers(home)
    lowest = min((ttl for _, ttl in watch.samples), default=None)
    out = REPO / "benchmarks" / "out"
    out.mkdir(exist_ok=True)
    (out / "patroni_kills.json").write_text(json.dumps(
        {"rounds": rounds, "lowest_remaining_ttl_s": lowest, "ttl_s": TTL_S}, indent=2))
    print("| round | etcd member killed | new etcd leader after | Patroni demotions | "
          "lowest remaining lock TTL |")
    print("|---|---|---|---|---|")
    for r in rounds:
        print(f"| {r['round']} | {r['killed']} | {r['new_etcd_leader_s']:.2f} s | "
              f"{r['demotions']} | {r['min_remaining_ttl_s']} s |")
    total = sum(int(r["demotions"]) for r in rounds)
    print(f"\n**{total} demotions in {len(rounds)} kills**; lock TTL {TTL_S} s, lowest "
          f"remaining TTL seen {lowest} s, so the longest gap between renewals was "
          f"{TTL_S - lowest if lowest is not None else '?'} s ({len(watch.samples)} samples).")
    return 0 if total == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
