"""The picture of a perf check: latency histogram and throughput over time, one PNG."""

from __future__ import annotations

from pathlib import Path

from dcsctl.ops.checks import PerfResult


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
