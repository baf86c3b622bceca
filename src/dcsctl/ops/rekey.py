"""New private keys: members, the admin identity, the JWT signing key, and on request the
Patroni client bundles; each replaced certificate is revoked.

A member's key and certificate are two files that etcd reads at every handshake:
replacing them under a running etcd would pair the new certificate with the old key for
a moment. So each member is stopped, given its new pair, and started again, one at a
time, followers first and the leader last after handing over (`dcsctl restart`'s roll):
the cluster keeps quorum throughout.

The same restart loads the new JWT key pair, which etcd reads only at start-up. Every
member gets the new pair on disk before the first restart. While the roll is under way,
a token signed by a restarted member is refused by a member not yet restarted (and the
other way round) with "invalid auth token"; Patroni and etcdctl then authenticate again
against the member they talk to (tests/patroni: no demotion during the roll). dcsctl's
own client authenticates by its CN=root certificate and holds no token.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dcsctl import pki
from dcsctl.identity import Identity
from dcsctl.ops import patroni as patroni_ops
from dcsctl.ops import revocation
from dcsctl.ops.certs import member_sans
from dcsctl.ops.cluster import Cluster
from dcsctl.ops.runtime import MemberRuntime
from dcsctl.spec import Member
from dcsctl.state import PRIVATE, PUBLIC


@dataclass(frozen=True)
class Rekeyed:
    """What a key rotation did: the members given new keys (in the order of the
    restarts) and the certificates it revoked."""

    members: tuple[str, ...]
    revoked: tuple[str, ...]


def rekey(cluster: Cluster, ca: Identity) -> Rekeyed:
    """New keys for the admin, the JWT signer and every member, in one rolling restart
    (the caller holds the cluster lock); each replaced certificate revoked."""
    keys = KeyRotation(cluster, ca)
    revoked = keys.admin()
    keys.stage_jwt()
    rekeyed = MemberRuntime(cluster).restart_each(keys.member_while_stopped)
    return Rekeyed(tuple(member.name for member, _ in rekeyed),
                   (*revoked, *(label for _, labels in rekeyed for label in labels)))


class KeyRotation:
    """The steps of a key rotation; each returns what it revoked, and keeps nothing.

    `ca` signs the new certificates (during a CA rotation: still the old CA, which every
    member trusts until the new one is in place everywhere).
    """

    def __init__(self, cluster: Cluster, ca: Identity) -> None:
        self.cluster = cluster
        self.ca = ca

    def _issue(self, role: pki.Role, common_name: str,
               sans: pki.SubjectAltNames) -> Identity:
        policy, now = self.cluster.spec.tls, self.cluster.context.clock()
        return pki.issue(self.ca, role, common_name=common_name, sans=sans,
                         key_type=policy.key_type, days=policy.leaf_days, now=now)

    def _revoke(self, old_cert: bytes | None, label: str) -> tuple[str, ...]:
        """Revoke `old_cert`; what was revoked, as `label (serial)`."""
        if old_cert is None:
            return ()
        return tuple(f"{label} ({entry.serial:x})"
                     for entry in revocation.revoke(self.cluster, [old_cert]).added)

    def admin(self) -> tuple[str, ...]:
        """dcsctl's own identity: new key now, old certificate revoked at once (every
        dcsctl command loads the admin pair from the state dir when it connects)."""
        directory = self.cluster.dir
        old = directory.admin()
        directory.save_identity(self._issue(pki.Role.ADMIN, "root", pki.SubjectAltNames()),
                                directory.admin_cert, directory.admin_key)
        return self._revoke(old.cert_pem if old else None, "admin")

    def stage_jwt(self) -> None:
        """A new JWT key pair on every member's disk; each loads it at its next start."""
        cluster, directory = self.cluster, self.cluster.dir
        keys = pki.jwt_keys(cluster.spec.tls.key_type)
        private, public = directory.jwt()
        cluster.host.write(private, keys.private_pem, PRIVATE)
        cluster.host.write(public, keys.public_pem, PUBLIC)
        for member in cluster.spec.members:
            layout = directory.layout(member.name)
            cluster.host.write(Path(layout.jwt_private), keys.private_pem, PRIVATE)
            cluster.host.write(Path(layout.jwt_public), keys.public_pem, PUBLIC)
            cluster.sync_tls(member.name)

    def member_while_stopped(self, member: Member) -> tuple[str, ...]:
        """The new key and certificate for a stopped member; its old certificate revoked
        (nothing presents it any more)."""
        cluster, directory = self.cluster, self.cluster.dir
        layout = directory.layout(member.name)
        cert = Path(layout.cert)
        old = cert.read_bytes() if cert.exists() else None
        identity = self._issue(pki.Role.MEMBER, member.name, member_sans(cluster.spec, member))
        directory.save_identity(identity, cert, Path(layout.key))
        cluster.sync_tls(member.name)
        return self._revoke(old, member.name)


def rekey_patroni(cluster: Cluster) -> None:
    """New keys for every Patroni bundle kept in the state dir. The nodes still present
    the old certificates until the new bundles are deployed: those are kept aside, not
    revoked now; the deploy revokes a spec node's once that node is verified on its new
    one, `certs revoke --superseded` those of nodes a human deploys."""
    for node_dir in sorted((cluster.dir.root / "patroni").glob("*/*")):
        scope, node = node_dir.parent.name, node_dir.name
        old = node_dir / f"{node}.crt"
        if old.exists():
            revocation.keep_superseded(cluster, revocation.patroni_label(scope, node),
                                        old.read_bytes())
        patroni_ops.config(cluster, scope, node, renew=True)
