"""What a member needs before and right after its first start, for every workflow that
starts members (`up`, `member add`, `restore`): the target's checks, etcd installed, the
member's files written; then the cluster ID recorded and auth switched on.

Each step takes what it needs and returns what it produced: nothing is left in a shared
object for a later step to find.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from dcsctl import render, spec
from dcsctl.etcd.model import hex_id
from dcsctl.etcd.versions import Version, deploy_refusal, members_by_version
from dcsctl.ops.cluster import Cluster
from dcsctl.pki import jwt_sign_method
from dcsctl.state import ClusterRecord
from dcsctl.workflow import UNCHANGED, in_parallel


def member_settings(cluster: Cluster, member: spec.Member, record: ClusterRecord,
                    version: Version, extra: Mapping[str, str] | None = None) -> bytes:
    """The member's etcd environment file, for whichever host runs it, rendered for etcd
    `version` (the caller knows which: the one installed, planned, or running); `extra`:
    flags for one special start, such as an upgrade's."""
    state = render.ClusterState.EXISTING if record.bootstrapped else render.ClusterState.NEW
    layout = cluster.layout(member.name)
    settings = render.etcd_settings(
        cluster.spec,
        member,
        layout,
        version=version,
        state=state,
        token=record.token,
        jwt_sign_method=jwt_sign_method(cluster.spec.tls.key_type),
    ) | render.revocation_settings(layout) | dict(extra or {})
    header = f"etcd member {member.name} of cluster {cluster.spec.name}; written by dcsctl"
    return render.env_file(settings, header=header)


def check(cluster: Cluster, members: Sequence[spec.Member]) -> str:
    """The target's checks before anything is written; every failure at once. An etcd
    the spec names (lab binaries, a release) is checked against the advisories here, before
    anything is fetched or written; what apt brings is known only after the install."""
    etcd = cluster.target.etcd
    if (wanted := etcd.wanted()) is not None:
        refuse_risky(cluster, {wanted: [m.name for m in members
                                        if etcd.installed(m.name) != wanted]})
    report = cluster.target.checks.preflight(members, thorough=False)
    if problem := report.problem():
        raise problem
    return report.summary


@dataclass(frozen=True)
class Installs:
    note: str
    restart: frozenset[str]  # running members whose etcd binary was replaced
    warnings: tuple[str, ...]
    versions: Mapping[str, Version]  # per member: the etcd installed, to render its config for


def current_versions(cluster: Cluster, members: Sequence[spec.Member] | None = None
                     ) -> dict[str, Version]:
    """The etcd each member's host has now, read once: what a workflow that installs
    nothing (restore, member remove) renders configurations for."""
    chosen = list(cluster.spec.members if members is None else members)
    found = in_parallel(chosen, lambda m: cluster.target.etcd.version(m.name))
    return {m.name: version for m, version in zip(chosen, found, strict=True)}


def refuse_risky(cluster: Cluster, deploying: Mapping[Version, Sequence[str]]) -> None:
    """Deploying an etcd with an advisory that breaks dcsctl's security model needs the
    spec to accept each advisory by name (etcd.accept_risks); a member that already runs
    such a version is left alone (`status` names it)."""
    wanted = {version: members for version, members in deploying.items() if members}
    if problem := deploy_refusal(wanted, cluster.spec.etcd.accept_risks):
        raise problem


def install(cluster: Cluster, members: Sequence[spec.Member]) -> Installs:
    etcd = cluster.target.etcd
    etcd.prepare_install()
    done = in_parallel(members, lambda m: etcd.install(m.name))
    # what apt installed is known only now; it is not started
    refuse_risky(cluster, members_by_version((m.name, outcome.version)
                                      for m, outcome in zip(members, done, strict=True)
                                      if outcome.replaced))
    notes = [outcome.note for outcome in done if outcome.note]
    # A running member keeps the old binary until it restarts: one at a time.
    restart = frozenset(m.name for m, outcome in zip(members, done, strict=True)
                        if outcome.replaced and cluster.service(m.name).is_active())
    warnings = tuple(dict.fromkeys(w for outcome in done for w in outcome.warnings))
    versions = {m.name: outcome.version for m, outcome in zip(members, done, strict=True)}
    return Installs("; ".join(notes) if notes else UNCHANGED, restart, warnings, versions)


def _runtime_settings(content: bytes) -> dict[str, str]:
    """The settings a running member would notice: etcd reads initial-* only at bootstrap."""
    settings = render.parse_env_file(content)
    for flag in ("initial-cluster", "initial-cluster-state", "initial-cluster-token"):
        settings.pop(render.env_name(flag), None)
    return settings


@dataclass(frozen=True)
class Configured:
    written: tuple[str, ...]  # one entry per member whose files changed
    restart: frozenset[str]  # running members that must restart to read them
    versions: Mapping[str, Version]  # what each configuration was rendered for

    def note(self, restarting: frozenset[str] = frozenset()) -> str:
        if not self.written:
            return UNCHANGED
        restarting = restarting | self.restart
        return f"wrote {', '.join(self.written)}" + (
            f"; restarting {', '.join(sorted(restarting))}" if restarting else "")


def configure(cluster: Cluster, record: ClusterRecord, versions: Mapping[str, Version],
              members: Sequence[spec.Member] | None = None,
              on_restart: Callable[[str], None] | None = None) -> Configured:
    """Save the spec (and a new cluster's record), then bring each member's files to it,
    its configuration rendered for `versions[member]` (what install handed on, or
    `current_versions`); a running member whose start-up settings changed is to be
    restarted (`on_restart` is told at once, from the member's worker thread)."""
    directory = cluster.dir
    directory.save_spec(cluster.spec)
    if not directory.record_path.exists():
        directory.save_record(record)
    chosen = list(cluster.spec.members if members is None else members)
    founding = None if record.bootstrapped else record.token

    def one(member: spec.Member) -> tuple[int, bool]:
        content = member_settings(cluster, member, record, versions[member.name])
        written = cluster.target.files.write_member_files(member.name, content,
                                                          founding_token=founding)
        previous = written.previous_config
        noticed = previous and _runtime_settings(previous) != _runtime_settings(content)
        restart = bool(noticed or written.restart) and cluster.service(member.name).is_active()
        if restart and on_restart is not None:
            on_restart(member.name)
        return len(written.changed), restart

    done = in_parallel(chosen, one)
    return Configured(
        tuple(m.name if count == 1 else f"{m.name} ({count} files)"
              for m, (count, _) in zip(chosen, done, strict=True) if count),
        frozenset(m.name for m, (_, restart) in zip(chosen, done, strict=True) if restart),
        {m.name: versions[m.name] for m in chosen})


def bootstrap(cluster: Cluster, record: ClusterRecord,
              versions: Mapping[str, Version]) -> ClusterRecord:
    """Record the cluster ID in `record` (the one the command read, or a phase before
    wrote); from now on a member that loses its data dir must not found a new cluster, so
    every configuration says `existing` (rendered for `versions`, as configure did)."""
    with cluster.admin_client() as client:
        cluster_id = hex_id(client.cluster_id())
    record = cluster.dir.mark_bootstrapped(record, cluster_id)
    in_parallel(list(cluster.spec.members), lambda m: cluster.target.files.write_config(
        m.name, member_settings(cluster, m, record, versions[m.name])))
    return record


def auth_enabled(cluster: Cluster) -> bool:
    with cluster.admin_client() as client:
        return client.auth_enabled()


def enable_auth(cluster: Cluster) -> str:
    """Role and user root, then auth on."""
    done = []
    with cluster.admin_client() as client:
        if "root" not in client.role_names():
            client.role_add("root")
            client.role_grant("root", "/", "readwrite")
            done.append("role root")
        users = client.user_roles()
        if "root" not in users:
            client.user_add("root", cluster.dir.root_password())
            done.append("user root")
        if "root" not in users.get("root", set()):
            client.user_grant_role("root", "root")
        client.auth_enable()
        done.append("auth enabled")
    return ", ".join(done)
