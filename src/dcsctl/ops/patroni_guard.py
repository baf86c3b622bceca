"""Before an operation that makes every etcd client reconnect, the Patroni nodes'
deployed certificates must still open the door.

etcd checks a client certificate (and the CRL) when a connection opens, not while it
lasts: a Patroni node on a revoked or expired certificate keeps working on its open
connection and loses the DCS at the next reconnect. Measured on a lab cluster with a
Patroni 4.1.5 primary: revoked, it stayed primary for 120 s; a routine `dcsctl restart`
made it reconnect and it demoted 21.6 s later. So a restart, upgrade, downgrade, key or
CA rotation, member removal or replacement, or restore first reads the certificate each
managed node has *deployed* (over SSH, not the control machine's copy) and refuses while
one would be refused, unless the user accepts that node's risk by name.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import PurePosixPath

from dcsctl import pki
from dcsctl.errors import DcsctlError, EnvironmentProblem
from dcsctl.ops import patroni_deploy, revocation
from dcsctl.ops.cluster import Cluster

# An operation and a margin: a certificate that expires within it counts as expired.
MARGIN = dt.timedelta(hours=24)


@dataclass(frozen=True)
class NodeRisk:
    scope: str
    node: str
    problem: str

    @property
    def name(self) -> str:
        return f"{self.scope}/{self.node}"


def _split(bundle: bytes) -> list[bytes]:
    marker = b"-----END CERTIFICATE-----"
    return [part + marker + b"\n" for part in bundle.split(marker) if part.strip()]


def node_risks(cluster: Cluster, *, trusted_after: bytes | None = None,
               margin: dt.timedelta = MARGIN) -> list[NodeRisk]:
    """Every spec node whose deployed certificate etcd would refuse at its next
    connection (or cannot be read)."""
    settings = cluster.spec.patroni
    if settings is None:
        return []
    trusted = trusted_after or cluster.dir.trusted_cas() or b""
    revoked = {entry.serial for entry in revocation.revoked(cluster.dir)}
    now = cluster.context.clock()
    risks = []
    for scope in settings.scopes:
        for node in scope.nodes:
            path = PurePosixPath(node.bundle_dir) / f"{node.name}.crt"
            try:
                cert = cluster.database_host(scope.name, node.name).read(path)
            except DcsctlError as exc:
                risks.append(NodeRisk(scope.name, node.name,
                                      f"its certificate cannot be read ({exc.message})"))
                continue
            if cert is None:
                risks.append(NodeRisk(scope.name, node.name, f"no certificate at {path}"))
                continue
            risks += [NodeRisk(scope.name, node.name, problem)
                      for problem in certificate_problems(cert, trusted, revoked, now, margin)]
    return risks


def certificate_problems(cert: bytes, trusted: bytes, revoked: set[int], now: dt.datetime,
              margin: dt.timedelta) -> list[str]:
    try:
        facts = pki.inspect(cert)
        serial = pki.serial_number(cert)
    except ValueError:
        return ["its certificate file is not a PEM certificate"]
    found = []
    if facts.not_after <= now:
        found.append(f"its certificate expired at {facts.not_after:%Y-%m-%d %H:%M} UTC")
    elif facts.not_after - now <= margin:
        found.append(f"its certificate expires at {facts.not_after:%Y-%m-%d %H:%M} UTC, "
                     f"within {margin.total_seconds() / 3600:g} h")
    if facts.not_before > now:
        found.append(f"its certificate is valid only from {facts.not_before:%Y-%m-%d %H:%M}")
    if serial in revoked:
        found.append(f"its certificate (serial {serial:x}) is revoked")
    if not any(pki.is_issued_by(cert, ca) for ca in _split(trusted)):
        found.append("its certificate was issued by a CA the members will not trust")
    return found


UP_FIX = ("run `dcsctl up`: it deploys a new certificate to each node and checks the node "
          "reached etcd with it; then run this again")


def require_fit(cluster: Cluster, operation: str, accepted: Collection[str], *,
                trusted_after: bytes | None = None, fix: str = UP_FIX,
                details: tuple[str, ...] = ()) -> tuple[str, ...]:
    """Refuse `operation` (exit 4) while a managed node would lose the DCS at its next
    reconnect; the risks the user accepted by name come back as warnings. `fix` and
    `details` (before the nodes' problems) for a caller that tried a fix already."""
    risks = node_risks(cluster, trusted_after=trusted_after)
    refused = [r for r in risks if r.name not in accepted]
    if refused:
        names = sorted({r.name for r in refused})
        raise EnvironmentProblem(
            f"{operation} makes every etcd client reconnect, and Patroni node"
            f"{'s' if len(names) > 1 else ''} {', '.join(names)} would then be refused "
            "(a primary demotes itself when it loses the DCS)",
            fix=f"{fix}. Or accept the risk by name: "
            + " ".join(f"--accept-patroni-risk {name}" for name in names),
            details=(*details, *(f"{r.name}: {r.problem}" for r in refused)),
        )
    return tuple(f"{r.name}: {r.problem} (risk accepted)" for r in risks)


@dataclass(frozen=True)
class Prepared:
    """Patroni nodes made ready for a restart `up` is about to do."""

    note: str  # what the deploy did ("" when the spec lists no node)
    warnings: tuple[str, ...]  # risks accepted by name


def deploy_then_require_fit(cluster: Cluster, operation: str,
                            accepted: Collection[str]) -> Prepared:
    """`up` restarts members (new settings, a new etcd): the bundles it would deploy
    afterwards go out first, so a node on a stale but renewable certificate reconnects
    with a good one; then the guard of every reconnecting operation. A deploy that fails
    (the node named, its previous files back) refuses only if a node is then at risk."""
    if not patroni_deploy.managed(cluster):
        return Prepared("", ())
    failure: DcsctlError | None = None
    try:
        note = patroni_deploy.deploy(cluster).note
    except DcsctlError as exc:
        failure = exc
        note = f"deploy failed ({exc.message})"
    fix = ((failure.fix or "fix what the deploy reports, then run `dcsctl up` again")
           if failure else "check the node's bundle_dir and its host over SSH, then run "
           "`dcsctl up` again")
    warnings = require_fit(cluster, operation, accepted, fix=fix,
                           details=(f"deploy before the restart: {failure.message}",)
                           if failure else ())
    if failure:
        warnings += (f"Patroni bundles before the restart: {failure.message}",)
    return Prepared(f"Patroni bundles first: {note}", warnings)
