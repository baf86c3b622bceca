"""Patroni on dcsctl: one least-privilege etcd identity per Patroni scope, and its config.

Each scope gets a role with readwrite on `<namespace><scope>/` only and a user with a
generated password kept 0600 on the control machine. Each database node gets a client
certificate without a CN — etcd's JSON gateway, which Patroni uses, rejects any client
certificate that has one once auth is on (lab-defects.md 17).
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

from dcsctl import pki, render
from dcsctl.errors import DcsctlError, NotFound
from dcsctl.etcd.client import EtcdClient, prefix_range_end
from dcsctl.files import atomic_write, private_dir
from dcsctl.identity import Identity
from dcsctl.ops.certs import RENEW_BEFORE
from dcsctl.ops.context import Cluster
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


def add(cluster: Cluster, name: str, namespace: str = DEFAULT_NAMESPACE) -> ScopeChange:
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
    return ScopeChange(scope, tuple(changes))


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


@dataclass(frozen=True)
class ScopeView:
    scope: Scope
    leader: str | None
    members: tuple[str, ...]
    registered: bool


def scope_views(cluster: Cluster, client: EtcdClient) -> list[ScopeView]:
    """Patroni clusters found in etcd: registered scopes plus any under /service/."""
    scopes = registered(cluster)
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
                  scopes.get(scope.name) == scope)
        for scope in sorted(leaders, key=lambda s: s.prefix)
    ]


@dataclass(frozen=True)
class Bundle:
    directory: Path
    section: str
    masked_section: str
    advice: tuple[str, ...]


def _node_identity(
    cluster: Cluster, scope: Scope, node: str, directory: Path, ca: Identity, *,
    renew: bool = False,
) -> Identity:
    cert, key = directory / f"{node}.crt", directory / f"{node}.key"
    current = cluster.dir.load_identity(cert, key)
    now = cluster.context.clock()
    if not renew and current is not None and pki.is_issued_by(current.cert_pem, ca.cert_pem) and (
        pki.inspect(current.cert_pem).not_after - now > RENEW_BEFORE
    ):
        return current
    policy = cluster.spec.tls
    # No CN: the gateway rejects CN-bearing client certs once auth is on.
    return pki.issue(
        ca, pki.Role.CLIENT, common_name=None, organization=scope.user,
        sans=pki.SubjectAltNames(), key_type=policy.key_type, days=policy.leaf_days, now=now,
    )


def config(
    cluster: Cluster, name: str, node: str, out: Path | None = None, *,
    ca: Identity | None = None, trust: bytes | None = None, renew: bool = False,
) -> Bundle:
    """Issue the node's client certificate and write ca.crt, cert, key and etcd3.yml.

    `ca` and `trust` are for a CA rotation: sign with the incoming CA, trust old + new.
    `renew` issues a new key and certificate even when the current ones are good.
    """
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
    targets = [kept] + ([private_dir(out)] if out is not None else [])
    final = targets[-1]
    section = render.patroni_etcd3_section(
        cluster.spec, ca_cert=final / "ca.crt", cert=final / f"{node}.crt",
        key=final / f"{node}.key", username=scope.user, password=password,
    )
    text = yaml.safe_dump(section, sort_keys=False)
    masked = text.replace(password, "'********'  # in etcd3.yml (0600)")
    for directory in targets:
        cluster.dir.save_identity(identity, directory / f"{node}.crt", directory / f"{node}.key")
        atomic_write(directory / "ca.crt", trust or ca.cert_pem, PUBLIC)
        atomic_write(directory / "etcd3.yml", text.encode(), PRIVATE)  # holds the password
    return Bundle(final, text, masked, tuple(render.patroni_timing_advice(cluster.spec)))
