"""How day-two changes look: members, certificates, maintenance, restarts, upgrades."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dcsctl.report import Listing, Output, human_bytes

if TYPE_CHECKING:
    from pathlib import Path

    from dcsctl.ops.expiry import CertificateCheck
    from dcsctl.ops.maintenance import MaintenanceResult, RestartResult
    from dcsctl.ops.revocation import Revoked
    from dcsctl.ops.rotation import CertificateRow, RotationResult
    from dcsctl.ops.upgrade import UpgradeResult
    from dcsctl.spec_file import SpecFileChange


def spec_file_note(path: Path | None, change: SpecFileChange | None) -> Output:
    """The user's spec file brought up to the cluster: the diff, on stderr."""
    if path is None or change is None:
        return Output(())
    return Output((), notes=(f"updated {path}:\n{change.diff.rstrip()}",))


CERTIFICATES: Listing[CertificateRow] = Listing(
    (("HOLDER", lambda r: r.holder), ("ROLE", lambda r: r.role),
     ("SUBJECT", lambda r: r.subject),
     ("EXPIRES", lambda r: r.not_after.strftime("%Y-%m-%d")),
     ("DAYS LEFT", lambda r: str(r.days_left)), ("VERDICT", lambda r: str(r.verdict))),
    lambda r: {"holder": r.holder, "role": r.role, "path": str(r.path), "subject": r.subject,
               "not_after": r.not_after.isoformat(), "days_left": r.days_left,
               "verdict": str(r.verdict)})


def certificates_output(checked: CertificateCheck) -> Output:
    return Output((CERTIFICATES.table(checked.rows),), CERTIFICATES.records(checked.rows))


def rotation_output(result: RotationResult) -> Output:
    renewed = (f"renewed: {', '.join(result.renewed)}",) if result.renewed else ()
    bundles = (f"Patroni bundles rewritten on this machine (copy them to their nodes): "
               f"{', '.join(result.patroni_bundles)}",) if result.patroni_bundles else ()
    return Output((*renewed, *bundles, result.note))


def revoked_output(result: Revoked) -> Output:
    return Output((*(f"revoked {entry.holder or '(no name)'} serial {entry.serial:x}"
                     for entry in result.added),
                   *(f"already revoked: serial {serial:x}" for serial in result.already),
                   *(f"left to `dcsctl up`: {node}'s replaced certificates (revoked once "
                     "it reaches etcd with its new bundle; one may be back in use)"
                     for node in result.left)))


def maintenance_output(result: MaintenanceResult) -> Output:
    sizes = (f"{name}: {human_bytes(before)} -> "
             f"{human_bytes(result.db_size_after.get(name, before))}"
             for name, before in result.db_size_before.items())
    disarmed = (f"disarmed alarms: {', '.join(result.disarmed)}",) if result.disarmed else ()
    return Output((f"compacted to revision {result.revision}", *sizes, *disarmed))


def restart_output(result: RestartResult) -> Output:
    return Output((f"restarted {', '.join(result.order)}",))


def version_change_output(result: UpgradeResult, verb: str) -> Output:
    """`upgrade` and `downgrade` (`verb`): the snapshot taken first, the members rolled."""
    snapshot = (f"snapshot before the change: {result.snapshot}",) if result.snapshot else ()
    return Output((*snapshot,
                   f"etcd {result.from_version} -> {result.to_version}: {verb} "
                   f"{', '.join(result.upgraded) or 'nothing (already there)'}"
                   + (f"; cluster version {result.cluster_version}"
                      if result.cluster_version else "")))
