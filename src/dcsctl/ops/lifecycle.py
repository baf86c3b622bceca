"""`up`, `down`, `destroy`: bring a lab cluster to the spec, stop it, remove it.

`up` is a list of phases that observe before they act, so re-running it after an
interruption (or after `down`) finishes the job and reports what it changed.
"""

from __future__ import annotations

import concurrent.futures
from dataclasses import dataclass

from dcsctl import render, spec
from dcsctl.errors import EnvironmentProblem
from dcsctl.etcd.model import EndpointStatus, hex_id
from dcsctl.etcd.versions import Version
from dcsctl.ops import certs, deploy, install, upgrade
from dcsctl.ops.context import Cluster
from dcsctl.ops.on_hosts import in_parallel
from dcsctl.ops.runtime import MemberRuntime, as_saved
from dcsctl.state import PUBLIC, ClusterRecord, locked
from dcsctl.workflow import UNCHANGED, Phase, PhaseOutcome, run_phases


@dataclass(frozen=True)
class UpResult:
    cluster: str
    cluster_id: str
    outcomes: tuple[PhaseOutcome, ...]
    warnings: tuple[str, ...]

    @property
    def changed(self) -> bool:
        return any(outcome.changed for outcome in self.outcomes)


def _identity_of(cluster_spec: spec.ClusterSpec) -> list[tuple[str, str]]:
    return [(m.name, cluster_spec.peer_url(m)) for m in cluster_spec.members]


def _check_same_cluster(cluster: Cluster) -> None:
    """The state dir must hold this cluster, not another one under the same name."""
    if not cluster.dir.exists() or not cluster.dir.spec_path.exists():
        return
    saved = cluster.dir.load_spec()
    if _identity_of(saved) != _identity_of(cluster.spec):
        was = ", ".join(f"{n}={u}" for n, u in _identity_of(saved))
        raise EnvironmentProblem(
            f"the state dir {cluster.dir.root} holds another cluster named "
            f"{cluster.spec.name!r} (members {was}); this spec's members differ",
            fix="give this spec another `name:`, use another DCSCTL_HOME, or remove the "
            f"old cluster with `dcsctl destroy --cluster {cluster.spec.name}`",
        )


def _runtime_settings(content: bytes) -> dict[str, str]:
    """The settings a running member would notice: etcd reads initial-* only at bootstrap."""
    settings = render.parse_env_file(content)
    for flag in ("initial-cluster", "initial-cluster-state", "initial-cluster-token"):
        settings.pop(render.env_name(flag), None)
    return settings


class UpWorkflow:
    """The phases of `up`, sharing what they learn through this object."""

    def __init__(self, cluster: Cluster, *, replacing: bool = False,
                 probed: dict[str, install.InstallState] | None = None) -> None:
        self.cluster = cluster
        self.runtime = MemberRuntime(cluster)
        self.probed = probed or {}  # install states already read this run
        # Restore and member changes alter membership on purpose, under the same name and CA.
        self.replacing = replacing
        self.record: ClusterRecord | None = None
        self.restart_needed: set[str] = set()
        self.cluster_id = ""
        self.versions: dict[str, Version] = {}
        self.superseded: list[str] = []  # hosts with Debian's etcd beside a release

    @property
    def members(self) -> list[spec.Member]:
        return list(self.cluster.spec.members)

    def phases(self) -> list[Phase]:
        remote = self.cluster.remote
        phases = [
            Phase("preflight", "SSH, sudo, state dir, ports" if remote
                  else "etcd binaries, state dir, ports", self.preflight, check_only=True),
            Phase("pki", "CA, member, admin and JWT keys", self.pki, self.pki_complete),
            Phase("config", "etcd configuration per member", self.config),
            Phase("start", "start members", self.start, self.all_running),
            Phase("health", "wait until every member is healthy", self.health, check_only=True),
            Phase("bootstrap", "record cluster ID, switch configs to existing",
                  self.bootstrap, self.bootstrapped),
            Phase("auth", "root role and user, auth enabled", self.auth, self.auth_done),
        ]
        if remote:
            phases.insert(2, Phase("install", "etcd and its service user on every host",
                                   self.install))
        return phases

    # -- preflight --
    def preflight(self) -> str:
        if self.cluster.remote:
            return self.preflight_remote()
        binaries = self.cluster.binaries
        if not self.replacing:
            _check_same_cluster(self.cluster)
        directory = self.cluster.dir
        self.record = directory.record() if directory.exists() else directory.create()
        busy = []
        for member in self.members:
            if self.cluster.service(member.name).is_active():
                continue
            spec_ = self.cluster.spec
            for port in (spec_.client_port(member), spec_.peer_port(member)):
                holder = self.cluster.host.port_busy(str(member.address), port)
                if holder:
                    busy.append(f"{member.address}:{port} ({member.name}) is held by {holder}")
        if busy:
            raise EnvironmentProblem(
                "ports needed by the cluster are in use: " + "; ".join(busy),
                fix="stop that process, or give the members other addresses or ports "
                "in the spec",
            )
        return f"etcd {binaries.version} at {binaries.bin_dir}"

    def preflight_remote(self) -> str:
        if not self.replacing:
            _check_same_cluster(self.cluster)
        directory = self.cluster.dir
        self.record = directory.record() if directory.exists() else directory.create()

        def reach(member: spec.Member) -> str:
            host = self.cluster.ssh_host(member.name)
            uid = host.run(["id", "-u"]).stdout.strip()
            if uid != "0":
                raise EnvironmentProblem(
                    f"{member.name}: commands on {host.destination} run as uid {uid}, "
                    "not root",
                    fix="log in as root, or keep `ssh: {sudo: true}` with passwordless sudo",
                )
            return str(host.destination)

        reached = in_parallel(self.members, reach)
        return f"{len(reached)} hosts reachable, root via " + (
            "sudo" if self.cluster.spec.ssh.sudo else "login")

    # -- install --
    def install(self) -> str:
        if self.cluster.spec.install.method is spec.InstallMethod.RELEASE:
            install.release_tarball(self.cluster)  # fetched and checked once, for every host
        done = in_parallel(self.members, lambda m: install.ensure_installed(
            self.cluster, m, self.probed.get(m.name)))
        notes = [outcome.note for outcome in done if outcome.note]
        for member, outcome in zip(self.members, done, strict=True):
            # A running member keeps the old binary until it restarts: one at a time.
            if outcome.replaced and self.cluster.service(member.name).is_active():
                self.restart_needed.add(member.name)
        self.versions = {m.name: o.version for m, o in zip(self.members, done, strict=True)}
        self.superseded = [warning for m, o in zip(self.members, done, strict=True)
                           if (warning := install.superseded_package(self.cluster, m, o.state))]
        for name, version in self.versions.items():
            self.cluster.remember_version(name, version)
        return "; ".join(notes) if notes else UNCHANGED

    # -- pki --
    def pki_complete(self) -> bool:
        return certs.plan_pki(self.cluster, self.cluster.context.clock()).complete

    def pki(self) -> str:
        return certs.ensure_pki(self.cluster, self.cluster.context.clock())

    # -- config --
    def config(self) -> str:
        assert self.record is not None
        directory = self.cluster.dir
        directory.save_spec(self.cluster.spec)
        if not directory.record_path.exists():
            directory.save_record(self.record)
        changed = in_parallel(self.members, self.configure)
        written = [f"{m.name} ({len(c)} files)" if self.cluster.remote else m.name
                   for m, c in zip(self.members, changed, strict=True) if c]
        if not written:
            return UNCHANGED
        return f"wrote {', '.join(written)}" + (
            f"; restarting {', '.join(sorted(self.restart_needed))}" if self.restart_needed else ""
        )

    def configure(self, member: spec.Member) -> tuple[str, ...]:
        """Bring one member's files to the spec; a running member whose start-up settings
        changed is marked for a restart. The paths written."""
        assert self.record is not None
        record = self.record
        content = deploy.member_settings(self.cluster, member, record)
        if self.cluster.remote:
            founding = None if record.bootstrapped else record.token
            pushed = deploy.push(self.cluster, member, content, founding_token=founding)
            changed, previous = pushed.changed, pushed.previous_config
            unit_changed = str(self.cluster.host_paths(member.name).unit) in changed
        else:
            path = self.cluster.dir.layout(member.name).config
            previous = self.cluster.host.read(path)
            changed = (str(path),) if self.cluster.host.write(path, content, PUBLIC) else ()
            unit_changed = False
        noticed = previous and _runtime_settings(previous) != _runtime_settings(content)
        if (noticed or unit_changed) and self.cluster.service(member.name).is_active():
            self.restart_needed.add(member.name)
        return changed

    # -- start --
    def all_running(self) -> bool:
        return not self.restart_needed and all(
            self.cluster.service(m.name).is_active() for m in self.members
        )

    def start_member(self, member: spec.Member) -> None:
        self.runtime.start_member(member)

    def start(self) -> str:
        started = []
        # One member at a time for a config change, so the cluster keeps quorum.
        for name in sorted(self.restart_needed):
            self.cluster.service(name).stop()
            self.start_member(self.cluster.spec.member(name))
            self.wait_healthy([self.cluster.spec.member(name)])
            started.append(f"{name} (restarted)")
        self.restart_needed.clear()
        for member in self.members:
            if not self.cluster.service(member.name).is_active():
                self.start_member(member)
                started.append(member.name)
        return "started " + ", ".join(started)

    # -- health --
    def wait_healthy(self, members: list[spec.Member]) -> None:
        self.runtime.wait_healthy(members)

    def health(self) -> str:
        self.wait_healthy(self.members)
        return f"{len(self.members)} of {len(self.members)} healthy"

    # -- bootstrap --
    def bootstrapped(self) -> bool:
        record = self.cluster.dir.record()
        self.record = record
        if record.bootstrapped and record.cluster_id:
            self.cluster_id = record.cluster_id
            return True
        return False

    def bootstrap(self) -> str:
        with self.cluster.admin_client() as client:
            cluster_id = hex_id(client.cluster_id())
        self.record = self.cluster.dir.mark_bootstrapped(cluster_id)
        self.cluster_id = cluster_id
        # From now on a member that loses its data dir must not found a new cluster.
        record = self.record

        def write(member: spec.Member) -> bool:
            return self.cluster.host_of(member.name).write(
                self.cluster.layout(member.name).config,
                deploy.member_settings(self.cluster, member, record), PUBLIC, "root:root")

        in_parallel(self.members, write)
        return f"cluster ID {cluster_id}"

    # -- auth --
    def auth_done(self) -> bool:
        with self.cluster.admin_client() as client:
            return client.auth_enabled()

    def auth(self) -> str:
        done = []
        with self.cluster.admin_client() as client:
            if "root" not in client.role_names():
                client.role_add("root")
                client.role_grant("root", "/", "readwrite")
                done.append("role root")
            users = client.user_roles()
            if "root" not in users:
                client.user_add("root", self.cluster.dir.root_password())
                done.append("user root")
            if "root" not in users.get("root", set()):
                client.user_grant_role("root", "root")
            client.auth_enable()
            done.append("auth enabled")
        return ", ".join(done)


def _change_binaries_first(cluster: Cluster) -> dict[str, install.InstallState]:
    """A running cluster whose spec names another etcd — SSH: another release tarball;
    lab: another etcd.bin_dir — moves there through the one rolling path of
    `dcsctl upgrade` (supported paths only, snapshot first, leader last) before the
    other phases run. Returns the SSH hosts' install states, read once."""
    if not (cluster.dir.exists() and cluster.dir.record().bootstrapped):
        return {}
    members = list(cluster.spec.members)
    if cluster.remote:
        states = in_parallel(members, lambda m: install.install_state(cluster, m))
        wanted = install.wanted_version(cluster)
        if wanted is None or all(s.version in (None, wanted) for s in states):
            return {m.name: state for m, state in zip(members, states, strict=True)}

        def install_on(member: spec.Member) -> None:
            install.ensure_installed(cluster, member)

        with locked(cluster.dir):
            upgrade.roll(as_saved(cluster), cluster, wanted, install_on=install_on)
        return {}
    if not all(cluster.service(m.name).is_active() for m in members):
        return {}  # nothing runs that a new binary would replace under its feet
    wanted = cluster.binaries.version
    with cluster.admin_client(timeout=2.0) as client:
        answered = [s for s in client.statuses() if isinstance(s, EndpointStatus)]
    if any(Version.parse(s.version) != wanted for s in answered):
        with locked(cluster.dir):
            upgrade.roll(as_saved(cluster), cluster, wanted)
    return {}


def up(cluster: Cluster) -> UpResult:
    warnings = list(cluster.spec.warnings())
    fresh = not cluster.dir.root.exists()
    try:
        probed = _change_binaries_first(cluster)
        with locked(cluster.dir):
            workflow = UpWorkflow(cluster, probed=probed)
            outcomes = run_phases(workflow.phases(), cluster.context.progress)
    except BaseException:
        # A first `up` that failed before it wrote anything leaves no empty folder behind.
        if fresh and not cluster.dir.exists():
            cluster.dir.remove()
        raise
    if cluster.remote:
        warnings += install.version_warnings(workflow.versions) + workflow.superseded
    else:
        warnings += cluster.binaries.warnings
    return UpResult(cluster.spec.name, workflow.cluster_id, tuple(outcomes), tuple(warnings))


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


def down(cluster: Cluster) -> DownResult:
    """Stop every member by its verified PID; data, PKI and config stay."""
    cluster = as_saved(cluster)
    with locked(cluster.dir):
        return stop_members(cluster)


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


def destroy(cluster: Cluster) -> DownResult:
    """Stop the members and remove the whole state dir (data, PKI, credentials), and on
    SSH hosts everything dcsctl put there (keys first among them)."""
    result = down(cluster)
    cluster = as_saved(cluster)
    if cluster.remote:
        in_parallel(list(cluster.spec.members), lambda m: deploy.remove(cluster, m))
    cluster.dir.remove()
    return result
