"""`check perf` and `check datascale`: the guide's checks, native, clean and bounded.

Run as the guide does, etcdctl's checks leave ~40 MB of history in the production DCS
and datascale fails where the CA is not in the system trust store (docs/guide-defects.md
15-16). Here a check first plans: its prefix must be empty, no alarm raised, and what
the load adds (history and tombstones included) must fit the space quota with a margin;
on a DCS that serves Patroni the caller must confirm. Afterwards its keys are deleted,
the history compacted away and every member defragmented — also after an error or
Ctrl-C. Should etcd raise NOSPACE anyway (something else filled the quota meanwhile),
the load stops at its first refused write and the clean-up also disarms the alarm and
proves that a write is accepted again.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from dcsctl import perf
from dcsctl.errors import ClusterUnhealthy, DcsctlError, EnvironmentProblem
from dcsctl.etcd.client import EtcdClient
from dcsctl.etcd.model import EndpointStatus
from dcsctl.etcd.tls import metrics_text
from dcsctl.ops.cluster import Cluster
from dcsctl.ops.maintenance import defragment_members
from dcsctl.ops.patroni import scope_views
from dcsctl.ops.runtime import NOSPACE

PERF_PREFIX = "/dcsctl-check-perf/"
DATASCALE_PREFIX = "/dcsctl-check-datascale/"
NOSPACE_ERROR = "database space exceeded"  # etcd's words when the quota is full
_RSS = re.compile(r"^process_resident_memory_bytes\s+([0-9.e+]+)$", re.MULTILINE)

Tick = Callable[[int, float], None]


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 100_000 else f"{size / 1e3:.1f} kB"


def _load(table: dict[str, perf.PerfLoad] | dict[str, perf.DatascaleLoad], name: str) -> str:
    if name not in table:
        raise DcsctlError(f"unknown load {name!r}", fix="use one of: " + ", ".join(table))
    return name


def _seconds(load: perf.PerfLoad, duration_s: float | None) -> float:
    seconds = load.duration_s if duration_s is None else duration_s
    if not 0 < seconds <= perf.MAX_DURATION_S:
        raise DcsctlError(
            f"--duration {seconds:g} s is outside 0-{perf.MAX_DURATION_S} s: etcdctl's own "
            f"loads run {perf.MAX_DURATION_S} s, and a longer run only adds load and "
            "history to the DCS it measures",
            fix=f"pass --duration {perf.MAX_DURATION_S} or less",
        )
    return seconds


@dataclass(frozen=True)
class CheckPlan:
    """What a check is about to do to the cluster, decided before its first write."""

    check: str  # "perf" or "datascale"
    load: str
    estimate: perf.SpaceEstimate
    scopes: tuple[str, ...]  # Patroni scopes sharing this DCS: "demo (/service/demo/)"
    rate: int | None = None  # writes/s (perf)
    seconds: float | None = None  # (perf)

    @property
    def pace(self) -> str:
        if self.rate is None:
            return f"{self.estimate.writes} keys as fast as it can"
        return f"up to {self.estimate.writes} keys ({self.rate}/s for {self.seconds:g} s)"

    @property
    def risk(self) -> str:
        e = self.estimate
        return (
            f"check {self.check} --load {self.load} writes {self.pace} into the DCS of "
            f"Patroni scope(s) {', '.join(self.scopes)}: their leader-key renewals queue "
            "behind the load (a renewal slower than Patroni's retry_timeout demotes a "
            f"primary), and the database grows by up to {_mb(e.added)} of its "
            f"{_mb(e.quota)} quota until the clean-up (a full quota stops every write)"
        )


def _worst_sizes(client: EtcdClient) -> tuple[int, int]:
    """(file size, size in use) of the members, each the largest seen."""
    statuses = [s for s in client.statuses() if isinstance(s, EndpointStatus)]
    return (max((s.db_size for s in statuses), default=0),
            max((s.db_size_in_use for s in statuses), default=0))


def _too_big(plan_check: str, load: str, estimate: perf.SpaceEstimate, retry: str) -> DcsctlError:
    e = estimate
    return EnvironmentProblem(
        f"check {plan_check} --load {load} writes up to {e.writes} keys, ~{_mb(e.added)} "
        f"with history and delete tombstones ({e.bytes_per_write} B a key + "
        f"{perf.ESTIMATE_MARGIN - 1:.0%} margin); the largest member's db is "
        f"{_mb(e.db_size)} ({_mb(e.db_size_in_use)} in use), so it would peak at "
        f"~{_mb(e.projected)}, past the {_mb(e.ceiling)} a check may fill "
        f"({1 - perf.QUOTA_RESERVE_SHARE:.0%} of the {_mb(e.quota)} space quota). NOSPACE "
        "would stop every write, Patroni's leader keys too",
        fix=f"{retry}, or raise etcd.quota_backend_bytes to at least {e.quota_needed} "
            f"({e.quota_needed // 2**20} MiB) in the spec and run `dcsctl up`",
    )


def _prepare(
    cluster: Cluster, client: EtcdClient, prefix: str, *, check: str, load: str,
    writes: int, key_size: int, value_size: int, retry: Callable[[perf.SpaceEstimate], str],
    rate: int | None = None, seconds: float | None = None,
) -> CheckPlan:
    if client.get_prefix(prefix, limit=1):
        raise DcsctlError(
            f"prefix {prefix!r} already holds keys: a check never writes over data",
            fix=f"remove them first (`etcdctl del --prefix {prefix}`) or pass another --prefix",
        )
    alarms = client.alarms()
    if alarms:
        raise ClusterUnhealthy(
            "alarm(s) raised: " + ", ".join(sorted({a.kind for a in alarms}))
            + "; a check measures a healthy cluster only",
            fix="`dcsctl maintenance` (NOSPACE), then `dcsctl status`",
        )
    db_size, in_use = _worst_sizes(client)
    estimate = perf.estimate_space(writes, key_size, value_size, db_size=db_size,
                                   db_size_in_use=in_use,
                                   quota=cluster.spec.etcd.quota_backend_bytes)
    if not estimate.fits:
        raise _too_big(check, load, estimate, retry(estimate))
    scopes = tuple(f"{v.scope.name} ({v.scope.prefix})" for v in scope_views(cluster, client))
    return CheckPlan(check, load, estimate, scopes, rate, seconds)


def _plan_perf(cluster: Cluster, client: EtcdClient, load: perf.PerfLoad, seconds: float,
               prefix: str) -> CheckPlan:
    def retry(estimate: perf.SpaceEstimate) -> str:
        fitting = estimate.max_writes // load.limit
        shorter = (f"--duration {fitting}" if fitting >= 1
                   else "no duration of this load fits")
        return f"use a smaller --load or a shorter run ({shorter})"

    return _prepare(cluster, client, prefix, check="perf", load=load.name,
                    writes=perf.perf_writes(load, seconds), key_size=load.key_size,
                    value_size=load.value_size, retry=retry, rate=load.limit, seconds=seconds)


def _plan_datascale(cluster: Cluster, client: EtcdClient, load: perf.DatascaleLoad,
                    prefix: str) -> CheckPlan:
    return _prepare(cluster, client, prefix, check="datascale", load=load.name,
                    writes=load.keys, key_size=load.key_size, value_size=load.value_size,
                    retry=lambda _: "choose a smaller --load")


def plan_perf(cluster: Cluster, load_name: str = "s", *, duration_s: float | None = None,
              prefix: str = PERF_PREFIX) -> CheckPlan:
    """Decide whether `check perf` may run, touching nothing (the CLI confirms from it)."""
    load = perf.PERF_LOADS[_load(perf.PERF_LOADS, load_name)]
    seconds = _seconds(load, duration_s)
    with cluster.admin_client(timeout=10) as client:
        return _plan_perf(cluster, client, load, seconds, prefix)


def plan_datascale(cluster: Cluster, load_name: str = "s", *,
                   prefix: str = DATASCALE_PREFIX) -> CheckPlan:
    load = perf.DATASCALE_LOADS[_load(perf.DATASCALE_LOADS, load_name)]
    with cluster.admin_client(timeout=10) as client:
        return _plan_datascale(cluster, client, load, prefix)


def unconfirmed(plan: CheckPlan) -> DcsctlError:
    return DcsctlError(f"not confirmed: {plan.risk}",
                       fix="run it where Patroni can afford it, or pass --yes to accept")


def _confirmed(plan: CheckPlan, shared_ok: bool) -> CheckPlan:
    if plan.scopes and not shared_ok:
        raise unconfirmed(plan)
    return plan


@dataclass(frozen=True)
class SpaceRecovery:
    """etcd raised NOSPACE during the check; what the clean-up did about it."""

    stopped_by: str  # the error that stopped the load ("" if the load had ended)
    disarmed: tuple[str, ...]
    db_size_after: int
    write_verified: bool

    def lines(self) -> tuple[str, ...]:
        stopped = (f"the load stopped at its first refused write ({self.stopped_by})"
                   if self.stopped_by else "the load had ended")
        return (
            "NOSPACE: etcd's space quota filled during the check; " + stopped,
            f"Recovered: keys deleted, history compacted, members defragmented one at a "
            f"time (db {_mb(self.db_size_after)}), alarm {', '.join(self.disarmed)} "
            "disarmed, a test write accepted",
        )


@dataclass(frozen=True)
class Cleanup:
    db_size_after: int
    recovery: SpaceRecovery | None


def _recover_space(cluster: Cluster, client: EtcdClient, prefix: str, stopped_by: str,
                   db_size: int) -> SpaceRecovery:
    """Disarm NOSPACE once compaction and defragmentation made room, then prove a write."""
    quota = cluster.spec.etcd.quota_backend_bytes
    if db_size >= quota:
        raise ClusterUnhealthy(
            f"NOSPACE stays raised: after the check's clean-up the db is still "
            f"{_mb(db_size)} of the {_mb(quota)} quota (other data fills it)",
            fix="delete data you can spare, then `dcsctl maintenance`; or raise "
                "etcd.quota_backend_bytes and run `dcsctl up`",
        )
    client.disarm_alarms({NOSPACE})
    probe = prefix + "write-check"
    try:
        client.put(probe, b"ok")
    finally:
        client.delete_prefix(prefix)
    return SpaceRecovery(stopped_by, (NOSPACE,), db_size, write_verified=True)


def _clean_up(cluster: Cluster, client: EtcdClient, prefix: str, stopped_by: str) -> Cleanup:
    """Delete the check's keys, compact to that revision, defragment followers then the
    leader (etcd allows all three under NOSPACE); then recover from NOSPACE if raised."""
    revision = client.delete_prefix(prefix)
    client.compact(revision)
    statuses = client.statuses()
    ordered = sorted(
        ((m, s) for m, s in zip(cluster.spec.members, statuses, strict=True)
         if isinstance(s, EndpointStatus)),
        key=lambda pair: pair[1].is_leader,
    )
    defragment_members(cluster, client, [m for m, _ in ordered])
    db_size, _ = _worst_sizes(client)
    if not any(a.kind == NOSPACE for a in client.alarms()):
        return Cleanup(db_size, None)
    return Cleanup(db_size, _recover_space(cluster, client, prefix, stopped_by, db_size))


@dataclass(frozen=True)
class PerfResult:
    load: perf.PerfLoad
    stats: perf.LatencyStats
    verdict: perf.Verdict
    timeline: tuple[int, ...]
    latencies: tuple[float, ...]
    errors: dict[str, int]
    db_size_before: int
    db_size_after: int
    plan: CheckPlan
    recovery: SpaceRecovery | None = None


def check_perf(
    cluster: Cluster, load_name: str = "s", *, duration_s: float | None = None,
    prefix: str = PERF_PREFIX, on_tick: Tick | None = None, shared_ok: bool = False,
) -> PerfResult:
    """Run the perf load; `shared_ok` accepts running on a DCS that serves Patroni."""
    load = perf.PERF_LOADS[_load(perf.PERF_LOADS, load_name)]
    seconds = _seconds(load, duration_s)
    with cluster.admin_client(timeout=10) as client:
        plan = _confirmed(_plan_perf(cluster, client, load, seconds, prefix), shared_ok)
        stopped_by = ""
        try:
            record = client.put_load(prefix=prefix, clients=load.clients,
                                     key_size=load.key_size, value_size=load.value_size,
                                     rate=load.limit, seconds=seconds, on_tick=on_tick,
                                     stop_on=(NOSPACE_ERROR,))
            stopped_by = record.stopped_by
        finally:
            cleanup = _clean_up(cluster, client, prefix, stopped_by)
    stats = perf.summarize(record.latencies, sum(record.errors.values()), record.seconds)
    return PerfResult(
        load, stats, perf.perf_verdict(stats, load),
        tuple(perf.throughput_timeline(record.starts, record.seconds)),
        tuple(record.latencies), record.errors, plan.estimate.db_size,
        cleanup.db_size_after, plan, cleanup.recovery,
    )


@dataclass(frozen=True)
class MemberMemory:
    name: str
    before: int
    after: int

    @property
    def growth(self) -> int:
        return self.after - self.before


@dataclass(frozen=True)
class DatascaleResult:
    load: perf.DatascaleLoad
    stats: perf.LatencyStats
    memory: tuple[MemberMemory, ...]
    db_size_before: int
    db_size_after: int
    passed: bool
    plan: CheckPlan
    recovery: SpaceRecovery | None = None


def _resident_memory(cluster: Cluster) -> dict[str, int]:
    tls = cluster.admin_tls()
    found = {}
    for member in cluster.spec.members:
        try:
            text = metrics_text(cluster.spec.client_url(member), tls)
        except OSError as exc:
            raise DcsctlError(f"cannot read {member.name}'s /metrics: {exc}",
                              fix="check `dcsctl status`; every member must be up") from exc
        match = _RSS.search(text)
        if not match:
            raise DcsctlError(f"{member.name}'s /metrics has no process_resident_memory_bytes",
                              fix="this etcd build exports no process metrics")
        found[member.name] = int(float(match.group(1)))
    return found


def check_datascale(
    cluster: Cluster, load_name: str = "s", *, prefix: str = DATASCALE_PREFIX,
    on_tick: Tick | None = None, shared_ok: bool = False,
) -> DatascaleResult:
    load = perf.DATASCALE_LOADS[_load(perf.DATASCALE_LOADS, load_name)]
    with cluster.admin_client(timeout=10) as client:
        plan = _confirmed(_plan_datascale(cluster, client, load, prefix), shared_ok)
        memory_before = _resident_memory(cluster)
        stopped_by = ""
        try:
            record = client.put_load(prefix=prefix, clients=load.clients,
                                     key_size=load.key_size, value_size=load.value_size,
                                     total=load.keys, on_tick=on_tick,
                                     stop_on=(NOSPACE_ERROR,))
            stopped_by = record.stopped_by
            memory_after = _resident_memory(cluster)
        finally:
            cleanup = _clean_up(cluster, client, prefix, stopped_by)
    stats = perf.summarize(record.latencies, sum(record.errors.values()), record.seconds)
    memory = tuple(MemberMemory(name, memory_before[name], memory_after[name])
                   for name in memory_before)
    return DatascaleResult(load, stats, memory, plan.estimate.db_size, cleanup.db_size_after,
                           passed=not record.errors, plan=plan, recovery=cleanup.recovery)
