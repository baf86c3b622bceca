"""`dcsctl certs check`: every certificate dcsctl issued for a cluster with its expiry
verdict, and the same dates written for node_exporter (an alert before one expires;
`dcsctl backup` writes them too, so one timer keeps both facts fresh)."""

from __future__ import annotations

from dataclasses import dataclass

from dcsctl.ops import rotation, textfiles
from dcsctl.ops.cluster import Cluster
from dcsctl.ops.rotation import CertificateRow, Verdict


@dataclass(frozen=True)
class CertificateCheck:
    rows: tuple[CertificateRow, ...]
    warnings: tuple[str, ...]  # the facts could not be written: the check itself stands

    @property
    def all_ok(self) -> bool:
        return all(row.verdict is Verdict.OK for row in self.rows)


def check(cluster: Cluster, warn_days: int = rotation.WARN_DAYS) -> CertificateCheck:
    rows = tuple(rotation.inventory(cluster, warn_days))
    warning = textfiles.best_effort(lambda: textfiles.record_certificates(cluster, rows))
    return CertificateCheck(rows, (warning,) if warning else ())
