"""`dcsctl backup schedule`: a systemd timer on the control machine that runs `dcsctl
backup` for a cluster — lab or SSH, since a backup streams over TLS from wherever the
admin certificate is, and that is here.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from dcsctl import render
from dcsctl.errors import DcsctlError, NotFound
from dcsctl.ops import textfiles
from dcsctl.ops.cluster import Cluster
from dcsctl.state import PUBLIC


@dataclass(frozen=True)
class Schedule:
    units: tuple[Path, ...]
    timer: str
    enabled: bool
    enable_command: tuple[str, ...]  # what to run when dcsctl could not enable it itself
    warnings: tuple[str, ...] = ()  # facts for Prometheus that could not be written


def default_unit_dir(environ: dict[str, str] | None = None) -> Path:
    if os.geteuid() == 0:
        return Path("/etc/systemd/system")
    config = (environ or {}).get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "systemd" / "user"


def _backup_argv(cluster: Cluster, keep: int | None, max_age: dt.timedelta | None,
                 directory: Path | None) -> list[str]:
    argv = [sys.executable, "-m", "dcsctl", "backup", "--cluster", cluster.spec.name]
    if keep is not None:
        argv += ["--keep", str(keep)]
    if max_age is not None:
        hours = int(max_age.total_seconds() // 3600)  # parse_age gives whole hours
        argv += ["--max-age", f"{hours}h"]
    if directory is not None:
        argv += ["--dir", str(directory.resolve())]
    return argv


def schedule(
    cluster: Cluster,
    *,
    on_calendar: str,
    keep: int | None,
    max_age: dt.timedelta | None,
    directory: Path | None,
    unit_dir: Path | None,
) -> Schedule:
    """Write the timer and its service (and enable them when systemd runs here), and
    record the interval for Prometheus (an alert when backups stop coming)."""
    if not cluster.dir.exists():
        raise NotFound(f"no cluster named {cluster.spec.name!r} in {cluster.context.home}",
                       fix="create it with `dcsctl up` first")
    if keep is None and max_age is None:
        raise DcsctlError("a schedule without retention fills the disk",
                          fix="pass --keep N and/or --max-age 7d")
    interval = textfiles.calendar_interval(cluster, on_calendar)  # bad: nothing written
    environ = dict(cluster.context.environ)
    environment = {"DCSCTL_HOME": str(cluster.context.home.resolve())}
    for variable in ("DCSCTL_ETCD_BIN_DIR", "DCSCTL_TEXTFILE_DIR"):
        if environ.get(variable):
            environment[variable] = environ[variable]
    units = render.backup_units(cluster.spec.name, _backup_argv(cluster, keep, max_age,
                                                                 directory),
                                environment, on_calendar)
    target = unit_dir or default_unit_dir(environ)
    written = []
    for name, content in units.items():
        path = target / name
        cluster.host.write(path, content, PUBLIC)
        written.append(path)
    timer = next(name for name in units if name.endswith(".timer"))
    user = [] if os.geteuid() == 0 else ["--user"]
    enable = ("systemctl", *user, "enable", "--now", timer)
    enabled = False
    if unit_dir is None and Path("/run/systemd/system").is_dir():
        reload = cluster.host.run(["systemctl", *user, "daemon-reload"])
        enabled = reload.ok and cluster.host.run(list(enable)).ok
    warning = textfiles.best_effort(lambda: textfiles.record_schedule(cluster, interval))
    return Schedule(tuple(written), timer, enabled, enable, (warning,) if warning else ())
