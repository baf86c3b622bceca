"""dcsctl's facts in node_exporter's textfile format, and how often a schedule runs."""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

import pytest

from dcsctl import spec, textfile
from dcsctl.errors import DcsctlError
from dcsctl.ops import textfiles
from dcsctl.ops.cluster import Context


def test_render_escapes_label_values_and_writes_help_and_type() -> None:
    text = textfile.render([textfile.Family("dcsctl_x", "An example.", [
        textfile.Sample({"holder": 'pg "a"\\b', "cluster": "dcs"}, 1.5),
        textfile.Sample({"cluster": "dcs", "holder": "dcs-0"}, 1767225600.0),
    ])]).decode()
    assert text == ("# HELP dcsctl_x An example.\n# TYPE dcsctl_x gauge\n"
                    'dcsctl_x{cluster="dcs",holder="pg \\"a\\"\\\\b"} 1.5\n'
                    'dcsctl_x{cluster="dcs",holder="dcs-0"} 1767225600\n')


def test_promtool_accepts_the_facts_file(tmp_path: Path) -> None:
    path = tmp_path / "x.prom"
    path.write_bytes(textfile.render([textfile.Family(
        textfile.CERT_EXPIRY, "When it expires.",
        [textfile.Sample({"cluster": "dcs", "holder": "dcs-0", "role": "member"},
                         textfile.timestamp(dt.datetime(2027, 1, 1, tzinfo=dt.UTC)))])]))
    checked = subprocess.run(["promtool", "check", "metrics"], stdin=path.open("rb"),
                             capture_output=True, text=True, timeout=30, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize(("expression", "seconds"), [
    ("hourly", 3600), ("daily", 86400), ("*:0/15", 900), ("Mon *-*-* 02:00", 7 * 86400),
])
def test_calendar_interval(tmp_path: Path, expression: str, seconds: int) -> None:
    cluster = Context({"DCSCTL_HOME": str(tmp_path)}).cluster(spec.lab_spec())
    assert textfiles.calendar_interval(cluster, expression) == seconds


def test_a_calendar_expression_systemd_rejects_is_refused(tmp_path: Path) -> None:
    cluster = Context({"DCSCTL_HOME": str(tmp_path)}).cluster(spec.lab_spec())
    with pytest.raises(DcsctlError, match="cannot tell how often"):
        textfiles.calendar_interval(cluster, "every other tuesday")
