"""dcsctl's facts for Prometheus: certificate expiry and backup age, written as
node_exporter textfiles on the control machine.

The directory is DCSCTL_TEXTFILE_DIR, else `$DCSCTL_HOME/textfile`; point node_exporter's
`--collector.textfile.directory` at it. Each file is replaced atomically (node_exporter
may read at any moment) and names its cluster, so clusters share one directory.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from dcsctl import textfile
from dcsctl.errors import DcsctlError
from dcsctl.files import atomic_write
from dcsctl.ops.cluster import Cluster
from dcsctl.state import PUBLIC

if TYPE_CHECKING:
    from dcsctl.ops.backup import BackupResult
    from dcsctl.ops.rotation import CertificateRow


def best_effort(write: Callable[[], Path]) -> str | None:
    """Write facts without failing the command that produced them: a warning instead."""
    try:
        write()
    except (OSError, DcsctlError) as exc:
        return f"could not write dcsctl's facts for Prometheus: {exc}"
    return None


def directory(environ: Mapping[str, str], home: Path) -> Path:
    return Path(environ.get("DCSCTL_TEXTFILE_DIR") or home / "textfile")


def _write(cluster: Cluster, subject: str, families: Sequence[textfile.Family]) -> Path:
    path = directory(cluster.context.environ, cluster.context.home) / textfile.file_name(
        cluster.spec.name, subject)
    atomic_write(path, textfile.render(families), PUBLIC)
    return path


def record_certificates(cluster: Cluster, rows: Sequence[CertificateRow]) -> Path:
    samples = [textfile.Sample({"cluster": cluster.spec.name, "holder": r.holder,
                                "role": r.role}, textfile.timestamp(r.not_after))
               for r in rows]
    return _write(cluster, "certs", [textfile.Family(
        textfile.CERT_EXPIRY, "When each certificate dcsctl issued expires (notAfter).",
        samples)])


def record_backup(cluster: Cluster, result: BackupResult) -> Path:
    labels = {"cluster": cluster.spec.name}
    taken = dt.datetime.fromisoformat(result.backup.manifest.taken_at)
    return _write(cluster, "backup", [
        textfile.Family(textfile.BACKUP_SUCCESS, "When the last verified backup was taken.",
                        [textfile.Sample(labels, textfile.timestamp(taken))]),
        textfile.Family(textfile.BACKUP_SIZE, "Size of the last verified backup.",
                        [textfile.Sample(labels, result.backup.manifest.db_size)]),
        textfile.Family(textfile.BACKUP_DURATION, "How long the last verified backup took.",
                        [textfile.Sample(labels, round(result.seconds, 3))]),
    ])


def record_backup_failure(cluster: Cluster) -> Path:
    return _write(cluster, "backup-failure", [textfile.Family(
        textfile.BACKUP_FAILURE, "When a backup last failed.",
        [textfile.Sample({"cluster": cluster.spec.name},
                         textfile.timestamp(cluster.context.clock()))])])


_ITERATION = re.compile(r"(?:Next elapse|Iter\. #\d+):\s+\w+ (\S+ \S+) (\S+)")


def calendar_interval(cluster: Cluster, on_calendar: str) -> int:
    """Seconds between two runs of a systemd calendar expression: the shorthands from a
    table, anything else from the next two elapses `systemd-analyze calendar` computes."""
    if on_calendar in textfile.CALENDAR_SHORTHANDS:
        return textfile.CALENDAR_SHORTHANDS[on_calendar]
    result = cluster.host.run(["env", "TZ=UTC", "LC_ALL=C", "systemd-analyze", "calendar",
                               "--iterations=2", on_calendar])
    moments = [dt.datetime.fromisoformat(f"{day}+00:00")
               for day, _zone in _ITERATION.findall(result.stdout)]
    if not result.ok or len(moments) < 2:
        raise DcsctlError(
            f"cannot tell how often --on-calendar {on_calendar!r} runs "
            f"({(result.stderr or result.stdout).strip()[-200:]})",
            fix="write it in systemd's calendar syntax, e.g. hourly, daily or *:0/15 "
            "(check it with `systemd-analyze calendar EXPR`)")
    return int((moments[1] - moments[0]).total_seconds())


def record_schedule(cluster: Cluster, interval_s: int) -> Path:
    labels = {"cluster": cluster.spec.name}
    return _write(cluster, "backup-schedule", [
        textfile.Family(textfile.SCHEDULE_INTERVAL, "Seconds between two scheduled backups.",
                        [textfile.Sample(labels, interval_s)]),
        textfile.Family(textfile.SCHEDULE_CREATED, "When the backup schedule was written.",
                        [textfile.Sample(labels,
                                         textfile.timestamp(cluster.context.clock()))]),
    ])
