"""Patroni bundles on the database hosts: placed over SSH, taken in by Patroni, verified,
and only then the certificates they replaced revoked.

Per node (replicas first, the primary last, so a problem shows on a replica): the files
land atomically at the same paths (the previous ones kept beside them); Patroni reloads
when etcd3.yml changed (a reload re-reads only username/password); its connections to
etcd are aborted so it opens new ones with the new files (patroni_node's docstring: the
measurement); then its REST API must report a DCS read after that moment, and the
certificates that node held before are revoked at once. A node that does not come back
gets its previous files back and is made to reconnect with them, and the run stops
naming it; its own certificate is not revoked (it presents it again), those of the nodes
verified before it already are. Patroni is never restarted.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from dcsctl import pki
from dcsctl.errors import ClusterUnhealthy, DcsctlError, EnvironmentProblem
from dcsctl.hosts.protocol import Host
from dcsctl.identity import Identity
from dcsctl.ops import patroni as patroni_ops
from dcsctl.ops import revocation
from dcsctl.ops.cluster import Cluster
from dcsctl.ops.patroni_nodes import reconnect, seen_after
from dcsctl.patroni_node import Endpoint, FileState, parse_file_states
from dcsctl.patroni_rest import Answer, PatroniApi, RestApiUntrusted
from dcsctl.spec import PatroniNode, PatroniScope, ReloadMethod

# Each file's sha256, mode and owner, or "- - -" when it is missing (or a link: dcsctl
# never writes through one). Paths arrive as arguments: nothing is quoted into the text.
FILE_STATE_SCRIPT = r"""
for f in "$@"; do
  if [ -f "$f" ] && [ ! -L "$f" ]; then
    printf '%s %s %s\n' "$(sha256sum < "$f" | cut -d' ' -f1)" "$(stat -c '%a %U:%G' "$f")" "$f"
  else
    printf '%s\n' "- - - $f"
  fi
done
"""
# The previous files stay beside the new ones (mode and owner kept) until the node has
# reached etcd with the new ones: a rollback is a rename on the host, and the old key
# never travels.
KEEP_PREVIOUS_SCRIPT = r"""
set -eu
for f in "$@"; do
  if [ -f "$f" ] && [ ! -L "$f" ]; then
    cp -p "$f" "$f.dcsctl-previous.tmp"
    mv -f "$f.dcsctl-previous.tmp" "$f.dcsctl-previous"
  else
    rm -f "$f.dcsctl-previous"
  fi
done
"""
PUT_BACK_SCRIPT = r"""
set -eu
for f in "$@"; do
  if [ -f "$f.dcsctl-previous" ]; then mv -f "$f.dcsctl-previous" "$f"; fi
done
"""
PREVIOUS = ".dcsctl-previous"
PUBLIC_MODE, PRIVATE_MODE = 0o644, 0o600


@dataclass(frozen=True)
class NodeFile:
    path: PurePosixPath
    content: bytes
    mode: int
    owner: str
    secret: bool  # never shown in a plan's diff, never read back

    @property
    def wanted(self) -> FileState:
        return FileState(hashlib.sha256(self.content).hexdigest(), format(self.mode, "o"),
                         self.owner)


@dataclass(frozen=True)
class NodeBundle:
    scope: PatroniScope
    node: PatroniNode
    files: tuple[NodeFile, ...]
    cert_pem: bytes

    @property
    def cert_path(self) -> PurePosixPath:
        return PurePosixPath(self.node.bundle_dir) / f"{self.node.name}.crt"


def bundle(cluster: Cluster, scope: PatroniScope, node: PatroniNode, *,
           ca: Identity | None = None, trust: bytes | None = None) -> NodeBundle:
    """The node's four files as values (its certificate issued, or kept while good);
    `ca` and `trust` during a CA rotation (sign with the incoming CA, trust both)."""
    made = patroni_ops.node_credentials(cluster, scope.name, node.name,
                                        PurePosixPath(node.bundle_dir), ca=ca, trust=trust)
    return NodeBundle(scope, node, _files(node, made), made.identity.cert_pem)


def file_states(host: Host, paths: Sequence[PurePosixPath]) -> dict[str, FileState]:
    result = host.run(["sh", "-c", FILE_STATE_SCRIPT, "sh", *map(str, paths)], timeout=60)
    if not result.ok:
        raise DcsctlError(f"{host.name}: could not read the state of the bundle files "
                          f"({result.stderr.strip()[-200:]})",
                          fix="check sudo and the bundle_dir on that host, then run again")
    return parse_file_states(result.stdout)


def changed_files(host: Host, made: NodeBundle) -> list[NodeFile]:
    states = file_states(host, [f.path for f in made.files])
    return [f for f in made.files if states.get(str(f.path)) != f.wanted]


@dataclass(frozen=True)
class NodeDeployed:
    scope: str
    node: str
    files: tuple[str, ...]  # the file names written ("" none: unchanged)
    verified: bool  # Patroni reached etcd on new connections after the change
    note: str
    replaced: bytes | None = None  # the certificate it replaced (PEM), to revoke


def _api(node: PatroniNode, cluster: Cluster) -> PatroniApi:
    return PatroniApi(node.name, node.rest_url, node.rest_api_ca_file,
                      timeout=cluster.context.deadline(5))


def _rest_endpoint(node: PatroniNode) -> Endpoint:
    parts = urlsplit(node.rest_url)
    return Endpoint(str(node.address), parts.port or 8008)


def _etcd_endpoints(cluster: Cluster) -> list[Endpoint]:
    spec = cluster.spec
    return [Endpoint(str(m.address), spec.client_port(m)) for m in spec.members]


def _reload(host: Host, node: PatroniNode, api: PatroniApi) -> None:
    if node.reload is ReloadMethod.SYSTEMD:
        result = host.run(["systemctl", "reload", node.systemd_unit], timeout=60)
        if not result.ok:
            raise EnvironmentProblem(
                f"{node.name}: `systemctl reload {node.systemd_unit}` failed "
                f"({result.stderr.strip()[-200:]})",
                fix="check the node's systemd_unit in the spec (Debian: patroni, or "
                "patroni@CLUSTER)")
    else:
        api.reload()


def _state_or_none(api: PatroniApi) -> Answer | None:
    """Patroni's state, or None while it does not answer (not started yet). An https
    answer the spec's CA does not verify is an error: files placed then would never be
    verified."""
    try:
        return api.state()
    except RestApiUntrusted:
        raise
    except EnvironmentProblem:
        return None


def deploy_node(cluster: Cluster, made: NodeBundle) -> NodeDeployed:
    node, scope = made.node, made.scope
    host = cluster.database_host(scope.name, node.name)
    changed = changed_files(host, made)
    if not changed:
        return NodeDeployed(scope.name, node.name, (), True, "unchanged")
    names = tuple(f.path.name for f in changed)
    old_cert = host.read(made.cert_path)
    replaced = (old_cert if old_cert and old_cert.strip() != made.cert_pem.strip()
                and _revocable(cluster, old_cert) else None)
    api = _api(node, cluster)
    before = _state_or_none(api)
    paths = [str(f.path) for f in made.files]
    if replaced is not None:
        # Kept before the new files go out, so that a run cut short between placing and
        # verifying them still knows what to revoke: the next run finds the node
        # `unchanged` with this pending, verifies it and revokes (deploy_nodes).
        revocation.keep_superseded(
            cluster, revocation.patroni_label(scope.name, node.name), replaced)
    kept = host.run(["sh", "-c", KEEP_PREVIOUS_SCRIPT, "sh", *paths], timeout=60)
    if not kept.ok:
        raise DcsctlError(f"{scope.name}/{node.name}: could not keep the previous bundle "
                          f"files ({kept.stderr.strip()[-200:]})",
                          fix=f"check free space and permissions in {node.bundle_dir}")
    for file in changed:
        host.write(file.path, file.content, file.mode, file.owner)
    if before is None:
        # What it replaced stays pending (kept above): revoked by the first later run
        # that sees this node reach etcd (deploy_nodes).
        _drop_previous(host, paths)
        return NodeDeployed(
            scope.name, node.name, names, False,
            f"placed; Patroni does not answer at {node.rest_url}: start it with "
            f"{node.bundle_dir}/etcd3.yml (not verified; what it replaced is revoked once "
            "a run sees it reach etcd)")
    reloaded = "etcd3.yml" in names
    timing = api.timing()
    try:
        if reloaded:
            _reload(host, node, api)
        done = reconnect(host, node.name, api, _rest_endpoint(node), _etcd_endpoints(cluster))
        # dcs_last_seen moves once per HA loop; a leader that cannot reach etcd for
        # retry_timeout demotes: give up (and put the old files back) well before that.
        after = seen_after(api, done.node_time,
                           timeout=cluster.context.deadline(
                               timing.loop_wait + timing.retry_timeout / 2))
        if before.state.role == "primary" and after.state.role != "primary":
            raise ClusterUnhealthy(f"{node.name} is {after.state.role} now, was primary")
    except (ClusterUnhealthy, EnvironmentProblem) as exc:
        _put_back(cluster, host, node, api, paths, reload=reloaded)
        raise EnvironmentProblem(
            f"{scope.name}/{node.name}: Patroni did not reach etcd with the new bundle "
            f"({exc.message}); the previous files are back in place and it was made to "
            "reconnect with them; its certificate was not revoked",
            fix=f"look at Patroni's log on {node.name} (a key it cannot read: the node's "
            "owner in the spec must be the user Patroni runs as), then run `dcsctl up` "
            "again",
        ) from exc
    _drop_previous(host, paths)
    return NodeDeployed(scope.name, node.name, names, True,
                        f"reached etcd on new connections ({done.aborted} reopened)",
                        replaced)


def _revocable(cluster: Cluster, cert_pem: bytes) -> bool:
    """A certificate found on a node that this cluster's CRL can revoke: one its CA (or,
    during a CA rotation, either CA) issued. Anything else there (a file put by hand, of
    another CA, not PEM) means nothing to the members' CRL: it is replaced, not kept."""
    try:
        return revocation.issued_here(cluster, cert_pem)
    except ValueError:
        return False


def _drop_previous(host: Host, paths: Sequence[str]) -> None:
    host.run(["rm", "-f", "--", *(p + PREVIOUS for p in paths)], timeout=60)


def _put_back(cluster: Cluster, host: Host, node: PatroniNode, api: PatroniApi,
              paths: Sequence[str], *, reload: bool) -> None:
    """Best effort, on the way to an error: the previous files and a reconnect."""
    host.run(["sh", "-c", PUT_BACK_SCRIPT, "sh", *paths], timeout=60)
    try:
        if reload:
            _reload(host, node, api)
        reconnect(host, node.name, api, _rest_endpoint(node), _etcd_endpoints(cluster))
    except DcsctlError:
        pass  # the error being raised names the node; its own retries read these files


def _primary_last(cluster: Cluster, scope: PatroniScope) -> list[PatroniNode]:
    def rank(node: PatroniNode) -> int:
        answer = _state_or_none(_api(node, cluster))
        return 1 if answer is not None and answer.state.role in (
            "primary", "master", "standby_leader") else 0

    ranks = {node.name: rank(node) for node in scope.nodes}
    return sorted(scope.nodes, key=lambda n: ranks[n.name])


@dataclass(frozen=True)
class Deployed:
    scopes: tuple[str, ...]  # scope changes (role, user, grants) made
    nodes: tuple[NodeDeployed, ...]
    revoked: tuple[int, ...]  # serials of replaced certificates revoked

    @property
    def note(self) -> str:
        parts = list(self.scopes)
        for found in self.nodes:
            if found.files:
                parts.append(f"{found.scope}/{found.node}: {', '.join(found.files)} — "
                             f"{found.note}")
        if self.revoked:
            parts.append("revoked replaced " + ", ".join(f"{s:x}" for s in self.revoked))
        return "; ".join(parts) or "unchanged"


def managed(cluster: Cluster) -> set[tuple[str, str]]:
    """(scope, node) of every database node the spec lists."""
    settings = cluster.spec.patroni
    return {(s.name, n.name) for s in (settings.scopes if settings else []) for n in s.nodes}


def awaiting_verification(cluster: Cluster) -> dict[Path, str]:
    """The kept certificate files of the spec's nodes ("scope/node" each): revoked by the
    run that verifies the node's new bundle (`deploy_nodes`), not by hand — until then
    one of them may be the only certificate the node can use (a deploy that failed put
    it back)."""
    return {path: f"{scope}/{node}" for scope, node in sorted(managed(cluster))
            for path in revocation.superseded_paths(
                cluster, revocation.patroni_label(scope, node))}


def unmanaged_bundles(cluster: Cluster) -> list[str]:
    """Bundles kept on the control machine for nodes the spec does not list: a human
    deploys those."""
    nodes = managed(cluster)
    return [f"{d.parent.name}/{d.name}"
            for d in sorted((cluster.dir.root / "patroni").glob("*/*"))
            if d.is_dir() and (d.parent.name, d.name) not in nodes]


def deploy_nodes(cluster: Cluster, *, ca: Identity | None = None,
                 trust: bytes | None = None) -> Deployed:
    """Every spec node's bundle deployed and verified, replicas first; each node's
    replaced certificates revoked as soon as that node is verified."""
    settings = cluster.spec.patroni
    outcomes = []
    revoked: list[int] = []
    for scope in settings.scopes if settings else []:
        for node in _primary_last(cluster, scope):
            made = bundle(cluster, scope, node, ca=ca, trust=trust)
            outcome = deploy_node(cluster, made)
            pending = _pending(cluster, made)
            if not outcome.files and pending:
                outcome = _verify_unchanged(cluster, made)
            outcomes.append(outcome)
            if outcome.verified and (outcome.files or pending):
                revoked.extend(_retire(cluster, made, outcome.replaced, pending))
    revocation.forget_revoked_superseded(cluster)
    return Deployed((), tuple(outcomes), tuple(revoked))


def _pending(cluster: Cluster, made: NodeBundle) -> list[bytes]:
    """The certificates kept aside for this node (`certs rotate --patroni`, or a deploy
    nobody verified) other than the one it is given now."""
    deployed = pki.serial_number(made.cert_pem)
    label = revocation.patroni_label(made.scope.name, made.node.name)
    return [cert for cert in revocation.superseded_of(cluster, label)
            if pki.serial_number(cert) != deployed
            and pki.holder_name(cert) == pki.holder_name(made.cert_pem)]


def _verify_unchanged(cluster: Cluster, made: NodeBundle) -> NodeDeployed:
    """A node whose files are already the ones issued, with certificates pending: it is
    made to reconnect and must reach etcd with those files before they are revoked."""
    node, scope = made.node, made.scope
    api = _api(node, cluster)
    if _state_or_none(api) is None:
        return NodeDeployed(scope.name, node.name, (), False,
                            "unchanged; Patroni does not answer: its old certificate is "
                            "revoked once a run sees it reach etcd")
    host = cluster.database_host(scope.name, node.name)
    timing = api.timing()
    try:
        done = reconnect(host, node.name, api, _rest_endpoint(node), _etcd_endpoints(cluster))
        seen_after(api, done.node_time, timeout=cluster.context.deadline(
            timing.loop_wait + timing.retry_timeout / 2))
    except (ClusterUnhealthy, EnvironmentProblem) as exc:
        raise EnvironmentProblem(
            f"{scope.name}/{node.name}: Patroni did not reach etcd with its bundle "
            f"({exc.message}); the certificates it held before were not revoked",
            fix=f"look at Patroni's log on {node.name}, then run `dcsctl up` again",
        ) from exc
    return NodeDeployed(scope.name, node.name, (), True,
                        f"unchanged; reached etcd on new connections ({done.aborted} "
                        "reopened)")


def _retire(cluster: Cluster, made: NodeBundle, replaced: bytes | None,
            pending: Sequence[bytes]) -> list[int]:
    """Revoke, right after its node was verified, every certificate that node held
    before: the one read from its host, and the pending ones (`_pending`).

    At once rather than at the end of the run: a later node that does not come back
    stops the run, and this node then shows `unchanged` on the next one, with its old
    certificate no longer on its host nor (after a renewal) on the control machine:
    nothing would revoke it ever. At once is also safe: the node's Patroni has just
    opened new connections with the new files, and its old certificate is on no host.
    The serials revoked."""
    certificates = [*([replaced] if replaced is not None else []), *pending]
    if not certificates:
        return []
    done = revocation.revoke(cluster, certificates)
    revocation.forget_revoked_superseded(cluster)
    return [entry.serial for entry in done.added]


def take_off(cluster: Cluster, scope_name: str) -> tuple[str, ...]:
    """`patroni remove`: the scope's bundle files off every node the spec lists for it
    (the node's Patroni loses the DCS at its next reconnect: the caller asked first)."""
    settings = cluster.spec.patroni
    scope = settings.scope(scope_name) if settings else None
    removed = []
    for node in scope.nodes if scope else []:
        host = cluster.database_host(scope_name, node.name)
        paths = [str(p) for p in bundle_paths(node)]
        result = host.run(["rm", "-f", "--", *paths, *(p + PREVIOUS for p in paths)],
                          timeout=60)
        if not result.ok:
            raise DcsctlError(f"{scope_name}/{node.name}: could not remove the bundle from "
                              f"{node.bundle_dir} ({result.stderr.strip()[-200:]})",
                              fix="check sudo on that host, then run again")
        removed.append(node.name)
    return tuple(removed)


def deploy(cluster: Cluster) -> Deployed:
    """`up`'s patroni phase: every spec scope's role and user, every node's bundle."""
    settings = cluster.spec.patroni
    if settings is None:
        return Deployed((), (), ())
    scope_changes = []
    for scope in settings.scopes:
        change = patroni_ops.add(cluster, scope.name, scope.namespace)
        if change.changes:
            scope_changes.append(f"scope {scope.name}: {', '.join(change.changes)}")
    nodes = deploy_nodes(cluster)
    return Deployed(tuple(scope_changes), nodes.nodes, nodes.revoked)


def _files(node: PatroniNode, made: patroni_ops.NodeCredentials) -> tuple[NodeFile, ...]:
    directory = PurePosixPath(node.bundle_dir)
    owner = node.file_owner
    return (
        # The key before its certificate: a connection opened between the two renames
        # fails once and is retried on the next member; never a cert without its key.
        NodeFile(directory / f"{node.name}.key", made.identity.key_pem, PRIVATE_MODE,
                 owner, True),
        NodeFile(directory / f"{node.name}.crt", made.identity.cert_pem, PUBLIC_MODE,
                 owner, False),
        NodeFile(directory / "ca.crt", made.trust, PUBLIC_MODE, owner, False),
        NodeFile(directory / "etcd3.yml", made.etcd3.encode(), PRIVATE_MODE, owner, True),
    )


def bundle_paths(node: PatroniNode) -> list[PurePosixPath]:
    directory = PurePosixPath(node.bundle_dir)
    return [directory / f"{node.name}.key", directory / f"{node.name}.crt",
            directory / "ca.crt", directory / "etcd3.yml"]


@dataclass(frozen=True)
class NodePlan:
    scope: str
    node: str
    destination: str
    files: tuple[tuple[str, str], ...]  # (path, create | update | unchanged)

    @property
    def changes(self) -> bool:
        return any(action != "unchanged" for _, action in self.files)


def planned(cluster: Cluster) -> list[NodePlan]:
    """`up --plan`: what the patroni phase would write on each node, from the hosts' file
    states (digest, mode, owner: secrets are compared, never read back); issues nothing."""
    settings = cluster.spec.patroni
    found: list[NodePlan] = []
    for scope in settings.scopes if settings else []:
        for node in scope.nodes:
            host = cluster.database_host(scope.name, node.name)
            current = patroni_ops.current_credentials(
                cluster, scope.name, node.name, PurePosixPath(node.bundle_dir))
            if current is not None:
                wanted = _files(node, current)
            else:  # a certificate would be issued: content unknown until then
                directory = PurePosixPath(node.bundle_dir)
                wanted = tuple(NodeFile(directory / name, b"", 0, "", False) for name in (
                    f"{node.name}.key", f"{node.name}.crt", "ca.crt", "etcd3.yml"))
            states = file_states(host, [f.path for f in wanted])
            rows = []
            for file in wanted:
                state = states.get(str(file.path))
                if state is None or state.digest is None:
                    action = "create"
                elif current is None or state != file.wanted:
                    action = "update"
                else:
                    action = "unchanged"
                rows.append((str(file.path), action))
            found.append(NodePlan(scope.name, node.name, node.ssh or str(node.address),
                                  tuple(rows)))
    return found


@dataclass(frozen=True)
class ScopeRemoved:
    changes: tuple[str, ...]  # what went from etcd
    taken_off: tuple[str, ...]  # the nodes whose bundle files were removed
    warnings: tuple[str, ...]


def remove_scope(cluster: Cluster, scope_name: str) -> ScopeRemoved:
    """`patroni remove`: the scope's etcd user and role, its password and bundles, then
    the bundle files on its nodes; its keys stay in etcd."""
    result = patroni_ops.remove(cluster, scope_name)
    taken = take_off(cluster, scope_name)
    settings = cluster.spec.patroni
    still = settings is not None and settings.scope(scope_name) is not None
    warning = (f"scope {scope_name} is still in the spec's patroni: section: the next "
               "`dcsctl up` creates it again; remove it from the spec",) if still else ()
    return ScopeRemoved(result.changes, taken, warning)
