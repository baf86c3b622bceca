"""`dcsctl monitoring --out DIR`: a Prometheus configuration, its alert rules and the
certificates it needs to scrape every member.

The monitoring certificate is a metrics-only identity. It has no CN: etcd takes a client
certificate's CN as the etcd user, so a certificate without one is no user at all, and
with auth on etcd refuses every key read or write it makes ("user name is empty") —
whatever roles anyone creates later. Over the JSON gateway etcd ignores certificate
identities anyway, and this bundle carries no password. /metrics needs only a client
certificate the cluster CA signed, so Prometheus gets that and nothing else.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from dcsctl import pki, prometheus
from dcsctl.errors import DcsctlError, NotFound
from dcsctl.files import atomic_write
from dcsctl.identity import Identity
from dcsctl.ops.certs import due_for_renewal
from dcsctl.ops.cluster import Cluster
from dcsctl.state import PRIVATE, PUBLIC, locked

ORGANIZATION = "dcsctl-monitoring"  # the holder name certs check and revocation show


def cert_paths(cluster: Cluster) -> tuple[Path, Path]:
    return cluster.dir.pki_dir / "monitoring.crt", cluster.dir.pki_dir / "monitoring.key"


def _still_good(identity: Identity, ca: Identity, now: dt.datetime) -> bool:
    facts = pki.inspect(identity.cert_pem)
    return (pki.is_issued_by(identity.cert_pem, ca.cert_pem)
            and pki.key_matches(identity.cert_pem, identity.key_pem)
            and not due_for_renewal(facts, now))


def ensure_identity(cluster: Cluster) -> tuple[Identity, bool]:
    """The monitoring client certificate, issued (or renewed) when needed; (it, issued?)."""
    ca = cluster.dir.ca()
    if ca is None:
        raise NotFound(f"cluster {cluster.spec.name!r} has no PKI yet",
                       fix="run `dcsctl up` first")
    cert, key = cert_paths(cluster)
    now = cluster.context.clock()
    current = cluster.dir.load_identity(cert, key)
    if current is not None and _still_good(current, ca, now):
        return current, False
    policy = cluster.spec.tls
    issued = pki.issue(ca, pki.Role.CLIENT, common_name=None, organization=ORGANIZATION,
                       sans=pki.SubjectAltNames(), key_type=policy.key_type,
                       days=policy.leaf_days, now=now)
    cluster.dir.save_identity(issued, cert, key)
    return issued, True


@dataclass(frozen=True)
class MonitoringBundle:
    directory: Path
    files: tuple[Path, ...]
    issued: bool  # a new monitoring certificate was issued


def write_bundle(cluster: Cluster, out: Path, scrape: prometheus.Scrape) -> MonitoringBundle:
    """Everything Prometheus needs in `out`: prometheus.yml, rules.yml, the CA bundle and
    the monitoring certificate (key 0600). Each file is replaced atomically; other files
    in `out` are left alone."""
    if out.exists() and not out.is_dir():
        raise DcsctlError(f"{out} is not a directory", fix="pass a directory to --out")
    with locked(cluster.dir):
        identity, issued = ensure_identity(cluster)
        trusted = cluster.dir.trusted_cas()
    if trusted is None:
        raise NotFound(f"cluster {cluster.spec.name!r} has no CA", fix="run `dcsctl up` first")
    contents = (
        (prometheus.CA_FILE, trusted, PUBLIC),
        (prometheus.CERT_FILE, identity.cert_pem, PUBLIC),
        (prometheus.KEY_FILE, identity.key_pem, PRIVATE),
        (prometheus.RULES_FILE, prometheus.dump(prometheus.rules_document()), PUBLIC),
        ("prometheus.yml", prometheus.dump(prometheus.prometheus_config(cluster.spec, scrape)),
         PUBLIC),
    )
    written = []
    for name, content, mode in contents:
        atomic_write(out / name, content, mode)
        written.append(out / name)
    return MonitoringBundle(out, tuple(written), issued)
