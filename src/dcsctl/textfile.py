"""Facts etcd cannot export, as Prometheus text for node_exporter's textfile collector.

Pure: families in, bytes out. dcsctl writes one file per cluster and subject
(`dcsctl-<cluster>-certs.prom`, `-backup.prom`, `-backup-failure.prom`,
`-backup-schedule.prom`) so that each writer replaces only its own facts, atomically.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

CERT_EXPIRY = "dcsctl_certificate_expiry_timestamp_seconds"
BACKUP_SUCCESS = "dcsctl_backup_last_success_timestamp_seconds"
BACKUP_SIZE = "dcsctl_backup_last_success_size_bytes"
BACKUP_DURATION = "dcsctl_backup_last_success_duration_seconds"
BACKUP_FAILURE = "dcsctl_backup_last_failure_timestamp_seconds"
SCHEDULE_INTERVAL = "dcsctl_backup_schedule_interval_seconds"
SCHEDULE_CREATED = "dcsctl_backup_schedule_created_timestamp_seconds"


@dataclass(frozen=True)
class Sample:
    labels: Mapping[str, str]
    value: float


@dataclass(frozen=True)
class Family:
    name: str
    help: str
    samples: Sequence[Sample] = field(default_factory=tuple)
    type: str = "gauge"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def render(families: Sequence[Family]) -> bytes:
    """The text exposition format (HELP, TYPE, one line per sample)."""
    lines: list[str] = []
    for family in families:
        lines.append(f"# HELP {family.name} {family.help}")
        lines.append(f"# TYPE {family.name} {family.type}")
        for sample in family.samples:
            labels = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(sample.labels.items()))
            lines.append(f"{family.name}{{{labels}}} {_number(sample.value)}")
    return ("\n".join(lines) + "\n").encode()


def timestamp(moment: dt.datetime) -> float:
    return moment.timestamp()


def file_name(cluster: str, subject: str) -> str:
    return f"dcsctl-{cluster}-{subject}.prom"


# systemd's calendar shorthands (systemd.time(7)) and how often each fires. Anything
# else is asked of `systemd-analyze calendar` by the caller.
CALENDAR_SHORTHANDS: dict[str, int] = {
    "minutely": 60, "hourly": 3600, "daily": 86400, "weekly": 7 * 86400,
    "monthly": 31 * 86400, "quarterly": 92 * 86400, "semiannually": 184 * 86400,
    "yearly": 366 * 86400, "annually": 366 * 86400,
}
