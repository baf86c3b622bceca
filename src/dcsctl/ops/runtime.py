"""What every workflow needs to run members: start one from the configuration on its
host, wait until members are healthy (naming the sick one, with its log), restart them
one at a time and stop them all (followers first, the leader last), and find the cluster
the state dir really holds."""

from __future__ import annotations

import concurrent.futures
import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import PurePath
from typing import TypeVar

from dcsctl import render, spec
from dcsctl.errors import ClusterUnhealthy, DcsctlError
from dcsctl.etcd.client import EtcdClient
from dcsctl.etcd.model import EndpointHealth, EndpointStatus
from dcsctl.etcd.tls import ClientTls, peer_members
from dcsctl.ops.cluster import Cluster
from dcsctl.spec import Member
from dcsctl.wait import wait_until
from dcsctl.workflow import in_parallel

HEALTH_TIMEOUT_S = 30.0
# A new cluster's first member gets this long to serve its peer port before the others
# start (MemberRuntime.wait_peer_serving); each probe (GET /members on it), this long.
FIRST_START_WAIT_S = 1.5
PEER_PROBE_TIMEOUT_S = 0.2
LOG_LINES_ON_FAILURE = 8
NOSPACE = "NOSPACE"
T = TypeVar("T")
ALARMS = "Active Alarm(s): "


def _curable(error: str) -> bool:
    """A member whose only trouble is NOSPACE alarms is sick in a way maintenance cures."""
    if not error.startswith(ALARMS):
        return False
    return all(kind == NOSPACE for kind in error.removeprefix(ALARMS).split(","))


def ordered_members(cluster: Cluster, client: EtcdClient) -> list[tuple[Member, EndpointStatus]]:
    """Every member with its status, followers first and the leader last; abort if one is
    unreachable or unhealthy for another reason than NOSPACE."""
    statuses = client.statuses()
    healths = client.health()
    problems = []
    ordered = []
    for member, status, health in zip(cluster.spec.members, statuses, healths, strict=True):
        if not isinstance(status, EndpointStatus):
            problems.append(f"{member.name}: {status.message}")
        elif not health.healthy and not _curable(health.error):
            problems.append(f"{member.name}: {health.error}")
        else:
            ordered.append((member, status))
    if problems:
        raise ClusterUnhealthy(
            "maintenance needs every member healthy; " + "; ".join(problems),
            fix="bring the cluster back first (`dcsctl up`, `dcsctl status`)",
        )
    return sorted(ordered, key=lambda pair: pair[1].is_leader)


def hand_over_leadership(cluster: Cluster, leader: Member, successor_id: int) -> None:
    """Move leadership off a member before it stops or leaves: a leader that simply goes
    leaves the cluster without one for an election, and Patroni's key renewals fail in it."""
    with cluster.admin_client() as client:
        client.move_leader(cluster.spec.client_url(leader), successor_id)


@dataclass(frozen=True)
class DownResult:
    stopped: tuple[str, ...]
    already_stopped: tuple[str, ...]


def _leader_name(cluster: Cluster) -> str | None:
    if cluster.dir.admin() is None:
        return None
    with cluster.admin_client(timeout=1.0) as client:
        statuses = client.statuses()
    for member, state in zip(cluster.spec.members, statuses, strict=True):
        if isinstance(state, EndpointStatus) and state.is_leader:
            return member.name
    return None


def _stop_all(cluster: Cluster, names: list[str]) -> dict[str, bool]:
    if not names:
        return {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(names)) as pool:
        return dict(zip(names, pool.map(lambda n: cluster.service(n).stop(), names), strict=True))


def stop_members(cluster: Cluster) -> DownResult:
    """Stop the members (the caller holds the cluster lock).

    Followers go first and the leader last: a leader stopped while its peers are still up
    tries to hand over leadership, and if they are stopping too it waits out the full
    request timeout (~7 s) before it exits.
    """
    names = [m.name for m in cluster.spec.members]
    leader = _leader_name(cluster)
    results = _stop_all(cluster, [n for n in names if n != leader])
    results |= _stop_all(cluster, [n for n in names if n == leader])
    return DownResult(
        tuple(n for n in names if results[n]), tuple(n for n in names if not results[n])
    )


class MemberRuntime:
    """Starting members and waiting for them, for one cluster. It holds nothing between
    calls: what to restart is the caller's (what its install and config phases handed on)."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def start_member(self, member: spec.Member, executable: PurePath | None = None) -> None:
        """Start the member from the configuration on its host (`executable`: another
        etcd binary than the spec's, e.g. the one it ran before an upgrade)."""
        config = self.cluster.layout(member.name).config
        content = self.cluster.host_of(member.name).read(config)
        if content is None:
            raise DcsctlError(f"{member.name}: {config} is missing",
                              fix="run `dcsctl up` (its config phase writes it)")
        environment = render.parse_env_file(content)
        self.cluster.service(member.name).start(
            executable or self.cluster.target.etcd.executable(member.name), environment)

    def start_all(self, restart: Iterable[str], *, bootstrapped: bool) -> str:
        """Restart the members named (one at a time, each healthy before the next, so the
        cluster keeps quorum), then start every member that is not running, all at once
        (a first start of a cluster waits for its peers anyway; one by one over SSH cost
        seconds per host). `bootstrapped`: the cluster's record says so (a new cluster's
        first start brings up the first member on its own, see wait_peer_serving)."""
        started: list[str] = []
        for name in sorted(restart):
            member = self.cluster.spec.member(name)
            self.cluster.service(name).stop()
            self.start_member(member)
            self.wait_healthy([member])
            started.append(f"{name} (restarted)")
        members = list(self.cluster.spec.members)
        active = in_parallel(members, lambda m: self.cluster.service(m.name).is_active())
        stopped = [m for m, running in zip(members, active, strict=True) if not running]
        rest = stopped
        if (self.cluster.target.probes_peer_port and len(stopped) == len(members) > 1
                and not bootstrapped):
            first = min(stopped, key=self.cluster.spec.peer_url)
            self.start_member(first)
            self.wait_peer_serving(first)
            rest = [m for m in stopped if m is not first]
        in_parallel(rest, self.start_member)
        started += [m.name for m in stopped]
        return "started " + ", ".join(started)

    def wait_peer_serving(self, member: spec.Member) -> None:
        """Wait (at most FIRST_START_WAIT_S) until `member` serves its peer port.

        A new member asks its peers' /members before it serves (etcd's
        isMemberBootstrapped: peers in sorted URL order, 1 s timeout each, the first answer
        wins). Started all at once, every member finds its peers' ports bound but not yet
        served and waits out 1-2 s of timeouts. etcd 3.5 reaches that question ~15 ms after
        its start, before its peers have bound their ports; 3.6/3.7 take ~90 ms and find
        them bound (issue 21: `up` on 3.7 spent 1-2 s here that 3.5 does not). Started
        first, the member whose peer URL sorts first finds no peer bound, serves in ~0.1 s,
        and is the one every other member asks first.

        The probe is the question etcd asks, GET /members on the peer port, with the
        member's own certificate: the peer port admits member certificates only (allowed
        hostname), and its TLS listener completes handshakes before the server runs, so
        only an HTTP answer says it serves. Only where the target `probes_peer_port` (the
        caller checks): on real hosts this machine's address is not in a member
        certificate, and etcd refuses it.
        """
        layout = self.cluster.layout(member.name)
        host = self.cluster.host_of(member.name)
        ca, cert, key = (host.read(path) for path in (layout.ca_cert, layout.cert, layout.key))
        if ca is None or cert is None or key is None:
            return
        tls = ClientTls(ca, cert, key, self.cluster.spec.shared_dns_name)
        url = self.cluster.spec.peer_url(member)

        def serving() -> bool:
            try:
                peer_members(url, tls, timeout=PEER_PROBE_TIMEOUT_S)
            except OSError:
                return False
            return True

        with contextlib.suppress(ClusterUnhealthy):
            wait_until(serving, timeout=FIRST_START_WAIT_S, what=f"{member.name} serving peers",
                       interval=0.01, max_interval=0.05)

    def all_running(self) -> bool:
        members = list(self.cluster.spec.members)
        return all(in_parallel(members, lambda m: self.cluster.service(m.name).is_active()))

    def health(self) -> str:
        members = list(self.cluster.spec.members)
        self.wait_healthy(members)
        return f"{len(members)} of {len(members)} healthy"

    def restart_all(self) -> tuple[str, ...]:
        """A rolling restart, followers first and the leader last after handing over
        leadership (the caller holds the cluster lock); the members in that order."""
        return tuple(member.name for member, _ in self.restart_each(lambda member: None))

    def restart_each(self, while_stopped: Callable[[spec.Member], T]
                     ) -> list[tuple[spec.Member, T]]:
        """restart_all, with `while_stopped` changing a member's files between its stop
        and its start (a key rotation); what it returned for each member, in the order
        of the restarts."""
        cluster = self.cluster
        with cluster.admin_client() as client:
            ordered = ordered_members(cluster, client)
        done = []
        for member, status in ordered:
            if status.is_leader and len(ordered) > 1:
                hand_over_leadership(cluster, member, ordered[0][1].member_id)
            cluster.service(member.name).stop()
            done.append((member, while_stopped(member)))
            self.start_member(member)
            self.wait_healthy(list(cluster.spec.members))
        return done

    def wait_healthy(self, members: list[spec.Member]) -> None:
        endpoints = [self.cluster.spec.client_url(m) for m in members]
        last: list[EndpointHealth] = []

        def all_healthy() -> bool:
            nonlocal last
            self.fail_if_exited(members)
            # A fresh client each poll: a gRPC channel that failed to connect while etcd
            # was still starting waits out a reconnect backoff (about 1 s) before it
            # tries again, which would hide a member that became ready meanwhile.
            with self.cluster.admin_client(timeout=2.0) as client:
                last = client.health(endpoints)
            return all(h.healthy for h in last)

        def last_error() -> str:
            return "; ".join(f"{h.endpoint}: {h.error}" for h in last if not h.healthy)

        try:
            wait_until(
                all_healthy,
                timeout=self.cluster.context.deadline(HEALTH_TIMEOUT_S),
                what="the cluster did not become healthy",
                last_error=last_error,
                interval=0.02,
                max_interval=0.1,  # a start-up is over in ~1 s: poll finely
            )
        except ClusterUnhealthy as exc:
            sick = [m for m, h in zip(members, last, strict=False) if not h.healthy]
            raise self.member_failure(sick or members, exc.message) from exc

    def fail_if_exited(self, members: list[spec.Member]) -> None:
        active = in_parallel(members, lambda m: self.cluster.service(m.name).is_active())
        exited = [m for m, running in zip(members, active, strict=True) if not running]
        if exited:
            raise self.member_failure(exited, "etcd exited during start-up")

    def member_failure(self, members: list[spec.Member], why: str) -> DcsctlError:
        details = []
        for member in members:
            details.append(f"last lines of {member.name}'s log:")
            tail = self.cluster.service(member.name).log_tail(LOG_LINES_ON_FAILURE)
            details.extend(f"  {line}" for line in tail)
        names = ", ".join(m.name for m in members)
        return ClusterUnhealthy(
            f"{names}: {why}",
            fix=f"read `dcsctl logs {members[0].name}`, correct the cause, then run "
            "`dcsctl up` again (it resumes)",
            details=tuple(details),
        )
