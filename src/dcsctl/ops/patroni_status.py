"""`patroni status` and `patroni doctor`: the database nodes as they are, from their own
REST API and from the files on their hosts, never from the control machine's copies."""

from __future__ import annotations

import datetime as dt
import hashlib
import http.client
import secrets
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import urlsplit

import yaml

from dcsctl import pki
from dcsctl.errors import DcsctlError, EnvironmentProblem, NotFound
from dcsctl.etcd.gateway import Gateway
from dcsctl.etcd.model import MemberInfo
from dcsctl.etcd.tls import ClientTls
from dcsctl.ops import patroni as patroni_ops
from dcsctl.ops import revocation
from dcsctl.ops.certs import RENEW_BEFORE, due_for_renewal
from dcsctl.ops.cluster import Cluster
from dcsctl.ops.patroni_deploy import bundle_paths, file_states
from dcsctl.ops.rotation import WARN_DAYS as EXPIRING_DAYS
from dcsctl.patroni_node import PATRONI_FLOOR, version_tuple
from dcsctl.patroni_rest import Answer, PatroniApi, Timing
from dcsctl.spec import PatroniNode, PatroniScope
from dcsctl.targets.protocol import Check, Verdict
from dcsctl.workflow import in_parallel


@dataclass(frozen=True)
class NodeStatus:
    scope: str
    name: str
    address: str
    reachable: bool
    problem: str  # why not reachable ("" when it is)
    version: str | None
    role: str | None
    state: str | None
    dcs_last_seen_age_s: int | None
    serial_deployed: str | None
    serial_issued: str | None
    days_left: float | None  # of the deployed certificate

    @property
    def drift(self) -> bool:
        return self.serial_deployed != self.serial_issued


def _scopes(cluster: Cluster, name: str | None) -> list[PatroniScope]:
    settings = cluster.spec.patroni
    scopes = [s for s in (settings.scopes if settings else []) if s.nodes]
    if name is None:
        return scopes
    chosen = [s for s in scopes if s.name == name]
    if not chosen:
        raise NotFound(f"scope {name!r} has no nodes in the spec's patroni: section",
                       fix="list its database hosts under patroni.scopes[].nodes "
                       "(`dcsctl init --target ssh` shows the shape)")
    return chosen


def _api(cluster: Cluster, node: PatroniNode) -> PatroniApi:
    return PatroniApi(node.name, node.rest_url, node.rest_api_ca_file,
                      timeout=cluster.context.deadline(5))


def _issued(cluster: Cluster, scope: str, node: str) -> bytes | None:
    path = cluster.dir.root / "patroni" / scope / node / f"{node}.crt"
    return path.read_bytes() if path.exists() else None


def _serial(cert: bytes | None) -> str | None:
    try:
        return f"{pki.serial_number(cert):x}" if cert else None
    except ValueError:
        return "(unreadable)"


def node_status(cluster: Cluster, scope: PatroniScope, node: PatroniNode) -> NodeStatus:
    answer: Answer | None = None
    problem = ""
    try:
        answer = _api(cluster, node).state()
    except DcsctlError as exc:
        problem = exc.message
    deployed: bytes | None = None
    try:
        deployed = cluster.database_host(scope.name, node.name).read(
            PurePosixPath(node.bundle_dir) / f"{node.name}.crt")
    except DcsctlError as exc:
        problem = problem or exc.message
    days = None
    if deployed:
        try:
            left = pki.inspect(deployed).not_after - cluster.context.clock()
            days = round(left.total_seconds() / 86400, 1)
        except ValueError:
            days = None
    state = answer.state if answer else None
    age = (answer.node_time - state.dcs_last_seen
           if answer and state and answer.node_time and state.dcs_last_seen else None)
    return NodeStatus(scope.name, node.name, str(node.address), answer is not None, problem,
                      state.version if state else None, state.role if state else None,
                      state.state if state else None, age, _serial(deployed),
                      _serial(_issued(cluster, scope.name, node.name)), days)


def status(cluster: Cluster, scope: str | None = None) -> list[NodeStatus]:
    pairs = [(s, n) for s in _scopes(cluster, scope) for n in s.nodes]
    return in_parallel(pairs, lambda pair: node_status(cluster, *pair))


# -- doctor --

def _timing_checks(cluster: Cluster, node: str, timing: Timing, failsafe: bool | None
                   ) -> list[Check]:
    spec = cluster.spec
    election_s = spec.etcd.election_timeout_ms / 1000
    hosts = max(1, len(spec.members))
    per_host = timing.retry_timeout / hosts
    found = []
    budget = timing.loop_wait + 2 * timing.retry_timeout
    found.append(Check(node, "ttl", Verdict.OK if budget <= timing.ttl else Verdict.FAIL,
                       f"loop_wait {timing.loop_wait} + 2 x retry_timeout "
                       f"{timing.retry_timeout} = {budget} s vs ttl {timing.ttl} s",
                       "" if budget <= timing.ttl else
                       "raise ttl or lower loop_wait/retry_timeout (`patronictl edit-config`): "
                       "a leader must give up its lock before the lock expires"))
    fits = 2 * election_s <= per_host
    found.append(Check(
        node, "retry_timeout", Verdict.OK if fits else Verdict.FAIL,
        f"an etcd election (election timeout {election_s:g} s, up to {2 * election_s:g} s) "
        f"vs Patroni's per-host request time retry_timeout / {hosts} hosts = "
        f"{per_host:.1f} s (heartbeat {spec.etcd.heartbeat_interval_ms} ms)",
        "" if fits else "raise retry_timeout (and ttl) with `patronictl edit-config`, or "
        "lower etcd.election_timeout_ms in the spec"))
    found.append(Check(
        node, "failsafe_mode", Verdict.OK if failsafe else Verdict.WARN,
        "on: a primary that loses etcd keeps running while every member still sees it"
        if failsafe else "off: a primary demotes whenever etcd is unreachable for "
        "retry_timeout, even if every replica still sees it",
        "" if failsafe else "consider `failsafe_mode: true` (`patronictl edit-config`)"))
    return found


def _access_checks(cluster: Cluster, scope: PatroniScope, node: PatroniNode) -> list[Check]:
    """The node's own user, on etcd's JSON gateway with the certificate dcsctl issued:
    reads and writes its prefix, and is refused everywhere else."""
    try:
        return _access(cluster, scope, node)
    except (OSError, http.client.HTTPException) as exc:
        # etcd ends the handshake of a revoked, expired or foreign certificate.
        return [Check(node.name, "access", Verdict.FAIL,
                      f"etcd refused the node's certificate ({exc})",
                      "run `dcsctl up`: it renews and deploys the node's certificate")]


def _access(cluster: Cluster, scope: PatroniScope, node: PatroniNode) -> list[Check]:
    identity = cluster.dir.load_identity(
        cluster.dir.root / "patroni" / scope.name / node.name / f"{node.name}.crt",
        cluster.dir.root / "patroni" / scope.name / node.name / f"{node.name}.key")
    password = patroni_ops.stored_password(cluster, scope.name)
    trusted = cluster.dir.trusted_cas()
    if identity is None or password is None or trusted is None:
        return [Check(node.name, "access", Verdict.FAIL, "dcsctl holds no credentials for "
                      "this node", "run `dcsctl up`")]
    tls = ClientTls(trusted, identity.cert_pem, identity.key_pem,
                    cluster.spec.shared_dns_name)
    gateway = Gateway(cluster.endpoints()[0], tls, timeout=cluster.context.deadline(5))
    user = f"patroni-{scope.name}"
    login = gateway.authenticate(user, password)
    if login.status != 200:
        return [Check(node.name, "access", Verdict.FAIL,
                      f"{user} cannot log in ({login.status}: {str(login.body)[:120]})",
                      "run `dcsctl up` (it sets the user and password the spec's scope needs)")]
    probe = f"{scope.prefix}dcsctl-doctor-{secrets.token_hex(4)}"
    outside = f"{scope.namespace}{scope.name}-dcsctl-doctor/x"  # next to the prefix, outside
    wrote = gateway.put(probe, "probe").status == 200
    read = gateway.get(probe).status == 200
    deleted = gateway.delete(probe).status == 200
    denied = [what for what, answer in (
        (f"read {outside}", gateway.get(outside)),
        (f"write {outside}", gateway.put(outside, "x")),
        ("list users", gateway.call("/v3/auth/user/list", {})),
    ) if answer.denied]
    problems = ([] if wrote and read and deleted else [f"cannot read/write {scope.prefix}"])
    problems += [f"not refused: {w}" for w in ("read " + outside, "write " + outside,
                                              "list users") if w not in denied]
    return [Check(node.name, "access", Verdict.FAIL if problems else Verdict.OK,
                  "; ".join(problems) or f"{user} reads and writes {scope.prefix} and is "
                  "refused outside it (real requests on the JSON gateway)",
                  "run `dcsctl up` to restore the scope's role and grants" if problems else "")]


@dataclass(frozen=True)
class HostsGap:
    missing: tuple[str, ...]  # live members (name url) none of whose client URLs is listed
    extra: tuple[str, ...]  # listed host:port that no live member serves


def _host_port(url: str) -> str:
    """`https://10.0.0.10:2379` and `10.0.0.10:2379` alike; as given when unparsable."""
    try:
        parts = urlsplit(url if "://" in url else f"//{url}")
        return f"{parts.hostname}:{parts.port}" if parts.hostname and parts.port else url
    except ValueError:
        return url


def hosts_gap(listed: list[str], live: list[MemberInfo]) -> HostsGap:
    """A node's etcd3 `hosts` against etcd's member list: every started voting member
    reachable through one of its client URLs, nothing else (a learner serves no
    Patroni request; an added but unstarted member serves nothing yet)."""
    serving = [m for m in live if m.started and not m.is_learner]
    wanted = {_host_port(u) for m in serving for u in m.client_urls}
    have = {_host_port(h) for h in listed}
    missing = tuple(f"{m.name} {', '.join(m.client_urls)}" for m in serving
                    if not {_host_port(u) for u in m.client_urls} & have)
    return HostsGap(missing, tuple(sorted(have - wanted)))


def live_members(cluster: Cluster) -> list[MemberInfo] | str:
    """etcd's member list, or why it could not be read."""
    try:
        with cluster.admin_client(timeout=cluster.context.deadline(5)) as client:
            return client.member_list()
    except DcsctlError as exc:
        return exc.message


def _hosts_check(cluster: Cluster, scope: PatroniScope, node: PatroniNode,
                 live: list[MemberInfo] | str) -> Check:
    name = node.name
    path = PurePosixPath(node.bundle_dir) / "etcd3.yml"
    if isinstance(live, str):
        return Check(name, "hosts", Verdict.FAIL, f"etcd's member list: {live}",
                     "see `dcsctl status`")
    # Read for its hosts only: the password in it is neither kept nor shown.
    content = cluster.database_host(scope.name, name).read(path)
    try:
        section = yaml.safe_load(content or b"") or {}
        hosts = section.get("etcd3", {}).get("hosts") if isinstance(section, dict) else None
    except (yaml.YAMLError, AttributeError):
        hosts = None
    listed = ([h.strip() for h in hosts.split(",")] if isinstance(hosts, str)
              else [str(h) for h in hosts] if isinstance(hosts, list) else None)
    if listed is None:
        return Check(name, "hosts", Verdict.FAIL, f"no etcd3 hosts list in {path}",
                     "run `dcsctl up` to deploy the current etcd3.yml")
    gap = hosts_gap(listed, live)
    if not gap.missing and not gap.extra:
        return Check(name, "hosts", Verdict.OK,
                     f"{', '.join(listed)}: every live member (etcd's member list)")
    problems = ([f"missing {'; '.join(gap.missing)}"] if gap.missing else []) + (
        [f"not a live member: {', '.join(gap.extra)}"] if gap.extra else [])
    return Check(name, "hosts", Verdict.FAIL, "etcd3.yml hosts " + "; ".join(problems),
                 "bring the spec's members to the live ones (`dcsctl member add/remove`), "
                 "then `dcsctl up` deploys hosts with every member")


def doctor_node(cluster: Cluster, scope: PatroniScope, node: PatroniNode,
                live: list[MemberInfo] | str | None = None) -> list[Check]:
    name = node.name
    api = _api(cluster, node)
    try:
        answer = api.state()
    except DcsctlError as exc:
        return [Check(name, "reachable", Verdict.FAIL, exc.message,
                      exc.fix or f"start Patroni on {name}")]
    checks = [Check(name, "reachable", Verdict.OK,
                    f"{node.rest_url}: {answer.state.role}, {answer.state.state}")]
    version = version_tuple(answer.state.version)
    floor = ".".join(map(str, PATRONI_FLOOR))
    checks.append(Check(
        name, "version", Verdict.OK if version >= PATRONI_FLOOR else Verdict.FAIL,
        f"Patroni {answer.state.version or '(unknown)'}",
        "" if version >= PATRONI_FLOOR else
        f"upgrade Patroni to {floor} or newer: older Patroni cannot list members or keep "
        "its leader lease alive on an etcd with CVE-2026-33413's fix and auth on"))
    seen = answer.state.dcs_last_seen
    age = answer.node_time - seen if answer.node_time and seen else None
    timing = api.timing()
    fresh = age is not None and age <= timing.ttl
    checks.append(Check(name, "dcs", Verdict.OK if fresh else Verdict.FAIL,
                        f"dcs_last_seen {age} s ago (ttl {timing.ttl} s)",
                        "" if fresh else f"look at Patroni's log on {name}"))
    checks += _bundle_checks(cluster, scope, node)
    checks.append(_hosts_check(cluster, scope, node,
                               live_members(cluster) if live is None else live))
    checks += _timing_checks(cluster, name, timing, api.failsafe())
    checks += _access_checks(cluster, scope, node)
    return checks


def _bundle_checks(cluster: Cluster, scope: PatroniScope, node: PatroniNode) -> list[Check]:
    name = node.name
    host = cluster.database_host(scope.name, node.name)
    deployed = host.read(PurePosixPath(node.bundle_dir) / f"{name}.crt")
    issued = _issued(cluster, scope.name, name)
    if deployed is None:
        return [Check(name, "bundle", Verdict.FAIL, f"no certificate in {node.bundle_dir}",
                      "run `dcsctl up`: it deploys the bundle")]
    found = []
    facts = pki.inspect(deployed)
    now = cluster.context.clock()
    left = facts.not_after - now
    revoked = pki.serial_number(deployed) in {
        e.serial for e in revocation.revoked(cluster.dir)}
    same = issued is not None and deployed.strip() == issued.strip()
    # Near expiry is what `certs check` calls expiring (and the certificate alert fires
    # on): the same window here, a failure, not a note to read later.
    expiring = facts.days_left(now) < EXPIRING_DAYS
    failed = not same or revoked or left <= dt.timedelta(0) or expiring
    detail = (f"deployed serial {_serial(deployed)}"
              + ("" if same else f", issued {_serial(issued)}")
              + f", {left.days} days left" + (", revoked" if revoked else "")
              + (f" (under {EXPIRING_DAYS}: expiring)" if expiring and left.days >= 0 else ""))
    renews = "run `dcsctl up`: it renews and deploys the node's certificate, verified " \
        "before the old one is revoked"
    if failed and same and not revoked and left > dt.timedelta(0) \
            and not due_for_renewal(facts, now):
        # Only a lifetime under 90 days gets here: `up` renews at a third of it.
        renew_at = facts.not_after - min(RENEW_BEFORE, (facts.not_after - facts.not_before) / 3)
        renews = (f"`dcsctl up` renews it from {renew_at:%Y-%m-%d %H:%M} UTC (a third of its "
                  f"lifetime before its end); a tls.leaf_days under {3 * EXPIRING_DAYS} keeps "
                  f"certificates inside the {EXPIRING_DAYS}-day expiry warning: raise it")
    found.append(Check(name, "certificate", Verdict.FAIL if failed else Verdict.OK, detail,
                       renews if failed else ""))
    rendered = patroni_ops.node_etcd3(cluster, scope.name, name,
                                      PurePosixPath(node.bundle_dir))
    states = file_states(host, bundle_paths(node))
    etcd3 = states.get(str(PurePosixPath(node.bundle_dir) / "etcd3.yml"))
    wanted = rendered.encode() if rendered else None
    hosts_ok = (etcd3 is not None and wanted is not None
                and etcd3.digest == hashlib.sha256(wanted).hexdigest())
    members = ", ".join(f"{m.address}:{cluster.spec.client_port(m)}"
                        for m in cluster.spec.members)
    found.append(Check(name, "etcd3.yml", Verdict.OK if hosts_ok else Verdict.FAIL,
                       f"hosts {members}, user and password as dcsctl renders them"
                       if hosts_ok else "differs from what dcsctl renders (hosts: the spec's "
                       "members, user, password, paths)",
                       "" if hosts_ok else "run `dcsctl up` to deploy the current etcd3.yml"))
    return found


def doctor(cluster: Cluster, scope: str) -> list[Check]:
    (chosen,) = _scopes(cluster, scope)
    live = live_members(cluster)  # once: every node's hosts against the same list
    results = in_parallel(list(chosen.nodes), lambda n: doctor_node(cluster, chosen, n, live))
    return [check for checks in results for check in checks]


def raise_failures(scope: str, checks: list[Check]) -> None:
    """`doctor`'s verdict: exit 4 naming every failed check and its fix."""
    failed = [c for c in checks if c.verdict is Verdict.FAIL]
    if failed:
        raise EnvironmentProblem(
            f"scope {scope}: {len(failed)} check{'s' if len(failed) > 1 else ''} failed",
            fix="; ".join(dict.fromkeys(f"{c.member}: {c.fix}" for c in failed if c.fix)),
            details=tuple(f"{c.member} {c.name}: {c.detail}" for c in failed),
        )
