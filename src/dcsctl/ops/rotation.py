"""`certs check` and `certs rotate [--ca | --keep-keys]`: certificates that never expire
by surprise, and keys that do not outlive a leak.

`certs rotate` issues new private keys (members, admin, JWT; Patroni with `--patroni`)
in one rolling restart and revokes the replaced certificates (see ops/rekey.py).
`--keep-keys` renews certificates only: etcd reads its certificate on every new TLS
connection, so that swap needs no restart, and a single atomic file replacement never
pairs a new certificate with an old key mid-handshake.
CA rotation goes through a trust bundle (old + new), with rolling restarts because etcd
reads its trusted CAs only at start-up; the first of those restarts also installs the
new keys.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from dcsctl import pki
from dcsctl.errors import DcsctlError, NotFound
from dcsctl.etcd.tls import served_certificate
from dcsctl.files import atomic_write
from dcsctl.identity import Identity
from dcsctl.ops import patroni as patroni_ops
from dcsctl.ops import patroni_deploy, revocation
from dcsctl.ops.certs import member_sans
from dcsctl.ops.cluster import Cluster
from dcsctl.ops.rekey import rekey, rekey_patroni
from dcsctl.ops.runtime import MemberRuntime
from dcsctl.state import PRIVATE, PUBLIC, locked
from dcsctl.wait import wait_until

WARN_DAYS = 30


class Verdict(enum.StrEnum):
    OK = "ok"
    EXPIRING = "expiring"
    EXPIRED = "expired"
    # A Patroni node of the spec: what its host holds is not what dcsctl issued last.
    DRIFT = "drift"
    NOT_DEPLOYED = "not deployed"
    UNREACHABLE = "unreachable"


@dataclass(frozen=True)
class CertificateRow:
    holder: str
    role: str
    path: Path
    subject: str
    not_after: dt.datetime
    days_left: int
    verdict: Verdict


def _row(holder: str, role: str, path: Path, now: dt.datetime, warn_days: int, *,
         pem: bytes | None = None) -> CertificateRow:
    facts = pki.inspect(pem if pem is not None else path.read_bytes())
    days = facts.days_left(now)
    verdict = (Verdict.EXPIRED if facts.not_after <= now
               else Verdict.EXPIRING if days < warn_days else Verdict.OK)
    return CertificateRow(holder, role, path, facts.subject, facts.not_after, days, verdict)


def _deployed_row(cluster: Cluster, scope: str, node: str, issued: Path, *,
                  now: dt.datetime, warn_days: int) -> CertificateRow:
    """A spec node's certificate as its host holds it, not the control machine's copy."""
    found = cluster.spec.patroni.scope(scope) if cluster.spec.patroni else None
    if found is None:
        return _row(f"{scope}/{node}", "patroni client", issued, now, warn_days)
    spec_node = found.node(node)
    remote = Path(spec_node.bundle_dir) / f"{node}.crt"
    holder = f"{scope}/{node}"
    role = f"patroni client (on {spec_node.ssh or spec_node.address})"
    try:
        deployed = cluster.database_host(scope, node).read(remote)
    except DcsctlError:
        return replace(_row(holder, role, issued, now, warn_days), path=remote,
                       verdict=Verdict.UNREACHABLE)
    if deployed is None:
        return replace(_row(holder, role, issued, now, warn_days), path=remote,
                       verdict=Verdict.NOT_DEPLOYED)
    row = _row(holder, role, remote, now, warn_days, pem=deployed)
    same = pki.serial_number(deployed) == pki.serial_number(issued.read_bytes())
    return row if same or row.verdict is not Verdict.OK else replace(row, verdict=Verdict.DRIFT)


def inventory(cluster: Cluster, warn_days: int = WARN_DAYS) -> list[CertificateRow]:
    """Every certificate dcsctl issued for this cluster, with its expiry verdict."""
    directory, now = cluster.dir, cluster.context.clock()
    if directory.ca() is None:
        raise NotFound(f"cluster {cluster.spec.name!r} has no PKI yet", fix="run `dcsctl up`")
    rows = [_row("control machine", "ca", directory.ca_cert, now, warn_days),
            _row("control machine", "admin (CN=root)", directory.admin_cert, now, warn_days)]
    monitoring = directory.pki_dir / "monitoring.crt"  # dcsctl monitoring's, if issued
    if monitoring.exists():
        rows.append(_row("control machine", "monitoring (metrics only)", monitoring, now,
                         warn_days))
    for member in cluster.spec.members:
        path = Path(directory.layout(member.name).cert)
        if path.exists():
            rows.append(_row(member.name, "member", path, now, warn_days))
    nodes = patroni_deploy.managed(cluster)
    for cert in sorted((directory.root / "patroni").glob("*/*/*.crt")):
        scope, node = cert.parent.parent.name, cert.parent.name
        if cert.name == "ca.crt":
            continue
        if (scope, node) in nodes:
            rows.append(_deployed_row(cluster, scope, node, cert, now=now,
                                      warn_days=warn_days))
        else:
            rows.append(_row(f"{scope}/{node}", "patroni client", cert, now, warn_days))
    return rows


def _served_serial(cluster: Cluster, member_name: str) -> int | None:
    tls = cluster.admin_tls()
    endpoint = cluster.spec.client_url(cluster.spec.member(member_name))
    try:
        return pki.serial_number(served_certificate(endpoint, tls))
    except OSError:
        return None


def _await_serial(cluster: Cluster, member_name: str, serial: int) -> None:
    wait_until(lambda: _served_serial(cluster, member_name) == serial,
               timeout=cluster.context.deadline(15),
               what=f"{member_name} did not present its new certificate")


def _reissue_leaves(cluster: Cluster, ca: Identity) -> list[str]:
    """New certificates (same keys) for the admin and every member, one member at a time,
    each confirmed by a fresh TLS handshake presenting the new serial."""
    directory, policy, now = cluster.dir, cluster.spec.tls, cluster.context.clock()
    admin = directory.required(directory.admin(), "admin certificate")
    renewed_admin = pki.issue(ca, pki.Role.ADMIN, common_name="root", sans=pki.SubjectAltNames(),
                              key_type=policy.key_type, days=policy.leaf_days, now=now,
                              key_pem=admin.key_pem)
    atomic_write(directory.admin_cert, renewed_admin.cert_pem, PUBLIC)
    done = ["admin"]
    for member in cluster.spec.members:
        layout = directory.layout(member.name)
        key_pem = Path(layout.key).read_bytes()
        renewed = pki.issue(ca, pki.Role.MEMBER, common_name=member.name,
                            sans=member_sans(cluster.spec, member), key_type=policy.key_type,
                            days=policy.leaf_days, now=now, key_pem=key_pem)
        atomic_write(Path(layout.cert), renewed.cert_pem, PUBLIC)
        cluster.sync_tls(member.name)
        _await_serial(cluster, member.name, pki.serial_number(renewed.cert_pem))
        done.append(member.name)
    return done


@dataclass(frozen=True)
class RotationResult:
    renewed: tuple[str, ...]
    patroni_bundles: tuple[str, ...]  # rewritten for nodes no spec lists: a human copies them
    finished: bool
    note: str


def _reissue_patroni(
    cluster: Cluster, ca: Identity | None = None, trust: bytes | None = None
) -> None:
    """Rewrite every Patroni bundle kept in the state dir (signed by `ca`, trusting `trust`)."""
    for node_dir in sorted((cluster.dir.root / "patroni").glob("*/*")):
        patroni_ops.config(cluster, node_dir.parent.name, node_dir.name, ca=ca, trust=trust)


def _deploy_managed(cluster: Cluster, *, ca: Identity | None = None,
                    trust: bytes | None = None) -> patroni_deploy.Deployed | None:
    """The spec's Patroni nodes get their bundles now, each verified before the
    certificate it replaced is revoked (None: the spec lists no node)."""
    if not patroni_deploy.managed(cluster):
        return None
    return patroni_deploy.deploy_nodes(cluster, ca=ca, trust=trust)


def _deployed_note(deployed: patroni_deploy.Deployed | None) -> str:
    """What happened on the nodes whose files changed: verified (and what they replaced
    revoked), or only placed because Patroni did not answer (revoked once it does)."""
    changed = [n for n in deployed.nodes if n.files] if deployed else []
    verified = [f"{n.scope}/{n.node}" for n in changed if n.verified]
    placed = [f"{n.scope}/{n.node}" for n in changed if not n.verified]
    note = ""
    if verified:
        note += (f"; Patroni nodes {', '.join(verified)}: new bundles deployed and verified, "
                 "the certificates they replaced revoked")
    if placed:
        note += (f"; Patroni nodes {', '.join(placed)}: new bundles placed, but Patroni did "
                 "not answer: the certificates they replaced are revoked once a later "
                 "`dcsctl up` sees them reach etcd")
    return note


def rotate_keys(cluster: Cluster, *, patroni: bool = False) -> RotationResult:
    """New keys for the admin, the JWT signer and every member (one rolling restart), the
    replaced certificates revoked; Patroni bundles too with `patroni`."""
    with locked(cluster.dir):
        ca = cluster.dir.required(cluster.dir.ca(), "CA")
        keys = rekey(cluster, ca)
        # Every bundle is rewritten; those of nodes no spec lists are left for a human.
        (rekey_patroni if patroni else _reissue_patroni)(cluster)
        deployed = _deploy_managed(cluster)
    note = (f"new keys, members restarted one at a time; revoked {', '.join(keys.revoked)}"
            + _deployed_note(deployed))
    left = tuple(patroni_deploy.unmanaged_bundles(cluster))
    if patroni and left:
        note += (f"; deploy the new Patroni bundles of {', '.join(left)}, then run `dcsctl "
                 "certs revoke --superseded` to revoke their old certificates")
    return RotationResult(("admin", "jwt", *keys.members), left, True, note)


def rotate_leaves(cluster: Cluster) -> RotationResult:
    """Certificates only (same keys, no restart): `certs rotate --keep-keys`."""
    with locked(cluster.dir):
        ca = cluster.dir.required(cluster.dir.ca(), "CA")
        renewed = _reissue_leaves(cluster, ca)
        _reissue_patroni(cluster)
        _deploy_managed(cluster)
    return RotationResult(tuple(renewed), tuple(patroni_deploy.unmanaged_bundles(cluster)),
                          True, "no member was restarted")


def _rotation_state(cluster: Cluster) -> Path:
    return cluster.dir.pki_dir / "rotation.json"


def ca_rotation_under_way(cluster: Cluster) -> bool:
    """A `certs rotate --ca` began and has not dropped the old CA yet (its state file, or
    the incoming CA of a first step that was interrupted)."""
    return _rotation_state(cluster).exists() or cluster.dir.next_ca_cert.exists()


def require_ca_rotation_under_way(cluster: Cluster) -> None:
    """`--finish` completes a rotation; with none under way it would start one."""
    if not ca_rotation_under_way(cluster):
        raise DcsctlError(
            f"no CA rotation in progress for cluster {cluster.spec.name!r}: --finish "
            "completes one that `certs rotate --ca` began and stopped",
            fix="start one with `dcsctl certs rotate --ca` (it finishes by itself unless "
            "Patroni bundles outside the spec must be deployed first)")


def _write_member_trust(cluster: Cluster, bundle: bytes) -> None:
    for member in cluster.spec.members:
        atomic_write(Path(cluster.dir.layout(member.name).ca_cert), bundle, PUBLIC)
        cluster.sync_tls(member.name)


def rotate_ca(cluster: Cluster, *, finish: bool = False) -> RotationResult:
    """Replace the CA without downtime: trust old+new, reissue, then drop the old CA.

    Patroni nodes hold client certificates from the old CA: when there are any, the
    rotation stops before dropping the old CA, so the new bundles can be deployed first;
    `--finish` then completes it.
    """
    directory = cluster.dir
    next_cert, next_key = directory.next_ca_cert, directory.next_ca_key
    state_path = _rotation_state(cluster)
    runtime = MemberRuntime(cluster)
    with locked(directory):
        if finish:
            require_ca_rotation_under_way(cluster)
        old = directory.required(directory.ca(), "CA")
        step = json.loads(state_path.read_text())["step"] if state_path.exists() else "begin"
        if step == "begin":
            policy, now = cluster.spec.tls, cluster.context.clock()
            new = pki.issue_ca(f"{cluster.spec.name}-ca", policy.key_type, policy.ca_days, now)
            directory.save_identity(new, next_cert, next_key)
            bundle = old.cert_pem + new.cert_pem
            atomic_write(directory.trust_bundle, bundle, PUBLIC)
            _write_member_trust(cluster, bundle)
            # etcd reads trusted CAs (and its JWT key) at start-up only. The same restart
            # gives each member a new key, certified by the old CA that every member
            # still trusts alone until its own restart; the next step certifies the new
            # keys by the new CA without a restart.
            rekey(cluster, old)
            atomic_write(state_path, json.dumps({"step": "trusting-both"}).encode(), PRIVATE)
            step = "trusting-both"
        new_ca = directory.load_identity(next_cert, next_key) or old
        both = old.cert_pem + new_ca.cert_pem
        # A run resumed past this step renewed no certificate itself.
        renewed = (_reissue_by_new_ca(cluster, new_ca, both, state_path)
                   if step == "trusting-both" else ())
        has_patroni = any((directory.root / "patroni").glob("*/*"))
        if has_patroni:
            _reissue_patroni(cluster, new_ca, both)
            # Certificates of the new CA onto the nodes, verified, the old ones revoked.
            _deploy_managed(cluster, ca=new_ca, trust=both)
            left = tuple(patroni_deploy.unmanaged_bundles(cluster))
            if left and not finish:
                return RotationResult(renewed, left, False,
                                      f"deploy the new Patroni bundles of {', '.join(left)}, "
                                      "then run `dcsctl certs rotate --ca --finish` to drop "
                                      "the old CA")
        _drop_old_ca(cluster, new_ca, runtime)
        next_cert.unlink(missing_ok=True)
        next_key.unlink(missing_ok=True)
        state_path.unlink(missing_ok=True)
        if not has_patroni:
            return RotationResult(renewed, (), True, "old CA dropped")
        _reissue_patroni(cluster)
        _deploy_managed(cluster)  # the nodes trust the new CA only, like the members
    return RotationResult(renewed, tuple(patroni_deploy.unmanaged_bundles(cluster)), True,
                          "old CA dropped")


def _reissue_by_new_ca(cluster: Cluster, new_ca: Identity, both: bytes,
                       state_path: Path) -> tuple[str, ...]:
    """The step after trusting both CAs: the spec's Patroni nodes trust both before any
    member presents a certificate of the new one (their own certificates, by the old CA,
    stay good while the members trust both); then every leaf is certified by the new CA."""
    _deploy_managed(cluster, trust=both)
    renewed = _reissue_leaves(cluster, new_ca)
    atomic_write(state_path, json.dumps({"step": "reissued"}).encode(), PRIVATE)
    return tuple(renewed)


def _drop_old_ca(cluster: Cluster, new_ca: Identity, runtime: MemberRuntime) -> None:
    """Members and clients trust only the new CA. The CRL is signed by the new CA from
    now on (its entries were issued by the old one, which no member trusts any more: kept
    anyway, they cost nothing)."""
    directory = cluster.dir
    directory.save_identity(new_ca, directory.ca_cert, directory.ca_key)
    revocation.write_crl(cluster, new_ca)
    revocation.publish(cluster)
    _write_member_trust(cluster, new_ca.cert_pem)
    directory.trust_bundle.unlink(missing_ok=True)
    runtime.restart_all()


def revoke_certificates(
    cluster: Cluster, files: Sequence[Path], *, include_superseded: bool
) -> revocation.Revoked:
    """`certs revoke`: the given certificate files (and the superseded ones), refusing the
    certificates dcsctl and the members present now."""
    with locked(cluster.dir):
        kept = revocation.superseded(cluster) if include_superseded else []
        waiting = patroni_deploy.awaiting_verification(cluster)
        left = tuple(sorted({waiting[path] for path in kept if path in waiting}))
        kept = [path for path in kept if path not in waiting]
        chosen = [*files, *kept]
        if not chosen and left:
            return revocation.Revoked((), (), left)
        if not chosen:
            raise DcsctlError("nothing to revoke",
                              fix="name certificate files, or pass --superseded")
        certificates = []
        in_use = revocation.in_use(cluster)
        for path in chosen:
            try:
                cert_pem = path.read_bytes()
                serial = pki.serial_number(cert_pem)
            except (OSError, ValueError) as exc:
                raise DcsctlError(f"{path} is not a readable PEM certificate ({exc})",
                                  fix="pass the .crt file of the certificate to revoke") from exc
            if serial in in_use:
                raise DcsctlError(
                    f"{path} is {in_use[serial]}: revoking it would cut that off",
                    fix="`dcsctl certs rotate` replaces and revokes member and admin keys; "
                    "`dcsctl member replace` a compromised member",
                )
            certificates.append(cert_pem)
        result = revocation.revoke(cluster, certificates)
        for path in kept:
            path.unlink()
    return replace(result, left=left)
