"""`check perf` and `check datascale`: the guide's checks, native and clean.

Run as the guide does, etcdctl's checks leave ~40 MB of history in the production DCS
and datascale fails where the CA is not in the system trust store (lab-defects.md
15-16). Here the prefix must be empty before a run, and afterwards its keys are deleted,
the history compacted away and every member defragmented — also after an error or Ctrl-C.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from dcsctl import perf
from dcsctl.errors import DcsctlError
from dcsctl.etcd.client import ClientTls, EtcdClient, metrics_text
from dcsctl.etcd.model import EndpointStatus
from dcsctl.ops.context import Cluster
from dcsctl.ops.lifecycle import as_saved
from dcsctl.ops.maintenance import defragment_members

PERF_PREFIX = "/dcsctl-check-perf/"
DATASCALE_PREFIX = "/dcsctl-check-datascale/"
_RSS = re.compile(r"^process_resident_memory_bytes\s+([0-9.e+]+)$", re.MULTILINE)

Tick = Callable[[int, float], None]


def _load(table: dict[str, perf.PerfLoad] | dict[str, perf.DatascaleLoad], name: str) -> str:
    if name not in table:
        raise DcsctlError(f"unknown load {name!r}", fix="use one of: " + ", ".join(table))
    return name


def _guard(client: EtcdClient, prefix: str) -> None:
    if client.get_prefix(prefix, limit=1):
        raise DcsctlError(
            f"prefix {prefix!r} already holds keys: a check never writes over data",
            fix=f"remove them first (`etcdctl del --prefix {prefix}`) or pass another --prefix",
        )


def _db_size(client: EtcdClient) -> int:
    return max((s.db_size for s in client.statuses() if isinstance(s, EndpointStatus)),
               default=0)


def _clean_up(cluster: Cluster, client: EtcdClient, prefix: str) -> int:
    """Delete the check's keys, compact to that revision, defragment followers then the
    leader; returns the largest member db size afterwards."""
    revision = client.delete_prefix(prefix)
    client.compact(revision)
    statuses = client.statuses()
    ordered = sorted(
        ((m, s) for m, s in zip(cluster.spec.members, statuses, strict=True)
         if isinstance(s, EndpointStatus)),
        key=lambda pair: pair[1].is_leader,
    )
    defragment_members(cluster, client, [m for m, _ in ordered])
    return _db_size(client)


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


def check_perf(
    cluster: Cluster, load_name: str = "s", *, duration_s: float | None = None,
    prefix: str = PERF_PREFIX, on_tick: Tick | None = None,
) -> PerfResult:
    cluster = as_saved(cluster)
    load = perf.PERF_LOADS[_load(perf.PERF_LOADS, load_name)]
    seconds = duration_s or load.duration_s
    with cluster.admin_client(timeout=10) as client:
        _guard(client, prefix)
        before = _db_size(client)
        try:
            record = client.put_load(prefix=prefix, clients=load.clients,
                                     key_size=load.key_size, value_size=load.value_size,
                                     rate=load.limit, seconds=seconds, on_tick=on_tick)
        finally:
            after = _clean_up(cluster, client, prefix)
    stats = perf.summarize(record.latencies, sum(record.errors.values()), record.seconds)
    return PerfResult(
        load, stats, perf.perf_verdict(stats, load),
        tuple(perf.throughput_timeline(record.starts, record.seconds)),
        tuple(record.latencies), record.errors, before, after,
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


def _resident_memory(cluster: Cluster) -> dict[str, int]:
    admin, trusted = cluster.dir.admin(), cluster.dir.trusted_cas()
    assert admin is not None and trusted is not None
    tls = ClientTls(trusted, admin.cert_pem, admin.key_pem, cluster.spec.shared_dns_name)
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
    on_tick: Tick | None = None,
) -> DatascaleResult:
    cluster = as_saved(cluster)
    load = perf.DATASCALE_LOADS[_load(perf.DATASCALE_LOADS, load_name)]
    with cluster.admin_client(timeout=10) as client:
        _guard(client, prefix)
        before = _db_size(client)
        quota = cluster.spec.etcd.quota_backend_bytes
        needed = perf.datascale_bytes(load)
        if before + needed > quota:
            raise DcsctlError(
                f"load {load.name} writes ~{needed // 2**20} MiB; with {before // 2**20} MiB "
                f"in use that would exceed the {quota // 2**20} MiB space quota (NOSPACE "
                "would stop every write, Patroni's too)",
                fix="choose a smaller --load, or raise etcd.quota_backend_bytes",
            )
        memory_before = _resident_memory(cluster)
        try:
            record = client.put_load(prefix=prefix, clients=load.clients,
                                     key_size=load.key_size, value_size=load.value_size,
                                     total=load.keys, on_tick=on_tick)
            memory_after = _resident_memory(cluster)
        finally:
            after = _clean_up(cluster, client, prefix)
    stats = perf.summarize(record.latencies, sum(record.errors.values()), record.seconds)
    memory = tuple(MemberMemory(name, memory_before[name], memory_after[name])
                   for name in memory_before)
    return DatascaleResult(load, stats, memory, before, after, passed=not record.errors)
