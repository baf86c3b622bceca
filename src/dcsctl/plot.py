"""Pictures: a perf check (latency histogram, throughput over time) and the last
minutes of a cluster as Prometheus holds them."""

from __future__ import annotations

from pathlib import Path

from dcsctl.ops.checks import PerfResult
from dcsctl.ops.history import History


def perf_png(result: PerfResult, path: Path) -> None:
    # Imported here: matplotlib costs ~0.5 s of start-up that no other command should pay.
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    stats = result.stats
    figure, (latency, throughput) = pyplot.subplots(1, 2, figsize=(12, 4.5))
    millis = [x * 1000 for x in result.latencies]
    latency.hist(millis, bins=60, color="#4c72b0")
    for label, value, style in (("p50", stats.p50, "-"), ("p90", stats.p90, "--"),
                                ("p99", stats.p99, ":")):
        latency.axvline(value * 1000, color="black", linestyle=style,
                        label=f"{label} {value * 1000:.1f} ms")
    latency.set_xlabel("request latency (ms)")
    latency.set_ylabel("requests")
    latency.set_title(f"latency, {stats.count} writes")
    latency.legend()
    seconds = range(1, len(result.timeline) + 1)
    throughput.plot(seconds, result.timeline, color="#55a868", label="writes/s")
    throughput.axhline(result.load.limit, color="grey", linestyle="--",
                       label=f"target {result.load.limit}/s")
    throughput.axhline(result.load.limit * 0.9, color="red", linestyle=":",
                       label="PASS threshold (90 %)")
    throughput.set_xlabel("second of the run")
    throughput.set_ylabel("writes/s")
    throughput.set_ylim(bottom=0)
    verdict = "PASS" if result.verdict.passed else "FAIL"
    throughput.set_title(f"throughput, load {result.load.name}: {verdict}")
    throughput.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    pyplot.close(figure)


def _leader_changes(history: History) -> list[tuple[float, str]]:
    """(when, new leader) each time another member became leader."""
    by_time: dict[float, str] = {}
    for series in history.leader:
        for moment, value in zip(series.times, series.values, strict=True):
            if value >= 1:
                by_time[moment] = series.member
    changes, current = [], None
    for moment in sorted(by_time):
        if by_time[moment] != current:
            if current is not None:
                changes.append((moment, by_time[moment]))
            current = by_time[moment]
    return changes


def history_png(history: History, path: Path) -> None:
    """Members up/down and leader, db size against the quota, disk latency p99: one
    picture of the last minutes, to attach to a ticket."""
    import datetime as dt

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    def when(times: tuple[float, ...]) -> list[dt.datetime]:
        return [dt.datetime.fromtimestamp(t, dt.UTC) for t in times]

    figure, (members, size, latency) = pyplot.subplots(
        3, 1, figsize=(12, 9), sharex=True, gridspec_kw={"height_ratios": [1.2, 1, 1]})
    names = [s.member for s in history.up]
    leaders = {s.member: s for s in history.leader}
    for row, series in enumerate(history.up):
        colors = ["#55a868" if v >= 1 else "#c44e52" for v in series.values]
        members.scatter(when(series.times), [row] * len(series.times), c=colors, s=12,
                        marker="s", linewidths=0)
        if (led := leaders.get(series.member)) is not None:
            moments = [t for t, v in zip(led.times, led.values, strict=True) if v >= 1]
            members.scatter(when(tuple(moments)), [row + 0.18] * len(moments), c="black",
                            s=10, marker="_")
    for moment, leader in _leader_changes(history):
        for axis in (members, size, latency):
            axis.axvline(when((moment,))[0], color="grey", linestyle="--", linewidth=0.8)
        members.annotate(f"leader → {leader}", (when((moment,))[0], len(names) - 0.4),
                         fontsize=8, rotation=0, color="dimgrey")
    members.set_yticks(range(len(names)), names)
    members.set_ylim(-0.6, len(names) + 0.1)
    members.set_title(f"cluster {history.cluster}: members (green up, red down; "
                      "black bar: leader; dashed: leader change)")
    for series in history.db_size:
        size.plot(when(series.times), [v / 1e6 for v in series.values], label=series.member)
    largest = max((v for s in history.db_size for v in s.values), default=0.0)
    if history.quota and largest > 0.2 * history.quota:  # else the line squashes the sizes
        size.axhline(history.quota * 0.8 / 1e6, color="orange", linestyle=":",
                     label="80 % of quota (alert)")
    size.set_ylabel("db size (MB)")
    size.set_ylim(bottom=0, top=max(largest / 1e6 * 1.3, 0.1))
    quota_text = (f" (quota {history.quota / 1e6:.0f} MB, alert at 80 %: "
                  f"{history.quota * 0.8 / 1e6:.0f} MB)" if history.quota else "")
    size.set_title(f"database size{quota_text}")
    size.legend(loc="upper left", fontsize=8)
    for series in history.wal_fsync_p99:
        latency.plot(when(series.times), [v * 1000 for v in series.values],
                     label=f"{series.member} WAL fsync")
    for series in history.backend_commit_p99:
        latency.plot(when(series.times), [v * 1000 for v in series.values], linestyle="--",
                     label=f"{series.member} backend commit")
    for series in history.peer_rtt_p99:
        latency.plot(when(series.times), [v * 1000 for v in series.values], linestyle=":",
                     label=f"{series.member} peer round trip")
    latency.axhline(10, color="red", linestyle=":", label="fsync guidance 10 ms")
    latency.axhline(25, color="darkred", linestyle=":", label="commit guidance 25 ms")
    latency.set_ylabel("p99 (ms)")
    latency.set_yscale("log")
    latency.set_title("latency, 99th percentile (disk lines only while there are writes)")
    latency.legend(loc="upper left", fontsize=7, ncol=2)
    latency.set_xlabel("time (UTC)")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    pyplot.close(figure)
