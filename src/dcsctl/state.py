"""The control machine's state dir: one folder per cluster under DCSCTL_HOME.

    <home>/<cluster>/cluster.json    identity: token, bootstrapped?, cluster ID
                     spec.yaml       the spec last applied
                     pki/            ca.key (0600, never leaves), ca.crt, admin (CN=root), jwt,
                                     ca.crl + revoked.json (revocations)
                     secrets/        root.password (0600, break-glass only), manifest.key
                                     (0600: signs backup manifests), backup.key (0600:
                                     seals what goes to a backup store)
                     members/<name>/ etcd.env, tls/, data/, etcd.log, etcd.pid (lab runtime)
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import secrets
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from dcsctl import spec
from dcsctl.errors import DcsctlError, EnvironmentProblem, NotFound
from dcsctl.files import atomic_write, private_dir
from dcsctl.identity import Identity
from dcsctl.render import MemberLayout

PRIVATE = 0o600
PUBLIC = 0o644


@dataclass(frozen=True)
class ClusterRecord:
    """What the control machine remembers about a cluster between runs."""

    name: str
    token: str
    members: tuple[str, ...]
    bootstrapped: bool = False
    cluster_id: str | None = None
    # Each restore founds a new cluster ID; backups taken under an earlier one are still
    # this cluster's.
    former_cluster_ids: tuple[str, ...] = ()

    def to_json(self) -> bytes:
        data = asdict(self)
        data["members"] = list(self.members)
        data["former_cluster_ids"] = list(self.former_cluster_ids)
        return (json.dumps(data, indent=2) + "\n").encode()

    def with_cluster_id(self, cluster_id: str | None) -> ClusterRecord:
        """The record with a new (or no) cluster ID; the one it replaces is remembered."""
        former = self.former_cluster_ids
        if self.cluster_id and self.cluster_id != cluster_id and self.cluster_id not in former:
            former = (*former, self.cluster_id)
        return replace(self, cluster_id=cluster_id, former_cluster_ids=former)

    def cluster_ids(self) -> tuple[str, ...]:
        return (*self.former_cluster_ids, *([self.cluster_id] if self.cluster_id else []))

    @classmethod
    def from_json(cls, content: bytes) -> ClusterRecord:
        data = json.loads(content)
        return cls(
            name=str(data["name"]),
            token=str(data["token"]),
            members=tuple(data["members"]),
            bootstrapped=bool(data.get("bootstrapped", False)),
            cluster_id=data.get("cluster_id"),
            former_cluster_ids=tuple(data.get("former_cluster_ids", ())),
        )


class ClusterDir:
    """Paths and stored values of one cluster's state folder."""

    def __init__(self, home: Path, name: str) -> None:
        self.home = home
        self.name = name
        self.root = home / name

    # -- paths --
    @property
    def record_path(self) -> Path:
        return self.root / "cluster.json"

    @property
    def spec_path(self) -> Path:
        return self.root / "spec.yaml"

    @property
    def pki_dir(self) -> Path:
        return self.root / "pki"

    @property
    def ca_cert(self) -> Path:
        return self.pki_dir / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.pki_dir / "ca.key"

    @property
    def admin_cert(self) -> Path:
        return self.pki_dir / "admin.crt"

    @property
    def admin_key(self) -> Path:
        return self.pki_dir / "admin.key"

    @property
    def crl(self) -> Path:
        """The CA's revocation list (DER) that every member's etcd checks."""
        return self.pki_dir / "ca.crl"

    @property
    def revoked_record(self) -> Path:
        """What the CRL lists, with holder names (the CRL itself holds serials only)."""
        return self.pki_dir / "revoked.json"

    @property
    def superseded_dir(self) -> Path:
        """Replaced certificates still in use until redeployed (Patroni bundles)."""
        return self.pki_dir / "superseded"

    @property
    def next_ca_cert(self) -> Path:
        """The CA a `certs rotate --ca` under way brings in; absent otherwise."""
        return self.pki_dir / "ca-next.crt"

    @property
    def next_ca_key(self) -> Path:
        return self.pki_dir / "ca-next.key"

    @property
    def trust_bundle(self) -> Path:
        """CA certificates trusted during a CA rotation (old + new); absent otherwise."""
        return self.pki_dir / "trust.crt"

    def trusted_cas(self) -> bytes | None:
        """What clients verify members against: the rotation bundle, else the CA."""
        if self.trust_bundle.exists():
            return self.trust_bundle.read_bytes()
        ca = self.ca()
        return ca.cert_pem if ca else None

    @property
    def root_password_path(self) -> Path:
        return self.root / "secrets" / "root.password"

    def member_dir(self, member: str) -> Path:
        return self.root / "members" / member

    def layout(self, member: str) -> MemberLayout:
        return MemberLayout.under(self.member_dir(member))

    def pidfile(self, member: str) -> Path:
        return self.member_dir(member) / "etcd.pid"

    def logfile(self, member: str) -> Path:
        return self.member_dir(member) / "etcd.log"

    # -- existence and identity --
    def exists(self) -> bool:
        return self.record_path.exists()

    def record(self) -> ClusterRecord:
        try:
            return ClusterRecord.from_json(self.record_path.read_bytes())
        except FileNotFoundError as exc:
            raise NotFound(
                f"no cluster named {self.name!r} in {self.home}",
                fix="create it with `dcsctl up` (or pass the right -f/--spec or DCSCTL_HOME)",
            ) from exc
        except (ValueError, KeyError) as exc:
            raise EnvironmentProblem(
                f"{self.record_path} is unreadable ({exc})",
                fix=f"restore it from a backup, or remove {self.root} with `dcsctl destroy`",
            ) from exc

    def create(self) -> ClusterRecord:
        """Claim the folder for a new cluster; refuse a folder that holds something else."""
        foreign = [p for p in self.root.iterdir() if p.name != "lock"] if self.root.exists() else []
        if foreign and not self.exists():
            raise EnvironmentProblem(
                f"{self.root} exists and is not a dcsctl cluster folder",
                fix="choose another cluster name or DCSCTL_HOME, or move that folder away",
            )
        private_dir(self.root)
        token = f"{self.name}-{secrets.token_hex(4)}"
        return ClusterRecord(name=self.name, token=token, members=())

    def save_record(self, record: ClusterRecord) -> None:
        atomic_write(self.record_path, record.to_json(), PUBLIC)

    def mark_bootstrapped(self, record: ClusterRecord, cluster_id: str) -> ClusterRecord:
        """`record` (as the command read it, once) with its cluster ID, saved."""
        bootstrapped = replace(record.with_cluster_id(cluster_id), bootstrapped=True)
        self.save_record(bootstrapped)
        return bootstrapped

    # -- spec --
    def save_spec(self, cluster: spec.ClusterSpec) -> bool:
        return atomic_write(self.spec_path, spec.render_annotated(cluster).encode(), PUBLIC)

    def load_spec(self) -> spec.ClusterSpec:
        try:
            text = self.spec_path.read_text()
        except FileNotFoundError as exc:
            raise NotFound(
                f"cluster {self.name!r} has no saved spec in {self.root}",
                fix="run `dcsctl up -f <spec>` to create or repair it",
            ) from exc
        return spec.parse(text, source=str(self.spec_path))

    # -- PKI --
    def load_identity(self, cert: Path, key: Path) -> Identity | None:
        try:
            return Identity(cert.read_bytes(), key.read_bytes())
        except FileNotFoundError:
            return None

    def save_identity(self, identity: Identity, cert: Path, key: Path) -> None:
        private_dir(cert.parent)
        # Key first: a cert without its key is useless, a key without its cert is reissued.
        atomic_write(key, identity.key_pem, PRIVATE)
        atomic_write(cert, identity.cert_pem, PUBLIC)

    def ca(self) -> Identity | None:
        return self.load_identity(self.ca_cert, self.ca_key)

    def admin(self) -> Identity | None:
        return self.load_identity(self.admin_cert, self.admin_key)

    def required(self, identity: Identity | None, what: str) -> Identity:
        """An identity a command cannot do without (the CA, the admin's)."""
        if identity is None:
            raise NotFound(f"cluster {self.name!r} has no {what} in {self.pki_dir}",
                           fix="run `dcsctl up` to create the PKI")
        return identity

    def jwt(self) -> tuple[Path, Path]:
        return self.pki_dir / "jwt.key", self.pki_dir / "jwt.pub"

    # -- credentials --
    def root_password(self) -> str:
        """The break-glass root password, created once (0600)."""
        path = self.root_password_path
        if not path.exists():
            private_dir(path.parent)
            atomic_write(path, secrets.token_urlsafe(24).encode(), PRIVATE)
        return path.read_text().strip()

    @property
    def manifest_key_path(self) -> Path:
        return self.root / "secrets" / "manifest.key"

    def manifest_key(self, *, create: bool) -> bytes | None:
        """The key that signs this cluster's backup manifests (0600).

        Created on first use through a hard link, which fails if the file exists: two
        backups starting at once agree on one key, and no reader sees a half-written one.
        Without `create`, a cluster that never signed anything has no key (None).
        """
        return self._secret_key(self.manifest_key_path, create=create)

    @property
    def backup_key_path(self) -> Path:
        return self.root / "secrets" / "backup.key"

    def backup_key(self, *, create: bool) -> bytes | None:
        """The key that seals what goes to a backup store (0600): snapshots and manifests
        are encrypted with it before they leave this machine. Part of the escrow."""
        return self._secret_key(self.backup_key_path, create=create)

    def _secret_key(self, path: Path, *, create: bool) -> bytes | None:
        if create and not path.exists():
            private_dir(path.parent)
            fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
            try:
                os.fchmod(fd, PRIVATE)
                with os.fdopen(fd, "wb") as handle:
                    handle.write(secrets.token_bytes(32))
                    handle.flush()
                    os.fsync(handle.fileno())
                with contextlib.suppress(FileExistsError):
                    os.link(tmp_name, path)
            finally:
                os.unlink(tmp_name)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None

    # -- removal --
    def remove(self) -> None:
        if self.root.exists():
            shutil.rmtree(self.root)


_held: set[tuple[Path, int]] = set()  # (lock file, thread) pairs this process holds


@contextlib.contextmanager
def locked(cluster_dir: ClusterDir) -> Iterator[None]:
    """One dcsctl at a time per cluster: a second run fails at once instead of racing.

    Re-entrant within one thread, so a workflow that holds the lock can call another
    (an upgrade takes its snapshot through `backup`)."""
    private_dir(cluster_dir.root)
    path = cluster_dir.root / "lock"
    held_by_us = (path, threading.get_ident())
    if held_by_us in _held:
        yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, PRIVATE)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise DcsctlError(
                f"another dcsctl (pid {holder}) is working on cluster {cluster_dir.name!r}",
                fix="wait for it to finish, then run again",
            ) from exc
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        _held.add(held_by_us)
        try:
            yield
        finally:
            _held.discard(held_by_us)
    finally:
        os.close(fd)


def list_clusters(home: Path) -> list[str]:
    if not home.is_dir():
        return []
    return sorted(p.name for p in home.iterdir() if (p / "cluster.json").exists())
