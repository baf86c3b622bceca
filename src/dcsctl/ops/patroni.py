"""Patroni on dcsctl: one least-privilege etcd identity per Patroni scope, and its config.

Each scope gets a role with readwrite on `<namespace><scope>/` only and a user with a
generated password kept 0600 on the control machine. Each database node gets a client
certificate without a CN — etcd's JSON gateway, which Patroni uses, rejects any client
certificate that has one once auth is on (docs/guide-defects.md 17).
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePath

import yaml

from dcsctl import pki, render
from dcsctl.errors import DcsctlError, EnvironmentProblem, NotFound
from dcsctl.etcd.client import EtcdClient, prefix_range_end
from dcsctl.etcd.model import EndpointStatus
from dcsctl.etcd.versions import Advisory, Version, cross_scope, upgrade_advice
from dcsctl.files import atomic_write, private_dir
from dcsctl.identity import Identity
from dcsctl.ops import revocation
from dcsctl.ops.certs import due_for_renewal
from dcsctl.ops.cluster import Cluster
from dcsctl.state import PRIVATE, PUBLIC, locked

DEFAULT_NAMESPACE = "/service/"
_SCOPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_NAMESPACE = re.compile(r"^/([A-Za-z0-9._-]+/)*$")


@dataclass(frozen=True)
class Scope:
    name: str
    namespace: str

    @property
    def user(self) -> str:
        return f"patroni-{self.name}"

    @property
    def role(self) -> str:
        return f"patroni-{self.name}"

    @property
    def prefix(self) -> str:
        return f"{self.namespace}{self.name}/"


def _check_names(scope: str, namespace: str) -> None:
    if not _SCOPE.match(scope):
        raise DcsctlError(f"scope {scope!r} is not a valid Patroni scope name",
                          fix="use letters, digits, '.', '_' or '-' (e.g. demo, pg-main)")
    if not _NAMESPACE.match(namespace):
        raise DcsctlError(f"namespace {namespace!r} must start and end with '/'",
                          fix="use Patroni's default /service/ or e.g. /db/prod/")


def overlapping(scope: Scope, others: Iterable[Scope]) -> Scope | None:
    """A registered scope whose prefix contains, or lies inside, `scope`'s prefix.

    etcd grants readwrite on a key *prefix*: with /service/prod/ and /service/prod/b/,
    prod's user could write b's leader key and demote b's primary at will.
    """
    for other in others:
        if other.name != scope.name and (
            other.prefix.startswith(scope.prefix) or scope.prefix.startswith(other.prefix)
        ):
            return other
    return None


def _registry_path(cluster: Cluster) -> Path:
    return cluster.dir.root / "patroni.json"


def registered(cluster: Cluster) -> dict[str, Scope]:
    try:
        data = json.loads(_registry_path(cluster).read_text())
    except FileNotFoundError:
        return {}
    return {name: Scope(name, namespace) for name, namespace in data.items()}


def _save_registry(cluster: Cluster, scopes: dict[str, Scope]) -> None:
    data = {name: scope.namespace for name, scope in sorted(scopes.items())}
    atomic_write(_registry_path(cluster), (json.dumps(data, indent=2) + "\n").encode(), PUBLIC)


def _password_path(cluster: Cluster, scope: Scope) -> Path:
    return cluster.dir.root / "secrets" / f"{scope.user}.password"


def stored_password(cluster: Cluster, name: str) -> str | None:
    """The scope's user's password as dcsctl keeps it (0600), if it does."""
    scope = registered(cluster).get(name)
    path = _password_path(cluster, scope) if scope else None
    return path.read_text().strip() if path and path.exists() else None


def _scope(cluster: Cluster, name: str) -> Scope:
    scopes = registered(cluster)
    if name not in scopes:
        raise NotFound(f"no Patroni scope {name!r} in cluster {cluster.spec.name!r}",
                       fix=f"create it with `dcsctl patroni add {name}`")
    return scopes[name]


@dataclass(frozen=True)
class ScopeChange:
    scope: Scope
    changes: tuple[str, ...]
    warnings: tuple[str, ...] = ()


def _isolation_risks(client: EtcdClient) -> dict[Advisory, list[str]]:
    """Advisories of the running etcd versions that let one user reach outside its
    grants, each with the versions that have it."""
    running = {Version.parse(s.version) for s in client.statuses()
               if isinstance(s, EndpointStatus)}
    found: dict[Advisory, list[str]] = {}
    for version in sorted(running):
        for advisory in cross_scope(version):
            found.setdefault(advisory, []).append(str(version))
    return found


def _check_isolation(client: EtcdClient, scope: Scope, others: list[str],
                     accepted: frozenset[str]) -> list[str]:
    """Refuse a second scope on an etcd whose RBAC cannot keep scopes apart, unless the
    user accepted each advisory by name; the first scope only hears about it."""
    risks = _isolation_risks(client)
    unaccepted = [a for a in risks if not {a.ident, *a.aliases} & accepted]
    if others and unaccepted:
        lines = tuple(f"{a.describe()}; running: {', '.join(risks[a])}" for a in unaccepted)
        fixes = sorted({upgrade_advice(Version.parse(v)) for a in unaccepted for v in risks[a]})
        flags = " ".join(f"--accept-risk {a.ident}" for a in unaccepted)
        idents = ", ".join(a.ident for a in unaccepted)
        raise EnvironmentProblem(
            f"scope {scope.name!r} would share etcd with {', '.join(others)}, but this etcd "
            f"lets one scope's user reach another's keys ({idents})",
            fix=f"upgrade etcd to {' or '.join(fixes)} (`dcsctl upgrade --to VERSION`), or "
            f"accept the risk by name: dcsctl patroni add {scope.name} {flags}",
            details=lines,
        )
    return [f"etcd {', '.join(versions)}: {a.describe()}"
            + ("" if others else " (harmless while this is the only scope)")
            for a, versions in risks.items()]


def add(cluster: Cluster, name: str, namespace: str = DEFAULT_NAMESPACE, *,
        accept_risk: frozenset[str] = frozenset()) -> ScopeChange:
    """Create (or complete) the role, user and password of a scope. Idempotent."""
    _check_names(name, namespace)
    scope = Scope(name, namespace)
    existing = registered(cluster).get(name)
    if existing is not None and existing.namespace != namespace:
        raise DcsctlError(
            f"scope {name!r} already exists under namespace {existing.namespace}",
            fix=f"`dcsctl patroni remove {name}` first, or keep --namespace {existing.namespace}",
        )
    changes = []
    with locked(cluster.dir), cluster.admin_client() as client:
        clash = overlapping(scope, registered(cluster).values())
        if clash is not None:
            inner, outer = sorted((scope, clash), key=lambda s: len(s.prefix), reverse=True)
            raise DcsctlError(
                f"scope {name!r} would use prefix {scope.prefix}, which overlaps scope "
                f"{clash.name!r}'s {clash.prefix}: {outer.user} could write {inner.name}'s "
                "leader key",
                fix="give each Patroni cluster a prefix of its own, e.g. --namespace "
                f"{DEFAULT_NAMESPACE} (default) with distinct scope names, or /db/{name}/",
            )
        others = sorted(other for other in registered(cluster) if other != name)
        warnings = _check_isolation(client, scope, others, accept_risk)
        password_file = _password_path(cluster, scope)
        users = client.user_roles()
        if scope.user in users and not password_file.exists():
            raise DcsctlError(
                f"etcd user {scope.user} exists but its password is not in {password_file}",
                fix=f"`dcsctl patroni remove {name}`, then add it again",
            )
        if not password_file.exists():
            private_dir(password_file.parent)
            atomic_write(password_file, secrets.token_urlsafe(24).encode(), PRIVATE)
        if scope.role not in client.role_names():
            client.role_add(scope.role)
            changes.append(f"role {scope.role}")
        grant = ("readwrite", scope.prefix.encode(), prefix_range_end(scope.prefix))
        if grant not in client.role_grants(scope.role):
            client.role_grant(scope.role, scope.prefix, "readwrite")
            changes.append(f"readwrite on {scope.prefix}")
        if scope.user not in users:
            client.user_add(scope.user, password_file.read_text().strip())
            changes.append(f"user {scope.user}")
        if scope.role not in users.get(scope.user, set()):
            client.user_grant_role(scope.user, scope.role)
            changes.append(f"role granted to {scope.user}")
        _save_registry(cluster, {**registered(cluster), name: scope})
    return ScopeChange(scope, tuple(changes), tuple(warnings))


def remove(cluster: Cluster, name: str) -> ScopeChange:
    """Delete the scope's user, role, password and bundles; its keys stay in etcd."""
    scope = _scope(cluster, name)
    changes = []
    with locked(cluster.dir), cluster.admin_client() as client:
        if scope.user in client.user_roles():
            client.user_delete(scope.user)
            changes.append(f"user {scope.user}")
        if scope.role in client.role_names():
            client.role_delete(scope.role)
            changes.append(f"role {scope.role}")
        _password_path(cluster, scope).unlink(missing_ok=True)
        shutil.rmtree(cluster.dir.root / "patroni" / name, ignore_errors=True)
        _save_registry(cluster, {k: v for k, v in registered(cluster).items() if k != name})
    return ScopeChange(scope, tuple(changes))


def _namespace_granted(client: EtcdClient, scope_name: str) -> str | None:
    """The namespace a `patroni-<scope>` role is confined to, if it is shaped as dcsctl
    makes it (readwrite on `<namespace><scope>/` and nothing else)."""
    grants = client.role_grants(f"patroni-{scope_name}")
    if len(grants) != 1:
        return None
    permission, key, range_end = next(iter(grants))
    prefix = key.decode(errors="replace")
    namespace = prefix.removesuffix(f"{scope_name}/")
    if (permission != "readwrite" or namespace == prefix or not _NAMESPACE.match(namespace)
            or range_end != prefix_range_end(prefix)):
        return None
    return namespace


def reconcile(cluster: Cluster, client: EtcdClient) -> tuple[str, ...]:
    """After a restore, make dcsctl's Patroni records say what etcd now holds.

    A scope whose user the snapshot lacks is dropped from the registry (its password is
    kept: `patroni add` recreates the user with it, so its Patroni nodes need no new
    config). A registered user whose password in etcd is not the stored one gets the
    stored one back (the nodes' etcd3.yml has it). A Patroni user dcsctl has no record of
    is recorded if the stored password opens it, else reported.
    """
    scopes = registered(cluster)
    users = client.user_roles()
    kept: dict[str, Scope] = {}
    changes: list[str] = []
    for name, scope in sorted(scopes.items()):
        password_file = _password_path(cluster, scope)
        if scope.user not in users:
            kept_note = (f" (password kept in {password_file}: `dcsctl patroni add {name} "
                         f"--namespace {scope.namespace}` recreates the user with it)"
                         if password_file.exists() else "")
            changes.append(f"scope {name}: user {scope.user} not in the snapshot, record "
                           f"removed{kept_note}")
            continue
        kept[name] = scope
        if not password_file.exists():
            changes.append(f"scope {name}: dcsctl has no password for user {scope.user} "
                           f"({password_file} missing): `dcsctl patroni config` cannot work")
            continue
        password = password_file.read_text().strip()
        if not client.password_ok(scope.user, password):
            client.user_change_password(scope.user, password)
            changes.append(f"scope {name}: the snapshot's password of {scope.user} was not "
                           f"dcsctl's; set back to the one in {password_file}")
    known_users = {s.user for s in kept.values()}
    for user in sorted(u for u in users if u.startswith("patroni-") and u not in known_users):
        name = user.removeprefix("patroni-")
        namespace = _namespace_granted(client, name) if _SCOPE.match(name) else None
        scope = Scope(name, namespace or DEFAULT_NAMESPACE)
        password_file = _password_path(cluster, scope)
        if (namespace is not None and password_file.exists()
                and client.password_ok(user, password_file.read_text().strip())):
            kept[name] = scope
            changes.append(f"scope {name}: user {user} is in the snapshot and dcsctl's stored "
                           f"password opens it; record restored (prefix {scope.prefix})")
        else:
            changes.append(f"scope {name}: user {user} is in the snapshot but dcsctl has no "
                           "password for it: not recorded (Patroni nodes that know its "
                           "password keep working)")
    if kept != scopes:
        _save_registry(cluster, kept)
    return tuple(changes)


@dataclass(frozen=True)
class ScopeView:
    scope: Scope
    leader: str | None
    members: tuple[str, ...]
    registered: bool
    user_in_etcd: bool = False

    @property
    def user(self) -> str | None:
        """dcsctl's etcd user for this scope, only if etcd really has it."""
        return self.scope.user if self.registered and self.user_in_etcd else None

    @property
    def user_note(self) -> str:
        if not self.registered:
            return "(not dcsctl's)"
        return self.scope.user if self.user_in_etcd else f"(missing: {self.scope.user})"


def list_scopes(cluster: Cluster) -> list[ScopeView]:
    """`patroni list`: dcsctl's scopes and any others found in etcd."""
    with cluster.admin_client() as client:
        return scope_views(cluster, client)


def scope_views(cluster: Cluster, client: EtcdClient) -> list[ScopeView]:
    """Patroni clusters found in etcd: registered scopes plus any under /service/."""
    scopes = registered(cluster)
    users = client.user_roles() if scopes else {}
    namespaces = {s.namespace for s in scopes.values()} | {DEFAULT_NAMESPACE}
    leaders: dict[Scope, str | None] = {s: None for s in scopes.values()}
    members: dict[Scope, list[str]] = {s: [] for s in scopes.values()}
    for namespace in sorted(namespaces):
        for kv in client.get_prefix(namespace):
            scope_name, _, key = kv.key.removeprefix(namespace).partition("/")
            scope = Scope(scope_name, namespace)
            leaders.setdefault(scope, None)
            members.setdefault(scope, [])
            if key == "leader":
                leaders[scope] = kv.value.decode(errors="replace")
            elif key.startswith("members/"):
                members[scope].append(key.removeprefix("members/"))
    return [
        ScopeView(scope, leaders[scope], tuple(sorted(members[scope])),
                  scopes.get(scope.name) == scope, scope.user in users)
        for scope in sorted(leaders, key=lambda s: s.prefix)
    ]


@dataclass(frozen=True)
class Bundle:
    directory: Path
    section: str
    masked_section: str
    advice: tuple[str, ...]


def _still_good(cluster: Cluster, current: Identity, ca: Identity) -> bool:
    """Issued by `ca`, not revoked, and not yet due: as for members, 30 days before its
    end or at two thirds of a shorter lifetime (a short `leaf_days` is not reissued, and
    redeployed, by every `up`)."""
    revoked = {entry.serial for entry in revocation.revoked(cluster.dir)}
    facts = pki.inspect(current.cert_pem)
    return (pki.is_issued_by(current.cert_pem, ca.cert_pem)
            and pki.serial_number(current.cert_pem) not in revoked
            and not due_for_renewal(facts, cluster.context.clock()))


def _node_identity(
    cluster: Cluster, scope: Scope, node: str, directory: Path, ca: Identity, *,
    renew: bool = False,
) -> Identity:
    cert, key = directory / f"{node}.crt", directory / f"{node}.key"
    current = cluster.dir.load_identity(cert, key)
    now = cluster.context.clock()
    if not renew and current is not None and _still_good(cluster, current, ca):
        return current
    policy = cluster.spec.tls
    # No CN: the gateway rejects CN-bearing client certs once auth is on.
    return pki.issue(
        ca, pki.Role.CLIENT, common_name=None, organization=scope.user,
        sans=pki.SubjectAltNames(), key_type=policy.key_type, days=policy.leaf_days, now=now,
    )


@dataclass(frozen=True)
class NodeCredentials:
    """What one database node needs, for files in `directory` on its host."""

    identity: Identity
    trust: bytes  # ca.crt: the CA (old + new during a CA rotation)
    etcd3: str  # etcd3.yml: the `etcd3:` section, password included
    masked: str  # the same with the password masked


def node_credentials(
    cluster: Cluster, name: str, node: str, directory: PurePath, *,
    ca: Identity | None = None, trust: bytes | None = None, renew: bool = False,
) -> NodeCredentials:
    """Issue (or keep) NODE's client certificate, kept in the state dir, and render its
    etcd3.yml for files in `directory` (a path on the node's host)."""
    scope = _scope(cluster, name)
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$", node):
        raise DcsctlError(f"node name {node!r} is not a valid file name",
                          fix="use the database host's short name, e.g. db-00")
    password = _password_path(cluster, scope).read_text().strip()
    kept = private_dir(cluster.dir.root / "patroni" / name / node)
    ca = ca or cluster.dir.ca()
    if ca is None:
        raise NotFound(f"cluster {cluster.spec.name!r} has no CA", fix="run `dcsctl up`")
    identity = _node_identity(cluster, scope, node, kept, ca, renew=renew)
    cluster.dir.save_identity(identity, kept / f"{node}.crt", kept / f"{node}.key")
    section = render.patroni_etcd3_section(
        cluster.spec, ca_cert=directory / "ca.crt", cert=directory / f"{node}.crt",
        key=directory / f"{node}.key", username=scope.user, password=password,
    )
    text = yaml.safe_dump(section, sort_keys=False)
    masked = text.replace(password, "'********'  # in etcd3.yml (0600)")
    return NodeCredentials(identity, trust or ca.cert_pem, text, masked)


def node_etcd3(cluster: Cluster, name: str, node: str, directory: PurePath) -> str | None:
    """The etcd3.yml dcsctl renders for NODE (None: the scope has no stored password)."""
    scope = registered(cluster).get(name)
    password = stored_password(cluster, name)
    if scope is None or password is None:
        return None
    section = render.patroni_etcd3_section(
        cluster.spec, ca_cert=directory / "ca.crt", cert=directory / f"{node}.crt",
        key=directory / f"{node}.key", username=scope.user, password=password,
    )
    return yaml.safe_dump(section, sort_keys=False)


def current_credentials(cluster: Cluster, name: str, node: str, directory: PurePath
                        ) -> NodeCredentials | None:
    """What node_credentials would give without issuing anything (for `up --plan`):
    None when a new certificate would be issued."""
    scope = registered(cluster).get(name)
    ca = cluster.dir.ca()
    password_file = _password_path(cluster, scope) if scope else None
    if scope is None or ca is None or password_file is None or not password_file.exists():
        return None
    kept = cluster.dir.root / "patroni" / name / node
    current = cluster.dir.load_identity(kept / f"{node}.crt", kept / f"{node}.key")
    if current is None or not _still_good(cluster, current, ca):
        return None
    password = password_file.read_text().strip()
    section = render.patroni_etcd3_section(
        cluster.spec, ca_cert=directory / "ca.crt", cert=directory / f"{node}.crt",
        key=directory / f"{node}.key", username=scope.user, password=password,
    )
    text = yaml.safe_dump(section, sort_keys=False)
    return NodeCredentials(current, ca.cert_pem, text,
                           text.replace(password, "'********'"))


def config(
    cluster: Cluster, name: str, node: str, out: Path | None = None, *,
    ca: Identity | None = None, trust: bytes | None = None, renew: bool = False,
) -> Bundle:
    """Issue the node's client certificate and write ca.crt, cert, key and etcd3.yml.

    `ca` and `trust` are for a CA rotation: sign with the incoming CA, trust old + new.
    `renew` issues a new key and certificate even when the current ones are good.
    """
    kept = cluster.dir.root / "patroni" / name / node
    final = private_dir(out) if out is not None else kept
    made = node_credentials(cluster, name, node, final, ca=ca, trust=trust, renew=renew)
    for directory in dict.fromkeys([kept, final]):
        cluster.dir.save_identity(made.identity, directory / f"{node}.crt",
                                  directory / f"{node}.key")
        atomic_write(directory / "ca.crt", made.trust, PUBLIC)
        atomic_write(directory / "etcd3.yml", made.etcd3.encode(), PRIVATE)  # the password
    return Bundle(final, made.etcd3, made.masked,
                  tuple(render.patroni_timing_advice(cluster.spec)))
