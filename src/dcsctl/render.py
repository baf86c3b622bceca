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
from pathlib import PurePath

from dcsctl.spec import ClusterSpec, Member

_SAFE_VALUE = re.compile(r"^[A-Za-z0-9_.,:/=@%+-]*$")
_ENV_LINE = re.compile(r"^(ETCD_[A-Z0-9_]+)='([^']*)'$")


class ClusterState(enum.StrEnum):
    NEW = "new"  # bootstrap: founding members only
    # After bootstrap a member whose data dir is lost must not found a second cluster
    # (lab-defects.md 5): every config says `existing` once the cluster is up.
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


def initial_cluster(spec: ClusterSpec) -> str:
    return ",".join(f"{m.name}={spec.peer_url(m)}" for m in spec.members)


def etcd_settings(
    spec: ClusterSpec,
    member: Member,
    layout: MemberLayout,
    *,
    state: ClusterState,
    token: str,
    jwt_sign_method: str,
) -> dict[str, str]:
    """etcd's flags for one member, keyed by flag name without the leading dashes."""
    settings = spec.etcd
    client_url = spec.client_url(member)
    peer_url = spec.peer_url(member)
    return {
        "name": member.name,
        "data-dir": str(layout.data_dir),
        # Listen on the member's own address only, never 0.0.0.0 (lab-defects.md 3), and
        # advertise exactly what is listened on: https, no 127.0.0.1 (lab-defects.md 1).
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
        # and Patroni then loses its leader lock (lab-defects.md 2).
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
        # application client certificate is refused on the peer port (lab-defects.md 10).
        "peer-cert-allowed-hostname": spec.shared_dns_name,
        "tls-min-version": "TLS1.2",
        # Corruption is looked for after each compaction rather than at start-up: the
        # start-up check waits for peers' hashes, and when every member starts at once
        # (bootstrap, restore) that wait stalls the whole cluster for ~15 s.
        "experimental-compact-hash-check-enabled": "true",
        "logger": "zap",
        "log-outputs": "stderr",
        "log-level": settings.log_level,
    }


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


def etcdctl_environment(
    spec: ClusterSpec, *, ca_cert: PurePath, cert: PurePath, key: PurePath
) -> dict[str, str]:
    """What etcdctl needs to act as admin: endpoints and the CN=root client cert.

    No ETCDCTL_USER/PASSWORD: the certificate's CN is the identity (lab-defects.md 13).
    """
    return {
        "ETCDCTL_API": "3",
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
    CN), the user name and password are the identity (lab-defects.md 17).
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
