"""How `check perf` and `check datascale` look: etcdctl's verdict lines, percentiles,
what the check cleaned up; JSON with every figure."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dcsctl.report import Output, human_bytes

if TYPE_CHECKING:
    from dcsctl.ops.checks import DatascaleResult, PerfResult
    from dcsctl.perf import LatencyStats


def _space_json(result: PerfResult | DatascaleResult) -> dict[str, Any]:
    estimate = result.plan.estimate
    recovery = result.recovery
    return {
        "estimate": {"writes": estimate.writes, "bytes_per_write": estimate.bytes_per_write,
                     "added": estimate.added, "projected": estimate.projected,
                     "quota": estimate.quota},
        "patroni_scopes": list(result.plan.scopes),
        "nospace": None if recovery is None else {
            "stopped_by": recovery.stopped_by, "disarmed": list(recovery.disarmed),
            "db_size_after": recovery.db_size_after,
            "write_verified": recovery.write_verified,
        },
    }


def _recovery(result: PerfResult | DatascaleResult) -> tuple[str, ...]:
    return () if result.recovery is None else tuple(result.recovery.lines())


def _stats_json(stats: LatencyStats) -> dict[str, float | int]:
    return {k: round(v, 6) if isinstance(v, float) else v for k, v in stats.__dict__.items()}


def percentiles(stats: LatencyStats) -> str:
    return (f"Latency: p50 {stats.p50 * 1000:.2f} ms, p90 {stats.p90 * 1000:.2f} ms, "
            f"p99 {stats.p99 * 1000:.2f} ms (mean {stats.mean * 1000:.2f} ms, "
            f"{stats.count} writes in {stats.seconds:.1f} s)")


def perf_output(result: PerfResult, prefix: str) -> Output:
    """etcdctl's lines with the percentiles and the clean-up before its last (the verdict)."""
    verdict = result.verdict.lines
    text = (*_recovery(result), *verdict[:-1], percentiles(result.stats),
            f"Cleaned up: keys under {prefix} deleted, history compacted, members "
            f"defragmented (db {human_bytes(result.db_size_before)} before, "
            f"{human_bytes(result.db_size_after)} after)", verdict[-1])
    return Output(text, {
        "load": result.load.__dict__, "passed": result.verdict.passed,
        "verdict": list(verdict), "stats": _stats_json(result.stats),
        "errors": result.errors, "throughput_per_second": list(result.timeline),
        "db_size_before": result.db_size_before, "db_size_after": result.db_size_after,
        **_space_json(result),
    })


def datascale_output(result: DatascaleResult) -> Output:
    load = result.load
    verdict = "PASS" if result.passed else "FAIL"
    text = (*_recovery(result),
            f"Data scale check for load {load.name}: {load.keys} key-value pairs, "
            f"{load.key_size + load.value_size} bytes each, {load.clients} concurrent clients.",
            *(f"{verdict}: {m.name}: approximate memory used {m.growth / 2**20:.2f} MB"
              for m in result.memory),
            percentiles(result.stats))
    return Output(text, {
        "load": load.__dict__, "passed": result.passed, "stats": _stats_json(result.stats),
        "memory": [{"member": m.name, "before": m.before, "after": m.after,
                    "growth": m.growth} for m in result.memory],
        "db_size_before": result.db_size_before, "db_size_after": result.db_size_after,
        **_space_json(result),
    })
