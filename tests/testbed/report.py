"""The testbed section of docs/reliability.md: the scenarios of tests/testbed/scenarios.py
run for several rounds on a testbed of its own (the guide's three hosts), and their
figures as markdown. Called by `scripts/reliability_report.py --testbed` (needs root)."""

from __future__ import annotations

import datetime as dt
import os
import statistics
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from dcsctl.etcd.versions import NEWEST
from tests.faults.scenarios import HistoryFigures
from tests.testbed import scenarios
from tests.testbed.bed import Testbed
from tests.testbed.deployment import Deployment, guide_cluster_on
from tests.testbed.scenarios import UnderWriter, Window

HEADING = "## Testbed: the guide's hosts, faults on a real network"


@dataclass
class Figures:
    reboots: list[scenarios.Reboot] = field(default_factory=list)
    power_cuts: list[scenarios.PowerCut] = field(default_factory=list)
    leader_cuts: list[UnderWriter] = field(default_factory=list)
    follower_splits: list[scenarios.FollowerPartition] = field(default_factory=list)
    leader_splits: list[UnderWriter] = field(default_factory=list)
    windows: list[Window] = field(default_factory=list)
    etcd_version: str = ""


@contextmanager
def guide_cluster() -> Iterator[Deployment]:
    """A testbed of three bookworm hosts and the guide's cluster on it; all gone after."""
    bed = Testbed(prefix=os.environ.get("DCSCTL_TESTBED_PREFIX", "dcstbr"))
    with tempfile.TemporaryDirectory() as scratch:
        try:
            bed.up(hosts=3, suite="bookworm")
            # the hosts' etcd comes from a release mirror, as in the tests: no internet here
            bed.serve_releases(sorted(NEWEST.values()))
            with guide_cluster_on(bed, Path(scratch)) as deployment:
                yield deployment
        finally:
            bed.down()
    left = bed.leftovers()
    if left:
        raise RuntimeError(f"testbed teardown left: {left}")


def measure(rounds: int, window_s: float, log: Callable[[str], None] = print) -> Figures:
    figures = Figures()
    with guide_cluster() as cluster:
        bed = cluster.bed
        figures.etcd_version = bed.ssh("dcs-00", "etcd --version").stdout.split()[2]
        for index in range(rounds):
            tag = f"-{index}"
            log(f"round {index + 1} of {rounds}")
            figures.reboots.append(scenarios.reboot_member(cluster, bed))
            figures.power_cuts.append(scenarios.power_cut_member(cluster, bed, tag))
            figures.leader_cuts.append(scenarios.leader_power_cut(cluster, bed, tag))
            figures.follower_splits.append(scenarios.follower_partition(cluster, bed, tag))
            figures.leader_splits.append(scenarios.leader_partition(cluster, bed, tag))
        windows: list[tuple[str, Callable[[], Window]]] = [
            ("50±10 ms", lambda: scenarios.delay_window(cluster, bed, 50, 10, window_s)),
            ("100 ms", lambda: scenarios.delay_window(cluster, bed, 100, 0, window_s)),
            ("100 ms, every host", lambda: scenarios.delay_window(
                cluster, bed, 100, 0, window_s, every_host=True)),
            ("5 % loss", lambda: scenarios.loss_window(cluster, bed, 5, window_s))]
        for name, run in windows:
            log(f"window: {name}, {window_s:g} s")
            figures.windows.append(run())
    return figures


def passed(f: Figures) -> bool:
    """Nothing acknowledged was lost and every invariant the tests assert held."""
    return (all(r.new_init and r.etcd_active and r.member_healthy and r.hashes_equal
                for r in f.reboots)
            and all(c.reported and c.keys == 21 and c.hashes_equal for c in f.power_cuts)
            and all(c.linearizable and c.hashes_equal and not c.writer_error
                    for c in f.leader_cuts + f.leader_splits)
            and all(s.keys == s.writes and s.hashes_equal for s in f.follower_splits)
            and all(h.linearizable for h in histories(f)))


def histories(f: Figures) -> list[HistoryFigures]:
    """Every recorded history of a run, in the order the scenarios ran."""
    found = [run.history for runs in (f.power_cuts, f.leader_cuts, f.follower_splits,
                                      f.leader_splits, f.windows) for run in runs]
    return [h for h in found if h is not None]


def _spread(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values):.2f} s / {max(values):.2f} s"


def _count(flags: list[bool]) -> str:
    return f"{sum(flags)} of {len(flags)}"


def _writer_rows(name: str, runs: list[UnderWriter]) -> list[str]:
    elections = [r.new_leader_s for r in runs if r.new_leader_s is not None]
    return [
        f"| {name}: writes acknowledged / failed or unknown | "
        f"{sum(r.acked for r in runs)} / {sum(r.failed for r in runs)} |",
        f"| {name}: histories linearizable | **{_count([r.linearizable for r in runs])}** |",
        f"| {name}: writes acknowledged after the new leader was seen, the fault still on, "
        f"fewest in a round | {min((r.acked_after for r in runs), default=0)} |",
        f"| {name}: fault to a new leader (seen by the other members), median / max | "
        f"{_spread(elections)} (in {len(elections)} of {len(runs)}) |",
        f"| {name}: longest pause between acknowledged writes, median / max | "
        f"{_spread([r.longest_pause_s for r in runs])} |",
        f"| {name}: hashkv equal afterwards | {_count([r.hashes_equal for r in runs])} |",
    ]


def section(f: Figures, command: str, rounds: int, window_s: float) -> list[str]:
    window_rows = []
    for w in f.windows:
        delayed = max(w.request_ms.values(), default=0.0)
        check = f"{w.rtt_check.verdict} at {w.pair_rtt_ms:.0f} ms" if w.rtt_check else "-"
        window_rows.append(
            f"| {w.fault} | {w.leader_changes} | {w.acked} / {w.failed} "
            f"({w.success_rate:.1%}) | **{'yes' if w.linearizable else 'NO'}** | "
            f"{delayed:.1f} ms | "
            f"{max(w.connect_ms.values(), default=0.0):.1f} ms | {check} |")
    peer_rtts = [f"{w.fault}: " + ", ".join(f"{pair} {ms:.0f} ms" for pair, ms
                                            in sorted(w.rtt_ms.items()))
                 for w in f.windows if w.rtt_ms]
    new_leaders = [r.new_leader not in (None, r.leader) for r in f.leader_splits]
    stayed_down = [r.leader_after != r.leader for r in f.leader_splits]
    reboots_ok = _count([r.etcd_active and r.member_healthy and r.hashes_equal
                         and r.etcd_restarts == "0" for r in f.reboots])
    cuts_ok = _count([c.reported and c.keys == 21 and c.hashes_equal for c in f.power_cuts])
    splits_ok = _count([s.status_unhealthy and s.problem_named and s.keys == s.writes
                        and s.hashes_equal for s in f.follower_splits])
    return [
        HEADING,
        "",
        f"Generated by `{command}` on {dt.date.today().isoformat()} (as root): the testbed "
        "of `scripts/testbed` — three Debian bookworm hosts in systemd-nspawn (real systemd "
        "and sshd) on a bridge of their own, the guide's names and addresses — with etcd "
        f"{f.etcd_version} from the release mirror (`install: release`, `service: systemd`) "
        "and the "
        "spec `dcsctl init --target ssh` writes (heartbeat 100 ms, election timeout "
        "1000 ms). The scenarios are `tests/testbed/scenarios.py`; the testbed tests run "
        f"each once, with 15-s windows. {rounds} rounds of each host fault and partition; "
        f"one {window_s:g}-s window per degraded network. Under every fault and window, "
        "the recorded workload of the lab section (4 clients: reads, writes, the leader-key "
        "race with leases; every call and return recorded) runs on the control side under "
        "a prefix of its own, asserted empty first, and histcheck judges its history.",
        "",
        f"Every invariant held: **{'yes' if passed(f) else 'NO'}**.",
        "",
        "| figure | value |",
        "|---|---|",
        "| reboot of a member host: etcd back by systemd alone (no dcsctl), member healthy, "
        f"hashkv equal | {reboots_ok} |",
        f"| reboot: `systemctl reboot` to cluster healthy, median / max | "
        f"{_spread([r.healthy_s for r in f.reboots])} |",
        "| power cut of a member host: reported by `dcsctl status`, writes went on, all 21 "
        f"keys there after boot, hashkv equal | {cuts_ok} |",
        f"| power cut: boot to cluster healthy, median / max | "
        f"{_spread([c.healthy_s for c in f.power_cuts])} |",
        *_writer_rows("power cut of the leader's host", f.leader_cuts),
        "| follower partition: writes went on, status named the host, caught up, hashkv "
        f"equal | {splits_ok} |",
        f"| follower partition: heal to cluster healthy, median / max | "
        f"{_spread([s.healed_s for s in f.follower_splits])} |",
        f"| leader partition: a new leader while cut off / the old one stayed a follower "
        f"after the heal | {_count(new_leaders)} / {_count(stayed_down)} |",
        *_writer_rows("leader partition", f.leader_splits),
        "",
        "A partition is every frame to and from the host's bridge port dropped; a power cut "
        "is SIGKILL of the host's init. The time to a new leader is from the fault to the "
        "first status (polled every 20 ms from the control side) in which another member "
        "names a leader other than the old one. The longest pause between acknowledged "
        "writes is that plus the calls in flight to the old leader waiting out their 2 s "
        "client deadline.",
        "",
        "| history | operations | writes acknowledged | acknowledged during the fault | "
        "unknown outcomes | linearizable |",
        "|---|---|---|---|---|---|",
        *[h.row() for h in histories(f)],
        "",
        "| degraded network | leader changes | writes acked / calls failed or unknown "
        "(success) | linearizable | "
        "request round trip to the slowest member | TCP connect, slowest | dcsctl rtt rule "
        "(election timeout >= 10 x RTT) at the member-pair RTT |",
        "|---|---|---|---|---|---|---|",
        *window_rows,
        "",
        "How the network is degraded here, honestly: this machine's kernel has no netem, so "
        "**delay is a TCP-stream delay**: etcd's connections (ports 2379 and 2380) go "
        "through a userspace relay (`tests/testbed/delay.py`) that holds back every byte a "
        "delayed host sends by the delay ± jitter (uniform), in order. Raft messages, "
        "heartbeats, etcd's peer prober and client answers are delayed; TCP handshakes, "
        "ICMP and SSH are not. So `dcsctl preflight`'s rtt check, which times a TCP connect "
        "to the peer port, sees no delay here (the *TCP connect* column); the rtt rule "
        "above is dcsctl's own rule (`rtt_check`) fed with the *request* round trip, "
        "measured from the control side on an open TLS connection (a member pair with the "
        "delayed host sees the same delay; with every host delayed, a pair sees twice "
        "it, the control side being undelayed). Leader changes are the most any member's "
        "`etcd_server_leader_changes_seen_total` grew during the window. Loss is nftables "
        "dropping that share of the frames to and from the host, at random, in the bridge.",
        "",
        "etcd's own peer round trip (`etcd_network_peer_round_trip_time_seconds`, a smoothed "
        "value etcd samples every 30 s, so it lags a change of delay) over each window: "
        + ("; ".join(peer_rtts) if peer_rtts else "no sample") + ".",
        "",
    ]


def replace_section(document: str, lines: list[str]) -> str:
    """`document` with its testbed section (up to the next `## ` heading) replaced by
    `lines`, or with them appended."""
    text = "\n".join(lines)
    if HEADING not in document:
        return document.rstrip("\n") + "\n\n" + text
    before, _, rest = document.partition(HEADING)
    _, found, after = rest.partition("\n## ")
    return before + text + ("\n## " + after if found else "")


def existing_section(document: str) -> list[str]:
    """The testbed section of `document` (lab-only runs keep it as it is)."""
    if HEADING not in document:
        return []
    rest = HEADING + document.partition(HEADING)[2]
    return [*rest.split("\n## ", 1)[0].rstrip("\n").split("\n"), ""]
