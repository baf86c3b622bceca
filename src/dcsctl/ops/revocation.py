"""Revocation: the CRL dcsctl keeps, and that every member's etcd checks.

The state dir holds `pki/revoked.json` (serial, holder, when: what the operator reads)
and `pki/ca.crl` built from it, signed by the CA. Each member gets the CRL beside its CA
certificate, named by `--client-crl-file` and `--peer-crl-file`. etcd reads that file
again for every new TLS connection (measured: a certificate revoked while the members
run is refused at its next connection, no restart; tests/security/test_revocation.py),
so publishing a new CRL is a file copy. A missing or unparsable CRL makes etcd refuse
every connection, so the file is always written whole (atomic rename), never removed
while the flags name it.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from dcsctl import pki
from dcsctl.errors import DcsctlError, NotFound
from dcsctl.files import atomic_write, private_dir
from dcsctl.identity import Identity
from dcsctl.ops.cluster import Cluster
from dcsctl.state import PRIVATE, PUBLIC, ClusterDir


def revoked(directory: ClusterDir) -> list[pki.Revocation]:
    try:
        data = json.loads(directory.revoked_record.read_text())
    except FileNotFoundError:
        return []
    return [pki.Revocation(int(e["serial"]), dt.datetime.fromisoformat(e["revoked_at"]),
                           str(e["holder"])) for e in data]


def _save(directory: ClusterDir, entries: Sequence[pki.Revocation]) -> None:
    data = [{"serial": e.serial, "holder": e.holder, "revoked_at": e.revoked_at.isoformat()}
            for e in entries]
    atomic_write(directory.revoked_record, (json.dumps(data, indent=2) + "\n").encode(),
                 PUBLIC)


def build_crl(cluster: Cluster, ca: Identity) -> bytes:
    """The CRL for everything revoked so far, signed by `ca` (valid as long as a leaf)."""
    return pki.revocation_list(ca, revoked(cluster.dir), now=cluster.context.clock(),
                               days=cluster.spec.tls.leaf_days)


def crl_current(cluster: Cluster, ca: Identity) -> bool:
    """The state dir's CRL exists, is signed by `ca` and lists every recorded serial."""
    path = cluster.dir.crl
    if not path.exists():
        return False
    crl = path.read_bytes()
    return pki.crl_signed_by(crl, ca.cert_pem) and pki.revoked_serials(crl) == {
        e.serial for e in revoked(cluster.dir)}


def write_crl(cluster: Cluster, ca: Identity) -> bytes:
    crl = build_crl(cluster, ca)
    atomic_write(cluster.dir.crl, crl, PUBLIC)
    return crl


def publish(cluster: Cluster) -> None:
    """Copy the state dir's CRL to every member (lab: the file etcd reads; SSH: its host)."""
    crl = cluster.dir.crl.read_bytes()
    for member in cluster.spec.members:
        staged = Path(cluster.dir.layout(member.name).crl)
        if staged.parent.exists():
            cluster.host.write(staged, crl, PUBLIC)
            cluster.sync_tls(member.name)


@dataclass(frozen=True)
class Revoked:
    added: tuple[pki.Revocation, ...]
    already: tuple[int, ...]
    # Patroni nodes ("scope/node") whose kept certificates were left to the run that
    # verifies their new bundle (`certs revoke --superseded`)
    left: tuple[str, ...] = ()


def revoke(cluster: Cluster, certificates: Sequence[bytes]) -> Revoked:
    """Add the certificates (PEM) to the CRL and push it to every member.

    The caller holds the cluster lock. Certificates of another CA are refused: their
    serials mean nothing to this CA's CRL.
    """
    ca = cluster.dir.ca()
    if ca is None:
        raise NotFound(f"cluster {cluster.spec.name!r} has no CA", fix="run `dcsctl up`")
    entries = revoked(cluster.dir)
    known = {e.serial for e in entries}
    now = cluster.context.clock()
    added: list[pki.Revocation] = []
    already: list[int] = []
    for cert_pem in certificates:
        if not issued_here(cluster, cert_pem):
            raise DcsctlError(
                f"certificate {pki.holder_name(cert_pem)!r} (serial "
                f"{pki.serial_number(cert_pem):x}) was not issued by this cluster's CA",
                fix="pass a certificate of this cluster (dcsctl certs check lists them)",
            )
        serial = pki.serial_number(cert_pem)
        if serial in known:
            already.append(serial)
            continue
        known.add(serial)
        added.append(pki.Revocation(serial, now, pki.holder_name(cert_pem)))
    if added:
        _save(cluster.dir, [*entries, *added])
    if added or not crl_current(cluster, ca):
        write_crl(cluster, ca)
        publish(cluster)
    return Revoked(tuple(added), tuple(already))


def issued_here(cluster: Cluster, cert_pem: bytes) -> bool:
    """Issued by a CA the members trust now (both during a CA rotation)."""
    ca = cluster.dir.ca()
    trusted = cluster.dir.trusted_cas() or (ca.cert_pem if ca else b"")
    return any(pki.is_issued_by(cert_pem, one) for one in _split_pem(trusted))


def _split_pem(bundle: bytes) -> list[bytes]:
    marker = b"-----END CERTIFICATE-----"
    return [part + marker + b"\n" for part in bundle.split(marker) if part.strip()]


# -- certificates replaced but still deployed (Patroni bundles) --

def patroni_label(scope: str, node: str) -> str:
    """How a Patroni node's superseded certificates are named (then `-SERIAL.crt`)."""
    return f"patroni-{scope}-{node}"


def keep_superseded(cluster: Cluster, label: str, cert_pem: bytes) -> Path:
    """Keep a replaced certificate until `certs revoke --superseded` revokes it."""
    directory = private_dir(cluster.dir.superseded_dir)
    path = directory / f"{label}-{pki.serial_number(cert_pem):x}.crt"
    atomic_write(path, cert_pem, PRIVATE)
    return path


def forget_revoked_superseded(cluster: Cluster) -> None:
    """Superseded certificates revoked since (a deploy verified their replacements)."""
    done = {entry.serial for entry in revoked(cluster.dir)}
    for path in superseded(cluster):
        try:
            serial = pki.serial_number(path.read_bytes())
        except (OSError, ValueError):
            continue
        if serial in done:
            path.unlink(missing_ok=True)


def superseded(cluster: Cluster) -> list[Path]:
    return sorted(cluster.dir.superseded_dir.glob("*.crt"))


def superseded_paths(cluster: Cluster, label: str) -> list[Path]:
    """The files of the superseded certificates kept under `label`."""
    return [path for path in superseded(cluster)
            if (rest := path.stem.removeprefix(label + "-")) != path.stem
            and re.fullmatch(r"[0-9a-f]+", rest)]


def superseded_of(cluster: Cluster, label: str) -> list[bytes]:
    """The superseded certificates kept under `label` that a CRL of this cluster can
    still revoke (those of a CA dropped since mean nothing to any member)."""
    found = []
    for path in superseded_paths(cluster, label):
        try:
            cert_pem = path.read_bytes()
            if issued_here(cluster, cert_pem):
                found.append(cert_pem)
        except (OSError, ValueError):
            continue
    return found


def in_use(cluster: Cluster) -> dict[int, str]:
    """Serials dcsctl itself presents now: revoking one cuts dcsctl or a member off."""
    directory = cluster.dir
    found: dict[int, str] = {}
    admin = directory.admin()
    if admin is not None:
        found[pki.serial_number(admin.cert_pem)] = "the current admin certificate"
    for member in cluster.spec.members:
        cert = Path(directory.layout(member.name).cert)
        if cert.exists():
            found[pki.serial_number(cert.read_bytes())] = f"member {member.name}'s certificate"
    return found

