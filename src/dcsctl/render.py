"""Spec + member -> the files a member needs, built as data and then serialised.

etcd's settings are one mapping of flag name -> value. It is written as the environment
file that Debian's etcd unit reads (`/etc/default/etcd`, as in the guide) and that the lab
runtime passes to the etcd process, so both targets run the very same configuration.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePath, PurePosixPath

from dcsctl.etcd.versions import Version
from dcsctl.spec import ClusterSpec, Member

_SAFE_VALUE = re.compile(r"^[A-Za-z0-9_.,:/=@%+-]*$")
_ENV_LINE = re.compile(r"^(ETCD_[A-Z0-9_]+)='([^']*)'$")


class ClusterState(enum.StrEnum):
    NEW = "new"  # bootstrap: founding members only
    # After bootstrap a member whose data dir is lost must not found a second cluster
    # (docs/guide-defects.md 5): every config says `existing` once the cluster is up.
    EXISTING = "existing"


@dataclass(frozen=True)
class MemberLayout:
    """Where a member's files live on the host that runs it."""

    config: PurePath
    data_dir: PurePath
    ca_cert: PurePath
    cert: PurePath
    key: PurePath
    jwt_private: PurePath
    jwt_public: PurePath

    @classmethod
    def under(cls, root: PurePath, data_dir: PurePath | None = None) -> MemberLayout:
        tls = root / "tls"
        return cls(
            config=root / "etcd.env",
            data_dir=data_dir or root / "data",
            ca_cert=tls / "ca.crt",
            cert=tls / "member.crt",
            key=tls / "member.key",
            jwt_private=tls / "jwt.key",
            jwt_public=tls / "jwt.pub",
        )

    @property
    def crl(self) -> PurePath:
        """The CA's revocation list (DER), beside the CA certificate."""
        return self.ca_cert.parent / "ca.crl"


def on_host(member: Member, path: str) -> PurePosixPath:
    """A remote path under the member's remote_root ("/" on real hosts)."""
    return PurePosixPath(member.remote_root) / path.lstrip("/")


def remote_layout(spec: ClusterSpec, member: Member) -> MemberLayout:
    """The guide's places: /etc/dcs/etcd, /etc/dcs/cert/<name>.crt, /var/lib/etcd."""
    paths = spec.paths
    cert_dir = on_host(member, paths.cert_dir)
    return MemberLayout(
        config=on_host(member, paths.config_file),
        data_dir=on_host(member, paths.data_dir),
        ca_cert=cert_dir / "ca.crt",
        cert=cert_dir / f"{member.name}.crt",
        key=cert_dir / f"{member.name}.key",
        jwt_private=cert_dir / "jwt.key",
        jwt_public=cert_dir / "jwt.pub",
    )


@dataclass(frozen=True)
class HostPaths:
    """Host-level places beside the member's own files."""

    etcd: PurePosixPath
    env_link: PurePosixPath | None
    log: PurePosixPath
    hosts_file: PurePosixPath
    tarball_cache: PurePosixPath

    @classmethod
    def of(cls, spec: ClusterSpec, member: Member) -> HostPaths:
        link = spec.paths.env_link
        return cls(
            etcd=on_host(member, spec.remote_bin_dir()) / "etcd",
            env_link=on_host(member, link) if link else None,
            log=on_host(member, spec.paths.log_file),
            hosts_file=on_host(member, "/etc/hosts"),
            tarball_cache=on_host(member, "/var/cache/dcsctl"),
        )


def systemd_unit(spec: ClusterSpec, layout: MemberLayout, etcd: PurePosixPath) -> bytes:
    """etcd's unit, rendered from data. It reads the same environment file as the lab."""
    sections: dict[str, dict[str, str]] = {
        "Unit": {
            "Description": f"etcd member of DCS cluster {spec.name} (managed by dcsctl)",
            "Documentation": "https://etcd.io/docs/",
            "After": "network-online.target",
            "Wants": "network-online.target",
        },
        "Service": {
            "Type": "notify",
            "User": spec.service.user,
            "EnvironmentFile": str(layout.config),
            "ExecStart": str(etcd),
            "Restart": "on-failure",
            "RestartSec": "5s",
            "LimitNOFILE": "65536",
            # A new cluster's member reports ready only once its peers are up.
            "TimeoutStartSec": "0",
        },
        "Install": {"WantedBy": "multi-user.target"},
    }
    return unit_file(sections, header="written by dcsctl; changes are overwritten by `dcsctl up`")


def unit_file(sections: Mapping[str, Mapping[str, str]], *, header: str) -> bytes:
    """systemd's INI-like unit syntax from a mapping of sections."""
    lines = [f"# {header}"]
    for section, entries in sections.items():
        lines.append(f"[{section}]")
        for key, value in entries.items():
            if "\n" in value:
                raise ValueError(f"{section}.{key}: a unit value cannot span lines")
            lines.append(f"{key}={value}")
        lines.append("")
    return "\n".join(lines).encode()


def systemd_command_line(argv: list[str]) -> str:
    """An argv as systemd's ExecStart= reads it: each word double-quoted when needed."""
    words = []
    for word in argv:
        if re.fullmatch(r"[A-Za-z0-9_@%+=:,./-]+", word):
            words.append(word.replace("%", "%%"))
        else:
            escaped = word.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
            words.append(f'"{escaped}"')
    return " ".join(words)


def backup_units(
    cluster: str, argv: list[str], environment: Mapping[str, str], on_calendar: str
) -> dict[str, bytes]:
    """A oneshot service running `dcsctl backup` and the timer that starts it."""
    name = f"dcsctl-backup-{cluster}"
    service = {
        "Unit": {"Description": f"dcsctl backup of etcd cluster {cluster}",
                 "Wants": "network-online.target", "After": "network-online.target"},
        "Service": {"Type": "oneshot", "ExecStart": systemd_command_line(argv),
                    "UMask": "0077"},
    }
    if environment:
        service["Service"]["Environment"] = systemd_command_line(
            [f"{key}={value}" for key, value in environment.items()])
    timer = {
        "Unit": {"Description": f"scheduled dcsctl backup of etcd cluster {cluster}"},
        "Timer": {"OnCalendar": on_calendar, "Persistent": "true",
                  "RandomizedDelaySec": "60", "Unit": f"{name}.service"},
        "Install": {"WantedBy": "timers.target"},
    }
    header = "written by `dcsctl backup schedule`"
    return {f"{name}.service": unit_file(service, header=header),
            f"{name}.timer": unit_file(timer, header=header)}


def hosts_block(spec: ClusterSpec) -> list[str]:
    """/etc/hosts lines naming every member (the guide's step, as a managed block)."""
    lines = []
    for member in spec.members:
        names = [n for n in (spec.fqdn(member), member.name) if n]
        lines.append(f"{member.address} {' '.join(names)}")
    return lines


def with_hosts_block(existing: str, cluster: str, lines: list[str]) -> str:
    """`existing` /etc/hosts with dcsctl's block for `cluster` replaced (or appended)."""
    begin, end = f"# BEGIN dcsctl {cluster}", f"# END dcsctl {cluster}"
    kept = without_hosts_block(existing, cluster).rstrip("\n")
    return "\n".join([kept, "", begin, *lines, end]) + "\n" if kept else "\n".join(
        [begin, *lines, end]) + "\n"


def without_hosts_block(existing: str, cluster: str) -> str:
    begin, end = f"# BEGIN dcsctl {cluster}", f"# END dcsctl {cluster}"
    kept: list[str] = []
    inside = False
    for line in existing.splitlines():
        if line == begin:
            inside = True
            if kept and not kept[-1].strip():
                kept.pop()  # the blank line with_hosts_block put before the block
        elif line == end:
            inside = False
        elif not inside:
            kept.append(line)
    while kept and not kept[-1].strip():
        kept.pop()
    return "\n".join(kept) + "\n" if kept else ""


def initial_cluster(spec: ClusterSpec) -> str:
    return ",".join(f"{m.name}={spec.peer_url(m)}" for m in spec.members)


def etcd_settings(
    spec: ClusterSpec,
    member: Member,
    layout: MemberLayout,
    *,
    version: Version,
    state: ClusterState,
    token: str,
    jwt_sign_method: str,
) -> dict[str, str]:
    """etcd's flags for one member and etcd version, keyed by flag name without dashes."""
    settings = spec.etcd
    client_url = spec.client_url(member)
    peer_url = spec.peer_url(member)
    return {
        "name": member.name,
        "data-dir": str(layout.data_dir),
        # Listen on the member's own address only, never 0.0.0.0 (docs/guide-defects.md 3), and
        # advertise exactly what is listened on: https, no 127.0.0.1 (docs/guide-defects.md 1).
        "listen-client-urls": client_url,
        "advertise-client-urls": client_url,
        "listen-peer-urls": peer_url,
        "initial-advertise-peer-urls": peer_url,
        "initial-cluster": initial_cluster(spec),
        "initial-cluster-state": str(state),
        "initial-cluster-token": token,
        "heartbeat-interval": str(settings.heartbeat_interval_ms),
        "election-timeout": str(settings.election_timeout_ms),
        # Without compaction history grows to the quota and NOSPACE stops every write,
        # and Patroni then loses its leader lock (docs/guide-defects.md 2).
        "auto-compaction-mode": str(settings.auto_compaction_mode),
        "auto-compaction-retention": settings.auto_compaction_retention,
        "quota-backend-bytes": str(settings.quota_backend_bytes),
        # "simple" tokens are not for production (Patroni sees "Invalid auth token").
        "auth-token": (
            f"jwt,pub-key={layout.jwt_public},priv-key={layout.jwt_private},"
            f"sign-method={jwt_sign_method},ttl={settings.auth_token_ttl_s}s"
        ),
        "cert-file": str(layout.cert),
        "key-file": str(layout.key),
        "trusted-ca-file": str(layout.ca_cert),
        "client-cert-auth": "true",
        "peer-cert-file": str(layout.cert),
        "peer-key-file": str(layout.key),
        "peer-trusted-ca-file": str(layout.ca_cert),
        "peer-client-cert-auth": "true",
        # Only member certificates carry the shared cluster name, so an admin or
        # application client certificate is refused on the peer port (docs/guide-defects.md 10).
        "peer-cert-allowed-hostname": spec.shared_dns_name,
        # TLS 1.3 only (every etcd 3.5+ accepts the value): Patroni (urllib3 over
        # Python's ssl) and grpcio (BoringSSL) both speak it; tested in tests/patroni
        # and tests/security/test_tls_version.py.
        "tls-min-version": "TLS1.3",
        **capability_settings(version),
        # The gRPC handling-time histogram (etcd registers it only with extensive
        # metrics): what the slow-request alert reads (prometheus.RULES).
        "metrics": "extensive",
        "logger": "zap",
        "log-outputs": "stderr",
        "log-level": settings.log_level,
    }


@dataclass(frozen=True)
class Capability:
    """An etcd capability dcsctl turns on, as each release line spells it: 3.5 with
    `--experimental-*` flags, 3.6 with `--feature-gates` (its experimental names are
    deprecated), 3.7 with feature gates only (every experimental flag is gone; an unknown
    ETCD_* variable is merely logged, so a stale spelling would silently switch it off)."""

    why: str
    experimental: Mapping[str, str]
    gates: tuple[str, ...]


CAPABILITIES: tuple[Capability, ...] = (
    # Corruption is looked for after each compaction rather than at start-up: the start-up
    # check waits for peers' hashes, and when every member starts at once (bootstrap,
    # restore) that wait stalls the whole cluster for ~15 s.
    Capability("compaction hash check",
               {"experimental-compact-hash-check-enabled": "true"}, ("CompactHashCheck",)),
    # Patroni's leader key lives on a lease: without checkpoints an etcd leader change
    # resets every lease to its full TTL, and with persistence the remaining TTL also
    # survives a restart, so a dead Patroni leader's lock still expires on time.
    Capability("lease checkpoints",
               {"experimental-enable-lease-checkpoint": "true",
                "experimental-enable-lease-checkpoint-persist": "true"},
               ("LeaseCheckpoint", "LeaseCheckpointPersist")),
)
FEATURE_GATES_SINCE = Version(3, 6, 0)


def capability_settings(version: Version) -> dict[str, str]:
    """The flags that turn CAPABILITIES on for this etcd version."""
    if version < FEATURE_GATES_SINCE:
        return {flag: value for c in CAPABILITIES for flag, value in c.experimental.items()}
    return {"feature-gates": ",".join(f"{gate}=true" for c in CAPABILITIES for gate in c.gates)}


def revocation_settings(layout: MemberLayout) -> dict[str, str]:
    """etcd's CRL flags: a certificate whose serial the CRL lists is refused on the client
    and peer ports. etcd reads the file on every new connection (no restart needed), and
    refuses every connection when the file is missing or unreadable: it must be in place
    before these flags are."""
    return {"client-crl-file": str(layout.crl), "peer-crl-file": str(layout.crl)}


def env_name(flag: str) -> str:
    return "ETCD_" + flag.upper().replace("-", "_")


def env_file(settings: Mapping[str, str], *, header: str) -> bytes:
    """Serialise settings as `ETCD_X='value'` lines (systemd EnvironmentFile syntax)."""
    lines = [f"# {line}" for line in header.splitlines()]
    for flag, value in settings.items():
        if not _SAFE_VALUE.match(value):
            raise ValueError(f"{flag}: value {value!r} has characters an env file can't hold")
        lines.append(f"{env_name(flag)}='{value}'")
    return ("\n".join(lines) + "\n").encode()


def parse_env_file(content: bytes) -> dict[str, str]:
    """Read back what env_file wrote (ignores comments and blank lines)."""
    found: dict[str, str] = {}
    for number, line in enumerate(content.decode().splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        match = _ENV_LINE.match(line)
        if not match:
            raise ValueError(f"line {number} is not ETCD_NAME='value': {line!r}")
        found[match.group(1)] = match.group(2)
    return found


# etcdctl 3.6 dropped the v2 API and with it ETCDCTL_API: it warns "unrecognized
# environment variable" on every command that finds it set.
ETCDCTL_API_UNTIL = Version(3, 6, 0)


def etcdctl_environment(
    spec: ClusterSpec, *, ca_cert: PurePath, cert: PurePath, key: PurePath,
    etcdctl: Version,
) -> dict[str, str]:
    """What the `etcdctl` of version `etcdctl` needs to act as admin: endpoints and the
    CN=root client cert (and the guide's ETCDCTL_API=3 where that etcdctl knows it).

    No ETCDCTL_USER/PASSWORD: the certificate's CN is the identity (docs/guide-defects.md 13).
    """
    api = {"ETCDCTL_API": "3"} if etcdctl < ETCDCTL_API_UNTIL else {}
    return api | {
        "ETCDCTL_ENDPOINTS": ",".join(spec.client_url(m) for m in spec.members),
        "ETCDCTL_CACERT": str(ca_cert),
        "ETCDCTL_CERT": str(cert),
        "ETCDCTL_KEY": str(key),
    }


# -- Patroni --

PATRONI_DEFAULT_TTL = 30
PATRONI_DEFAULT_LOOP_WAIT = 10
PATRONI_DEFAULT_RETRY_TIMEOUT = 10


def patroni_etcd3_section(
    spec: ClusterSpec,
    *,
    ca_cert: PurePath,
    cert: PurePath,
    key: PurePath,
    username: str,
    password: str,
) -> dict[str, object]:
    """The `etcd3:` section of patroni.yml.

    Patroni talks to etcd's JSON gateway, which ignores (and, with auth on, rejects) a
    client certificate's CN: the certificate only opens the TLS door (issued without a
    CN), the user name and password are the identity (docs/guide-defects.md 17).
    """
    return {
        "etcd3": {
            "hosts": [f"{m.address}:{spec.client_port(m)}" for m in spec.members],
            "protocol": "https",
            "cacert": str(ca_cert),
            "cert": str(cert),
            "key": str(key),
            "username": username,
            "password": password,
        }
    }


def patroni_timing_advice(spec: ClusterSpec) -> list[str]:
    """Patroni's timing rules checked against this cluster's etcd settings."""
    ttl, loop_wait, retry = (
        PATRONI_DEFAULT_TTL, PATRONI_DEFAULT_LOOP_WAIT, PATRONI_DEFAULT_RETRY_TIMEOUT
    )
    election_s = spec.etcd.election_timeout_ms / 1000
    # Patroni splits retry_timeout over the etcd hosts it tries in turn.
    per_node_s = retry / max(1, len(spec.members))
    advice = [
        f"keep loop_wait + 2 x retry_timeout <= ttl (Patroni defaults {loop_wait} + 2 x "
        f"{retry} <= {ttl}): a leader that cannot reach etcd demotes itself before its "
        "lock expires",
        f"etcd's election timeout ({election_s:g} s) must stay well below Patroni's "
        f"per-host request timeout (retry_timeout / {len(spec.members)} hosts = "
        f"{per_node_s:.1f} s), so an etcd leader election never looks like an outage",
    ]
    if election_s * 2 > per_node_s:
        advice.append(
            f"WARNING: with these settings an etcd election ({election_s:g} s, up to "
            f"{2 * election_s:g} s) can exceed Patroni's per-host timeout: raise "
            "retry_timeout (and ttl) or lower etcd.election_timeout_ms"
        )
    return advice
