"""The cluster spec (`cluster.yaml`): parsed and validated once, then only read.

Validation collects every problem at once, each with its YAML path and a fix, so a user
mends a broken spec in one pass instead of one error per run.
"""

from __future__ import annotations

import enum
import ipaddress
import itertools
import posixpath
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from dcsctl.errors import SpecError
from dcsctl.etcd.versions import risk_names

DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
DURATION = re.compile(r"^[0-9]+(ms|s|m|h)$")
LAB_NETWORK = ipaddress.ip_network("127.0.0.0/8")
MIN_PORT, MAX_PORT = 1024, 65535
RECOMMENDED_MAX_MEMBERS = 7


class Target(enum.StrEnum):
    LAB = "lab"  # members are local processes on loopback addresses
    SSH = "ssh"  # members are hosts reached over SSH (the guide's three machines)


class InstallMethod(enum.StrEnum):
    APT = "apt"  # Debian's etcd-server/etcd-client, as in the guide
    RELEASE = "release"  # an official release tarball, checked by sha256, pushed over SSH
    NONE = "none"  # etcd is already installed on the hosts


class KeyType(enum.StrEnum):
    ECDSA_P256 = "ecdsa-p256"
    RSA_2048 = "rsa-2048"
    RSA_4096 = "rsa-4096"


class CompactionMode(enum.StrEnum):
    PERIODIC = "periodic"
    REVISION = "revision"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Port = Annotated[int, Field(ge=MIN_PORT, le=MAX_PORT)]


class Ports(_Strict):
    client: Port = 2379
    peer: Port = 2380


# The host starts with a letter, digit or '_': a destination starting with '-' would reach
# OpenSSH as an option ("-Fx" is `-F x`, "-oProxyCommand=..." runs a command).
SSH_DESTINATION = re.compile(r"^(?:(?P<user>[a-z_][a-z0-9_.-]*)@)?"
                             r"(?P<host>[A-Za-z0-9_][A-Za-z0-9_.-]*)"
                             r"(?::(?P<port>[0-9]{1,5}))?$")
# The service user (etcd) and a database node's owner (postgres): a POSIX user name.
POSIX_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")

# A member certificate carries CN=<member name>, and etcd maps a client certificate's CN
# to the etcd user of that name: a member named `root` would hold etcd's root identity,
# one named `patroni-x` scope x's.
RESERVED_MEMBER_NAMES = frozenset({"root"})
RESERVED_MEMBER_PREFIXES = ("patroni-",)

# Places a path setting must never name: dcsctl (as root on the hosts) creates, chowns
# and, on destroy, replace or restore, `rm -rf`s what the settings name.
SYSTEM_DIRECTORIES = frozenset({
    "/", "/bin", "/boot", "/dev", "/etc", "/etc/default", "/etc/ssh", "/etc/ssl",
    "/etc/systemd", "/etc/systemd/system", "/home", "/lib", "/lib32", "/lib64", "/libx32",
    "/lost+found", "/media", "/mnt", "/opt", "/proc", "/root", "/run", "/sbin", "/srv",
    "/sys", "/usr", "/usr/bin", "/usr/lib", "/usr/lib64", "/usr/libexec",
    "/usr/local", "/usr/local/bin", "/usr/local/lib", "/usr/local/sbin", "/usr/sbin",
    "/usr/share", "/var", "/var/backups", "/var/cache", "/var/lib", "/var/local",
    "/var/lock", "/var/log", "/var/mail", "/var/opt", "/var/run", "/var/spool",
}) | {"/tmp", "/var/tmp"}  # noqa: S108 (places refused, not temp files)
# etcd's binaries are installed into bin_dir (never chowned or removed): the usual
# binary directories are right for it.
BINARY_DIRECTORIES = frozenset({"/usr/bin", "/usr/local/bin", "/bin", "/usr/sbin",
                                "/usr/local/sbin", "/sbin"})
# Files dcsctl manages at fixed places on every host: render.HostPaths puts the last two
# there (tests/unit/test_spec.py checks that the two agree), the init systems of the SSH
# target (targets/ssh/init_systems.py) their own.
SYSTEMD_UNIT = "/etc/systemd/system/etcd.service"  # service.manager systemd
PIDFILE = "/run/dcsctl-etcd.pid"  # service.manager process
HOSTS_FILE = "/etc/hosts"
TARBALL_CACHE = "/var/cache/dcsctl"


def _ssh_destination(value: str | None) -> str | None:
    """A member's or a database node's `ssh:`."""
    if value is not None and not SSH_DESTINATION.match(value):
        raise ValueError("must be [user@]host[:port] or an alias from ~/.ssh/config")
    return value


def _address_written_out(value: object, *, example: str) -> object:
    """pydantic would read the integer 0 as 0.0.0.0: an address must be written out."""
    if not isinstance(value, str):
        raise ValueError(f"must be an IPv4 address written as text, e.g. {example}")
    return value


class Member(_Strict):
    name: str
    address: ipaddress.IPv4Address
    client_port: Port | None = None
    peer_port: Port | None = None
    # target ssh: how to reach the host ([user@]host[:port] or a ~/.ssh/config alias;
    # default: the address) and a prefix for every remote path ("/" on real hosts).
    ssh: str | None = None
    remote_root: str = "/"

    @field_validator("ssh")
    @classmethod
    def _ssh_destination(cls, value: str | None) -> str | None:
        return _ssh_destination(value)

    @field_validator("remote_root")
    @classmethod
    def _remote_root(cls, value: str) -> str:
        return _absolute_path(value)  # "/" is right here: a prefix, not a managed place

    @field_validator("address", mode="before")
    @classmethod
    def _address_text(cls, value: object) -> object:
        return _address_written_out(value, example="127.0.0.10")

    @field_validator("address")
    @classmethod
    def _usable_address(cls, value: ipaddress.IPv4Address) -> ipaddress.IPv4Address:
        if value.is_unspecified or value.is_multicast or value.is_reserved:
            raise ValueError(f"{value} cannot be a member's address: give its own unicast IP")
        return value

    @field_validator("name")
    @classmethod
    def _dns_safe(cls, value: str) -> str:
        if not DNS_LABEL.match(value):
            raise ValueError(
                "must be a DNS label: lowercase letters, digits and '-', 1-63 characters, "
                "not starting or ending with '-'"
            )
        if value in RESERVED_MEMBER_NAMES or value.startswith(RESERVED_MEMBER_PREFIXES):
            raise ValueError(
                f"{value!r} is reserved: a member's certificate carries CN=<name>, which etcd "
                "takes as the user of that name (root, or a Patroni scope's user); "
                "choose another name, e.g. dcs-00"
            )
        return value


def _absolute_path(value: str) -> str:
    if not value.startswith("/") or "\n" in value or "'" in value:
        raise ValueError("must be an absolute path such as /etc/dcs (no quotes or newlines)")
    # posixpath.normpath keeps a leading "//" (POSIX leaves its meaning open): test it apart.
    if "//" in value or posixpath.normpath(value) != value:
        raise ValueError(
            f"must be a normalized absolute path: no '..', '.', '//' or trailing '/' "
            f"(write {posixpath.normpath('/' + value.lstrip('/'))!r} if that is the place)"
        )
    return value


def _managed_path(value: str, *, binaries: bool = False) -> str:
    """A place dcsctl creates, chowns and may remove: never a system directory."""
    _absolute_path(value)
    if value in SYSTEM_DIRECTORIES and not (binaries and value in BINARY_DIRECTORIES):
        raise ValueError(
            f"{value} is a system directory: dcsctl, as root, would chown it and may remove "
            "it; give etcd a place of its own, e.g. /var/lib/etcd or /etc/dcs/cert"
        )
    return value


class SshSettings(_Strict):
    """How every member host is reached; a member's `ssh:` destination may name user/port."""

    user: str | None = None  # default: ~/.ssh/config, else the local user
    port: Annotated[int, Field(ge=1, le=MAX_PORT)] | None = None
    identity_file: str | None = None
    known_hosts_file: str | None = None
    config_file: str | None = None
    # Never accept an unknown host key silently: the hosts receive private keys.
    strict_host_key_checking: bool = True
    connect_timeout_s: Annotated[int, Field(ge=1, le=300)] = 10
    # Privileged commands run through `sudo -n` (no password prompt); false when the
    # login user is root.
    sudo: bool = True


class InstallSettings(_Strict):
    method: InstallMethod = InstallMethod.APT
    # release: e.g. 3.6.17; with no tarball, dcsctl's release data gives the official URL
    # and the published sha256 for each host's architecture.
    version: str | None = None
    tarball: str | None = None  # release: a local path or https:// URL of etcd-v*-linux-*.tar.gz
    sha256: str | None = None  # release: the tarball's published checksum
    # release: a mirror laid out like etcd's release downloads (MIRROR/vX.Y.Z/etcd-vX.Y.Z-
    # linux-ARCH.tar.gz), for sites without internet; the pinned sha256 still decides.
    mirror: str | None = None
    ca_file: str | None = None  # the CA that signed the mirror's HTTPS certificate

    @field_validator("version")
    @classmethod
    def _version(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"\d+\.\d+\.\d+", value):
            raise ValueError("must be a release number such as 3.6.17")
        return value

    @field_validator("mirror")
    @classmethod
    def _mirror(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^(https?://|/)", value):
            raise ValueError("must be an http(s):// URL or an absolute folder")
        return value.rstrip("/") if value else value

    @field_validator("sha256")
    @classmethod
    def _sha256(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[0-9a-f]{64}", value):
            raise ValueError("must be 64 lowercase hex digits (the release's SHA256SUMS entry)")
        return value


# The name of an init system. Which ones exist is the SSH target's to say
# (targets/ssh/init_systems.py: systemd, process), not this pure module's.
INIT_SYSTEM_NAME = re.compile(r"^[a-z][a-z0-9-]{0,31}$")


class ServiceSettings(_Strict):
    # What runs etcd on an SSH host: systemd, or process (a detached process with a
    # pidfile: hosts without systemd).
    manager: str = "systemd"
    user: str = "etcd"  # owns the data dir and the member key; etcd runs as this user

    @field_validator("manager")
    @classmethod
    def _manager(cls, value: str) -> str:
        if not INIT_SYSTEM_NAME.match(value):
            raise ValueError("must name an init system, such as systemd or process")
        return value

    @field_validator("user")
    @classmethod
    def _user(cls, value: str) -> str:
        if not POSIX_USER.match(value):
            raise ValueError("must be a POSIX user name such as etcd")
        return value


class RemotePaths(_Strict):
    """Where things live on a member host; the defaults are the guide's."""

    config_file: str = "/etc/dcs/etcd"
    env_link: str | None = "/etc/default/etcd"  # Debian's unit reads this; linked to config
    cert_dir: str = "/etc/dcs/cert"
    data_dir: str = "/var/lib/etcd"
    bin_dir: str | None = None  # default: /usr/bin (apt, none) or /usr/local/bin (release)
    log_file: str = "/var/log/dcsctl-etcd.log"  # process manager only (systemd: journal)

    @field_validator("config_file", "cert_dir", "data_dir", "log_file")
    @classmethod
    def _absolute(cls, value: str) -> str:
        return _managed_path(value)

    @field_validator("env_link")
    @classmethod
    def _optional_absolute(cls, value: str | None) -> str | None:
        return None if value is None else _managed_path(value)

    @field_validator("bin_dir")
    @classmethod
    def _binary_dir(cls, value: str | None) -> str | None:
        return None if value is None else _managed_path(value, binaries=True)


class TlsPolicy(_Strict):
    key_type: KeyType = KeyType.ECDSA_P256
    ca_days: Annotated[int, Field(ge=1, le=36500)] = 3650
    # One lifetime for every leaf (members, admin, clients): docs/guide-defects.md 8.
    leaf_days: Annotated[int, Field(ge=1, le=3650)] = 365


class EtcdSettings(_Strict):
    bin_dir: str | None = None
    heartbeat_interval_ms: Annotated[int, Field(ge=10, le=5000)] = 100
    election_timeout_ms: Annotated[int, Field(ge=50, le=50000)] = 1000
    auto_compaction_mode: CompactionMode = CompactionMode.PERIODIC
    auto_compaction_retention: str = "1h"
    quota_backend_bytes: Annotated[int, Field(ge=16 * 2**20, le=8 * 2**30)] = 2 * 2**30
    # Patroni logs `Invalid auth token` at ERROR each time its JWT expires (then logs in
    # again): 600 s meant 3 ERROR lines per node per 30 minutes. Any user or role change
    # invalidates every token anyway (JWTs carry the auth revision), so a day costs little
    # (tests/patroni/test_token_noise.py).
    auth_token_ttl_s: Annotated[int, Field(ge=30, le=86400)] = 86400
    log_level: str = "warn"
    # Advisories (CVE or GHSA names) the user accepts by name, so that a version affected
    # by them may be deployed; see `dcsctl status` and docs/etcd-versions.md.
    accept_risks: list[str] = Field(default_factory=list)

    @field_validator("accept_risks")
    @classmethod
    def _known_risks(cls, value: list[str]) -> list[str]:
        known = risk_names()
        if unknown := [name for name in value if name not in known]:
            raise ValueError(f"unknown advisory {', '.join(unknown)}; dcsctl knows "
                             + ", ".join(sorted(known)))
        return value

    @field_validator("auto_compaction_retention")
    @classmethod
    def _retention(cls, value: str) -> str:
        if not (value.isdigit() or DURATION.match(value)):
            raise ValueError("must be a duration like '1h' or '30m', or a revision count")
        return value

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        if value not in {"debug", "info", "warn", "error", "panic", "fatal"}:
            raise ValueError("must be one of debug, info, warn, error, panic, fatal")
        return value


S3_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class S3Store(_Strict):
    """An S3-compatible object store for backups and escrows (AWS, Ceph RGW, versitygw...).

    Credentials are not in the spec (which is saved, printed and diffed): they are read
    from `credentials_file`, in the AWS shared-credentials format, which must be 0600."""

    endpoint: str
    bucket: str
    prefix: str = ""
    region: str = "us-east-1"
    path_style: bool = True  # most on-premises stores have no wildcard DNS for buckets
    ca_file: str | None = None  # verify the endpoint against this CA (default: the system's)
    credentials_file: str = "~/.config/dcsctl/s3"
    profile: str = "default"  # the section of credentials_file to use
    timeout_s: Annotated[int, Field(ge=1, le=3600)] = 60  # per request (connect, read)

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s/@]+(:[0-9]+)?/?$", value):
            raise ValueError("must be a URL like https://s3.internal:7070 (no path, no user)")
        return value.rstrip("/")

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, value: str) -> str:
        if not S3_BUCKET.match(value) or ".." in value:
            raise ValueError("must be an S3 bucket name: 3-63 lowercase letters, digits, '.', '-'")
        return value

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if value.startswith("/") or ".." in value.split("/") or any(c in value for c in "\n\\"):
            raise ValueError(
                "must be a relative key prefix such as prod/ (no leading '/', no '..')")
        return value if not value or value.endswith("/") else value + "/"


class BackupStore(_Strict):
    s3: S3Store


class BackupSettings(_Strict):
    # Where `dcsctl backup` sends snapshots (sealed) instead of the state dir's backups/.
    store: BackupStore | None = None


PATRONI_SCOPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
PATRONI_NAMESPACE = re.compile(r"^/([A-Za-z0-9._-]+/)*$")
PATRONI_NODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")  # also a file name
REST_API = re.compile(r"^(?P<scheme>https?)://(?P<host>[A-Za-z0-9_.-]+|\[[0-9a-fA-F:]+\])"
                      r"(?::(?P<port>[0-9]{1,5}))?/?$")
PATRONI_REST_PORT = 8008


class ReloadMethod(enum.StrEnum):
    REST = "rest"  # POST <rest_api>/reload: what `patronictl reload` sends
    SYSTEMD = "systemd"  # `systemctl reload <systemd_unit>`: Debian's unit sends SIGHUP


class PatroniNode(_Strict):
    """A database host running Patroni for one scope: where its etcd bundle goes."""

    name: str
    address: ipaddress.IPv4Address
    ssh: str | None = None  # [user@]host[:port] or an ssh_config alias; default: address
    bundle_dir: str = "/etc/patroni/etcd"
    owner: str = "postgres"  # Patroni's user: owns the key and etcd3.yml (0600)
    group: str | None = None  # default: the owner's name
    rest_api: str | None = None  # default: http://<address>:8008
    rest_api_ca_file: str | None = None  # https: the CA (on the control machine)
    reload: ReloadMethod = ReloadMethod.REST
    systemd_unit: str = "patroni"

    @field_validator("name")
    @classmethod
    def _node_name(cls, value: str) -> str:
        if not PATRONI_NODE.match(value):
            raise ValueError("must be the database host's short name (letters, digits, "
                             "'.', '_', '-'), e.g. db-00")
        return value

    @field_validator("address", mode="before")
    @classmethod
    def _address_text(cls, value: object) -> object:
        return _address_written_out(value, example="192.168.56.70")

    @field_validator("ssh")
    @classmethod
    def _ssh_destination(cls, value: str | None) -> str | None:
        return _ssh_destination(value)

    @field_validator("bundle_dir", mode="before")
    @classmethod
    def _bundle_dir(cls, value: object) -> object:
        # The issue and Patroni's docs write it with a trailing slash: accept that.
        if isinstance(value, str) and len(value) > 1:
            value = value.rstrip("/")
        return _managed_path(str(value))

    @field_validator("owner", "group")
    @classmethod
    def _posix_user(cls, value: str | None) -> str | None:
        if value is not None and not POSIX_USER.match(value):
            raise ValueError("must be a POSIX user or group name such as postgres")
        return value

    @field_validator("rest_api")
    @classmethod
    def _rest_api(cls, value: str | None) -> str | None:
        if value is not None and not REST_API.match(value):
            raise ValueError("must be http://HOST:PORT or https://HOST:PORT (Patroni's "
                             "restapi.connect_address)")
        return value.rstrip("/") if value is not None else None

    @field_validator("systemd_unit")
    @classmethod
    def _unit(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9@_.:-]{1,200}", value):
            raise ValueError("must be a systemd unit name such as patroni or patroni@main")
        return value

    @property
    def rest_url(self) -> str:
        return self.rest_api or f"http://{self.address}:{PATRONI_REST_PORT}"

    @property
    def file_owner(self) -> str:
        return f"{self.owner}:{self.group or self.owner}"


class PatroniScope(_Strict):
    name: str
    namespace: str = "/service/"
    # Database hosts dcsctl deploys the scope's bundles to; none: bundles stay on the
    # control machine (`dcsctl patroni config --out`), as before.
    nodes: list[PatroniNode] = []

    @field_validator("name")
    @classmethod
    def _scope(cls, value: str) -> str:
        if not PATRONI_SCOPE.match(value):
            raise ValueError("must be a Patroni scope name: letters, digits, '.', '_', '-'")
        return value

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        if not PATRONI_NAMESPACE.match(value):
            raise ValueError("must start and end with '/' (Patroni's default is /service/)")
        return value

    @property
    def prefix(self) -> str:
        return f"{self.namespace}{self.name}/"

    def node(self, name: str) -> PatroniNode:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)


class PatroniSettings(_Strict):
    scopes: list[PatroniScope] = []

    @model_validator(mode="after")
    def _apart(self) -> PatroniSettings:
        problems = []
        names = Counter(s.name for s in self.scopes)
        problems += [f"scope {n!r} is listed {c} times" for n, c in names.items() if c > 1]
        for a, b in itertools.combinations(self.scopes, 2):
            if a.name != b.name and (a.prefix.startswith(b.prefix)
                                     or b.prefix.startswith(a.prefix)):
                problems.append(f"scopes {a.name!r} and {b.name!r} have overlapping prefixes "
                                f"({a.prefix}, {b.prefix}): one user could write the other's "
                                "leader key")
        places: Counter[tuple[str, str]] = Counter()
        for scope in self.scopes:
            nodes = Counter(n.name for n in scope.nodes)
            problems += [f"scope {scope.name!r}: node {n!r} is listed {c} times"
                         for n, c in nodes.items() if c > 1]
            places.update((n.ssh or str(n.address), n.bundle_dir) for n in scope.nodes)
        problems += [f"two nodes put their bundle in {where}:{path}: give each scope's node "
                     "its own bundle_dir" for (where, path), c in places.items() if c > 1]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def scope(self, name: str) -> PatroniScope | None:
        for scope in self.scopes:
            if scope.name == name:
                return scope
        return None


class ClusterSpec(_Strict):
    name: str = "dcs"
    domain: str | None = None
    target: Target = Target.LAB
    members: Annotated[list[Member], Field(min_length=1)]
    ports: Ports = Ports()
    tls: TlsPolicy = TlsPolicy()
    etcd: EtcdSettings = EtcdSettings()
    # target ssh only:
    ssh: SshSettings = SshSettings()
    install: InstallSettings = InstallSettings()
    service: ServiceSettings = ServiceSettings()
    paths: RemotePaths = RemotePaths()
    manage_etc_hosts: bool = False  # a managed block in /etc/hosts naming every member
    backup: BackupSettings | None = None  # off-site backups (an S3 store); None: local only
    # Patroni scopes and, for each, the database hosts dcsctl deploys bundles to.
    patroni: PatroniSettings | None = None

    @model_validator(mode="after")
    def _release_is_pinned(self) -> ClusterSpec:
        settings = self.install
        if settings.method is not InstallMethod.RELEASE:
            return self
        if settings.tarball and not settings.sha256:
            raise ValueError(
                "install: a release tarball needs its sha256, so every host runs exactly "
                "the binary that was checked"
            )
        if not (settings.tarball or settings.version):
            raise ValueError(
                "install: method release needs a version (e.g. 3.6.17), or a tarball and "
                "its sha256"
            )
        return self

    @field_validator("name")
    @classmethod
    def _cluster_name(cls, value: str) -> str:
        if not DNS_LABEL.match(value):
            raise ValueError("must be a DNS label (lowercase letters, digits, '-')")
        return value

    @field_validator("domain")
    @classmethod
    def _domain(cls, value: str | None) -> str | None:
        if value is not None and not all(DNS_LABEL.match(part) for part in value.split(".")):
            raise ValueError("must be a DNS domain such as patroni.mydomain")
        return value

    # -- derived values: one place that knows how names and URLs are formed --
    @property
    def backup_store(self) -> BackupStore | None:
        """Where off-site backups go; None: backups stay on the control machine."""
        return self.backup.store if self.backup is not None else None

    @property
    def shared_dns_name(self) -> str:
        """One DNS name in every member cert, so one TLS client can verify any member."""
        return f"{self.name}.{self.domain}" if self.domain else self.name

    def member(self, name: str) -> Member:
        for member in self.members:
            if member.name == name:
                return member
        raise KeyError(name)

    def client_port(self, member: Member) -> int:
        return member.client_port or self.ports.client

    def peer_port(self, member: Member) -> int:
        return member.peer_port or self.ports.peer

    def client_url(self, member: Member) -> str:
        return f"https://{member.address}:{self.client_port(member)}"

    def peer_url(self, member: Member) -> str:
        return f"https://{member.address}:{self.peer_port(member)}"

    def fqdn(self, member: Member) -> str | None:
        return f"{member.name}.{self.domain}" if self.domain else None

    def remote_bin_dir(self) -> str:
        """Where etcd's binaries are on a member host."""
        if self.paths.bin_dir:
            return self.paths.bin_dir
        return "/usr/local/bin" if self.install.method is InstallMethod.RELEASE else "/usr/bin"

    def warnings(self) -> list[str]:
        count = len(self.members)
        found: list[str] = []
        if count % 2 == 0:
            found.append(
                f"members: {count} members tolerate no more failures than {count - 1}; "
                "use an odd count (1, 3, 5, 7)"
            )
        if count > RECOMMENDED_MAX_MEMBERS:
            found.append(
                f"members: {count} members slow every write; etcd recommends at most 7"
            )
        if self.etcd.election_timeout_ms < 5 * self.etcd.heartbeat_interval_ms:
            found.append(
                "etcd.election_timeout_ms: should be at least 5x heartbeat_interval_ms"
            )
        return found


@dataclass(frozen=True)
class Problem:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def _yaml_path(loc: Iterable[int | str]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(top level)"


def _pydantic_problems(error: ValidationError) -> list[Problem]:
    problems = []
    for item in error.errors():
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key: remove it or check its spelling (see `dcsctl init`)"
        elif item["type"] == "missing":
            message = "required key is missing"
        problems.append(Problem(_yaml_path(item["loc"]), message))
    return problems


def _duplicates(values: Iterable[tuple[int, Any]], what: str, key: str) -> list[Problem]:
    seen = list(values)
    counts = Counter(value for _, value in seen)
    return [
        Problem(f"members[{index}].{key}", f"duplicate {what} {value!r}: each member needs its own")
        for index, value in seen
        if counts[value] > 1
    ]


def _address_problems(index: int, address: object, target: str) -> list[Problem]:
    try:
        ip = ipaddress.ip_address(str(address))
    except ValueError:
        return []  # the field validator reports a malformed address
    if target == Target.LAB and ip not in LAB_NETWORK:
        return [
            Problem(
                f"members[{index}].address",
                f"{address} is not a loopback address: lab members run on this machine, "
                "use 127.0.0.10, 127.0.0.11, ...",
            )
        ]
    return []


def _cross_member_problems(raw: Mapping[str, Any]) -> list[Problem]:
    """Checks across members, done on the raw document so they run even when a field fails."""
    members = raw.get("members")
    if not isinstance(members, list):
        return []
    ports = raw.get("ports")
    if not isinstance(ports, dict):
        ports = {}
    default_client, default_peer = ports.get("client", 2379), ports.get("peer", 2380)
    names: list[tuple[int, Any]] = []
    sockets: list[tuple[int, str]] = []
    problems: list[Problem] = []
    for index, member in enumerate(members):
        if not isinstance(member, dict):
            problems.append(Problem(f"members[{index}]", "must be a mapping with name and address"))
            continue
        if "name" in member:
            names.append((index, member["name"]))
        address = member.get("address")
        if address is None:
            continue
        client = member.get("client_port", default_client)
        peer = member.get("peer_port", default_peer)
        if client == peer:
            problems.append(Problem(f"members[{index}]", f"client and peer port are both {client}"))
        sockets += [(index, f"{address}:{client}"), (index, f"{address}:{peer}")]
        problems += _address_problems(index, address, str(raw.get("target", "lab")))
    problems += _duplicates(names, "name", "name")
    owners: dict[str, set[int]] = {}
    for index, socket_name in sockets:
        owners.setdefault(socket_name, set()).add(index)
    for index in sorted({i for i, s in sockets if len(owners[s]) > 1}):
        problems.append(
            Problem(
                f"members[{index}].address",
                "duplicate address and port: another member listens there too; "
                "give each member its own address (or its own client_port/peer_port)",
            )
        )
    return problems


def _contains(outer: str, inner: str) -> bool:
    return outer == inner or inner.startswith(outer.rstrip("/") + "/")


def _path_problems(raw: Mapping[str, Any]) -> list[Problem]:
    """Managed places that nest (data_dir holding cert_dir: a wipe of the data dir would
    take the keys too), or that a member's remote_root turns into a system directory.

    On the raw document, like the cross-member checks: they run even when a field fails;
    a value the field validators refuse is left to them.
    """
    paths = raw.get("paths")
    given = paths if isinstance(paths, dict) else {}
    managed: dict[str, str] = {}
    for key, field in RemotePaths.model_fields.items():
        value = given.get(key, field.default)
        if isinstance(value, str) and _is_valid(value, managed=True, binaries=key == "bin_dir"):
            managed[key] = value
    places = [(f"paths.{key}", value) for key, value in managed.items()] + [
        ("dcsctl's systemd unit", SYSTEMD_UNIT), ("dcsctl's pidfile", PIDFILE),
        ("dcsctl's tarball cache", TARBALL_CACHE)]
    problems = []
    for (outer_name, outer), (inner_name, inner) in itertools.permutations(places, 2):
        if not outer_name.startswith("paths.") or not _contains(outer, inner):
            continue
        if outer == inner and inner_name.startswith("paths.") and inner_name < outer_name:
            continue  # one problem for two settings naming the same place
        relation = "is the same place as" if outer == inner else "contains"
        problems.append(Problem(
            outer_name,
            f"{outer} {relation} {inner_name} ({inner}): each managed place must stand "
            "apart, or removing or chowning one reaches the other",
        ))
    members = raw.get("members")
    for index, member in enumerate(members if isinstance(members, list) else []):
        root = member.get("remote_root") if isinstance(member, dict) else None
        if not isinstance(root, str) or root == "/" or not _is_valid(root):
            continue
        for key, value in managed.items():
            joined = posixpath.join(root, value.lstrip("/"))
            if joined in SYSTEM_DIRECTORIES and not (
                key == "bin_dir" and joined in BINARY_DIRECTORIES
            ):
                problems.append(Problem(
                    f"members[{index}].remote_root",
                    f"with paths.{key} it makes {joined}, a system directory",
                ))
    return problems


def _is_valid(path: str, *, managed: bool = False, binaries: bool = False) -> bool:
    try:
        _managed_path(path, binaries=binaries) if managed else _absolute_path(path)
    except ValueError:
        return False
    return True


def parse(document: str, *, source: str = "cluster.yaml") -> ClusterSpec:
    """Parse and validate YAML text; raise SpecError listing every problem."""
    try:
        raw = yaml.safe_load(document)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SpecError(
            f"{source} is not valid YAML{where}",
            fix="correct the syntax (indentation, colons, quotes) and run again",
        ) from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise SpecError(
            f"{source} must be a YAML mapping (name:, members:, ...), not {type(raw).__name__}",
            fix="start from `dcsctl init -o cluster.yaml`",
        )
    return from_mapping(raw, source=source)


def from_mapping(raw: Mapping[str, Any], *, source: str = "cluster.yaml") -> ClusterSpec:
    problems = _cross_member_problems(raw) + _path_problems(raw)
    spec: ClusterSpec | None = None
    try:
        spec = ClusterSpec.model_validate(raw)
    except ValidationError as exc:
        problems = _pydantic_problems(exc) + problems
    if problems or spec is None:
        count = len(problems)
        raise SpecError(
            f"{source} has {count} problem{'s' if count != 1 else ''}",
            fix="correct each line above and run again; `dcsctl init` writes an annotated example",
            details=tuple(str(problem) for problem in problems),
        )
    return spec


def _guide_members(members: int, network: str, *, ssh: bool) -> list[dict[str, str]]:
    """dcs-00, dcs-01, ... on <network>.10, .11, ... as in the guide."""
    if not 1 <= members <= 99:
        raise SpecError(f"--members {members} is out of range", fix="choose 1, 3, 5 or 7 members")
    found = []
    for index in range(members):
        name = f"dcs-{index:02d}"
        found.append({"name": name, "address": f"{network}.{10 + index}"}
                     | ({"ssh": name} if ssh else {}))
    return found


def lab_spec(members: int = 3, name: str = "dcs") -> ClusterSpec:
    """The guide's system on loopback: dcs-00.. on 127.0.0.10.. (the embedded default)."""
    return from_mapping(
        {"name": name, "domain": "patroni.mydomain",
         "members": _guide_members(members, "127.0.0", ssh=False)},
        source="the built-in lab spec",
    )


GUIDE_SCOPE = "demo"
GUIDE_DB_HOSTS = 3


def _guide_db_nodes(network: str) -> list[dict[str, str]]:
    """db-00, db-01, db-02 on <network>.70, .71, .72: the guide's database hosts."""
    return [{"name": f"db-{index:02d}", "address": f"{network}.{70 + index}",
             "ssh": f"db-{index:02d}"} for index in range(GUIDE_DB_HOSTS)]


def ssh_spec(members: int = 3, name: str = "dcs", *, release: str) -> ClusterSpec:
    """The guide's three machines (dcs-00.. on 192.168.56.10..), reached over SSH, running
    the official etcd `release` (not Debian's package: see `install` below), and its
    database hosts db-00..02 (192.168.56.70..) for one Patroni scope."""
    return from_mapping(
        {"name": name, "domain": "patroni.mydomain", "target": "ssh",
         "ssh": {"user": "admin", "sudo": True}, "manage_etc_hosts": True,
         "install": {"method": "release", "version": release},
         "members": _guide_members(members, "192.168.56", ssh=True),
         "patroni": {"scopes": [{"name": GUIDE_SCOPE,
                                 "nodes": _guide_db_nodes("192.168.56")}]}},
        source="the built-in SSH spec",
    )


SSH_ONLY = ("ssh", "install", "service", "paths", "manage_etc_hosts")


def digest_source(spec: ClusterSpec) -> dict[str, Any]:
    """The spec as plain data (stable key order), for saving and digests."""
    return spec.model_dump(mode="json", exclude_none=True)


_ANNOTATIONS = {
    "name": "cluster name: names the state folder, the shared TLS name and the cluster token",
    "domain": "optional DNS domain: members also get <name>.<domain> in their certificates",
    "target": "lab = local etcd processes on loopback addresses (no root needed); "
    "ssh = real hosts",
    "ssh": "how every host is reached: the system's OpenSSH (your ~/.ssh/config and agent "
    "work); strict host keys; privileged commands via `sudo -n`",
    "install": "release: etcd's official tarball of `version`, checked against the sha256 "
    "dcsctl records and pushed over SSH (`mirror: URL` for a site's own copy) | apt: "
    "Debian's etcd-server/etcd-client as in the guide (3.4.23 on Debian 12, 3.5.16 on 13: "
    "refused unless etcd.accept_risks names their advisories) | none",
    "service": "systemd (a unit dcsctl writes) | process (hosts without systemd); etcd "
    "runs as `user`",
    "paths": "where things live on the hosts (the guide's places)",
    "manage_etc_hosts": "keep a block naming every member in each host's /etc/hosts",
    "members": "any odd count: 1, 3, 5 or 7; each needs a DNS-safe name and its own address",
    "ports": "default ports for every member (a member may override client_port/peer_port)",
    "tls": "one key type and one lifetime policy for every certificate",
    "etcd": "etcd settings; auto-compaction is on so history never fills the space quota",
    "backup": "backups off the control machine: an S3 store (snapshots sealed with the "
    "state dir's backup key; credentials only in credentials_file, 0600)",
    "patroni": "Patroni scopes (role + user each) and their database hosts: `up` deploys "
    "each node's bundle (ca.crt, cert, key, etcd3.yml) to bundle_dir over SSH, reloads "
    "Patroni and checks it reached etcd with them; scopes without nodes keep bundles here",
}


def render_annotated(spec: ClusterSpec,
                     notes: Mapping[str, Sequence[str]] | None = None) -> str:
    """YAML for `dcsctl init`: the spec with a comment above each top-level section (and
    `notes`' lines under a section's comment: why a value is what it is)."""
    data = digest_source(spec)
    lab = spec.target is Target.LAB
    if lab:
        # Patroni's database nodes are reached over SSH whatever runs the members.
        nodes = spec.patroni is not None and any(s.nodes for s in spec.patroni.scopes)
        data = {k: v for k, v in data.items()
                if k not in SSH_ONLY or (k == "ssh" and nodes)}
    for member in data["members"]:
        # a prefix for paths on SSH hosts: nothing in the lab, and "/" is the default
        if lab or member.get("remote_root") == "/":
            member.pop("remote_root", None)
    lines = [
        "# dcsctl cluster spec. Validate and apply with: dcsctl up -f <this file>",
        "# Every key is optional except members; unknown keys are refused.",
    ]
    for key, value in data.items():
        lines.append("")
        lines.append(f"# {_ANNOTATIONS.get(key, key)}")
        lines += [f"# {note}" for note in (notes or {}).get(key, ())]
        lines.append(yaml.safe_dump({key: value}, sort_keys=False).rstrip())
    return "\n".join(lines) + "\n"
