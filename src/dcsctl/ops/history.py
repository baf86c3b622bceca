"""The last minutes of a cluster as Prometheus holds them: which members answered, who
led, database size against the quota, and disk latency — for `dcsctl status --plot`."""

from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from dcsctl.errors import DcsctlError, EnvironmentProblem
from dcsctl.prometheus import ETCD

QUERY_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Series:
    member: str
    times: tuple[float, ...]  # unix seconds
    values: tuple[float, ...]


@dataclass(frozen=True)
class History:
    cluster: str
    start: float
    end: float
    up: tuple[Series, ...]
    leader: tuple[Series, ...]
    db_size: tuple[Series, ...]
    quota: float | None
    wal_fsync_p99: tuple[Series, ...]
    backend_commit_p99: tuple[Series, ...]
    peer_rtt_p99: tuple[Series, ...]  # measured even when nothing is written


def _query_range(url: str, query: str, start: float, end: float,
                 step: float) -> list[dict[str, object]]:
    params = urllib.parse.urlencode({"query": query, "start": f"{start:.3f}",
                                     "end": f"{end:.3f}", "step": f"{step:.3f}"})
    address = f"{url.rstrip('/')}/api/v1/query_range?{params}"
    if not address.startswith(("http://", "https://")):
        raise DcsctlError(f"--prometheus {url} is not an http(s) URL",
                          fix="pass it like http://localhost:9090")
    try:
        with urllib.request.urlopen(address, timeout=QUERY_TIMEOUT_S) as answer:  # noqa: S310
            body = json.loads(answer.read())
    except (OSError, ValueError) as exc:
        raise EnvironmentProblem(f"cannot query Prometheus at {url}: {exc}",
                                 fix="check --prometheus (e.g. http://localhost:9090) and "
                                 "that Prometheus runs") from exc
    if body.get("status") != "success":
        raise DcsctlError(f"Prometheus refused {query!r}: {body.get('error')}",
                          fix="run it again with --debug and report it")
    result = body["data"]["result"]
    assert isinstance(result, list)
    return result


def _series(url: str, query: str, start: float, end: float, step: float) -> tuple[Series, ...]:
    found = []
    for item in _query_range(url, query, start, end, step):
        metric, values = item["metric"], item["values"]
        assert isinstance(metric, dict) and isinstance(values, list)
        points: list[tuple[float, float]] = []
        for t, v in values:
            if points and float(t) - points[-1][0] > 1.5 * step:
                points.append((points[-1][0] + step, math.nan))  # no sample: a gap, no line
            points.append((float(t), float(v)))
        found.append(Series(str(metric.get("member", metric.get("instance", "?"))),
                            tuple(t for t, _ in points), tuple(v for _, v in points)))
    return tuple(sorted(found, key=lambda s: s.member))


def from_prometheus(url: str, cluster: str, minutes: float) -> History:
    end = time.time()
    start = end - minutes * 60
    step = max(1.0, minutes * 60 / 300)  # ~300 points a line
    selector = f'{ETCD},cluster="{cluster}"'

    def p99(histogram: str) -> str:
        window = f"{max(int(step * 4), 15)}s"
        return (f"histogram_quantile(0.99, sum by (member, le) "
                f"(rate({histogram}_bucket{{{selector}}}[{window}])))")

    def get(query: str) -> tuple[Series, ...]:
        return _series(url, query, start, end, step)

    up = get(f"up{{{selector}}}")
    if not up:
        raise DcsctlError(f"Prometheus at {url} holds no samples of cluster {cluster!r} "
                          f"in the last {minutes:g} minutes",
                          fix="check that it scrapes the cluster (`dcsctl monitoring "
                          "--out DIR` writes its configuration) and --minutes")
    quota = get(f"max(etcd_server_quota_backend_bytes{{{selector}}})")
    return History(
        cluster=cluster, start=start, end=end, up=up,
        leader=get(f"etcd_server_is_leader{{{selector}}}"),
        db_size=get(f"etcd_mvcc_db_total_size_in_bytes{{{selector}}}"),
        quota=quota[0].values[-1] if quota and quota[0].values else None,
        wal_fsync_p99=get(p99("etcd_disk_wal_fsync_duration_seconds")),
        backend_commit_p99=get(p99("etcd_disk_backend_commit_duration_seconds")),
        peer_rtt_p99=get(p99("etcd_network_peer_round_trip_time_seconds")),
    )
