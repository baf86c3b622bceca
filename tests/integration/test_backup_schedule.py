"""`dcsctl backup schedule`: the timer's units pass systemd's own check, and the command
they would run takes a real backup."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from dcsctl.render import systemd_command_line
from tests.support.lab import LabCluster


def _unit(path: Path) -> dict[str, str]:
    entries = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            entries[key] = value
    return entries


def test_schedule_writes_a_timer_whose_service_takes_a_backup(
    lab: LabCluster, tmp_path: Path
) -> None:
    lab.ok("up")
    units = tmp_path / "units"
    result = lab.ok("backup", "schedule", "--keep", "2", "--max-age", "7d",
                    "--on-calendar", "*:0/30", "--unit-dir", str(units))
    service = units / f"dcsctl-backup-{lab.name}.service"
    timer = units / f"dcsctl-backup-{lab.name}.timer"
    assert f"wrote {service}" in result.out and "to enable: systemctl" in result.out
    assert _unit(timer)["OnCalendar"] == "*:0/30"
    assert _unit(timer)["Persistent"] == "true"

    if shutil.which("systemd-analyze"):
        verified = subprocess.run(["systemd-analyze", "verify", "--man=no", str(service),
                                   str(timer)], capture_output=True, text=True, timeout=60,
                                  check=False)
        problems = [line for line in verified.stderr.splitlines() if str(units) in line]
        assert verified.returncode == 0 and not problems, verified.stderr

    # Run exactly what the service would, with exactly its environment.
    entries = _unit(service)
    environment = dict(word.split("=", 1) for word in shlex.split(entries["Environment"]))
    assert environment["DCSCTL_HOME"] == str(lab.home.resolve())
    for _ in range(3):
        ran = subprocess.run(shlex.split(entries["ExecStart"]), env=environment,
                             capture_output=True, text=True, timeout=120, check=False)
        assert ran.returncode == 0, ran.stderr
    backups = sorted((lab.state / "backups").glob("*.db"))
    assert len(backups) == 2, "--keep 2 applies on every scheduled run"


def test_schedule_without_retention_is_refused(lab: LabCluster, tmp_path: Path) -> None:
    lab.ok("up")
    units = tmp_path / "units"
    result = lab.dcsctl("backup", "schedule", "--unit-dir", str(units))
    assert result.code == 1
    assert "fills the disk" in result.err and "--keep" in result.err
    assert not units.exists()


@pytest.mark.parametrize("word", ["plain", "with space", 'quo"te', "100%"])
def test_exec_start_quoting_survives_systemd_word_splitting(word: str) -> None:
    line = systemd_command_line(["/bin/echo", word])
    assert shlex.split(line.replace("%%", "%")) == ["/bin/echo", word]
