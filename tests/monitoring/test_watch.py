"""`dcsctl status --watch` in a real terminal (tmux): the live view refreshes in place,
shows a killed member as it happens, and Ctrl-C ends it cleanly with exit code 0."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
from pathlib import Path

from dcsctl.wait import wait_until
from tests.monitoring.test_monitoring import cluster_of
from tests.support.lab import VENV_BIN, LabCluster


def _tmux(socket: Path, *argv: str) -> str:
    return subprocess.run(["tmux", "-S", str(socket), *argv], capture_output=True, text=True,
                          timeout=10, check=True).stdout


def test_watch_refreshes_in_place_and_exits_cleanly_on_ctrl_c(lab: LabCluster,
                                                              tmp_path: Path) -> None:
    lab.ok("up")
    socket = tmp_path / "tmux.sock"
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in lab.environ.items()
                   if k.startswith("DCSCTL_"))
    command = (f"env {env} {VENV_BIN}/dcsctl status -f {shlex.quote(str(lab.spec_file))} "
               f"--watch --interval 0.5; echo EXIT=$?; sleep 60")
    _tmux(socket, "new-session", "-d", "-s", "watch", "-x", "160", "-y", "40", command)
    try:
        def screen() -> str:
            return _tmux(socket, "capture-pane", "-p", "-t", "watch")

        first = lab.name + "-0"
        wait_until(lambda: "INDEX/S" in screen() and first in screen(), timeout=20,
                   what="the watch view did not appear", last_error=screen)
        # Refreshes: the clock in the heading changes, and the view is drawn once (in
        # place, not appended below the previous one).
        heading = next(line for line in screen().splitlines() if "Ctrl-C to quit" in line)
        wait_until(lambda: heading not in screen(), timeout=10, what="the view did not refresh")
        assert screen().count("INDEX/S") == 1
        assert screen().count("leader") >= 2  # the summary and one member's role

        # A member killed under the view shows up as unhealthy.
        cluster = cluster_of(lab)
        victim = cluster.spec.members[0].name
        pid = cluster.service(victim).running_pid()
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: "UNHEALTHY" in screen(), timeout=20,
                   what="the killed member never showed as unhealthy")
        assert screen().count("INDEX/S") == 1

        _tmux(socket, "send-keys", "-t", "watch", "C-c")
        wait_until(lambda: "EXIT=" in screen(), timeout=15, what="Ctrl-C did not end the watch")
        final = screen()
        assert "EXIT=0" in final
        assert "Traceback" not in final and "error:" not in final
        assert "UNHEALTHY" in final  # the last view stays on the terminal
    finally:
        subprocess.run(["tmux", "-S", str(socket), "kill-server"], capture_output=True,
                       timeout=10, check=False)


def test_watch_into_a_pipe_writes_each_view_as_it_is_taken(lab: LabCluster,
                                                          tmp_path: Path) -> None:
    """`dcsctl status --watch | tee watch.log`: no terminal to redraw on, so each view is
    appended while the watch runs (not one view at Ctrl-C), and Ctrl-C still exits 0."""
    lab.ok("up")
    log = tmp_path / "watch.log"
    with log.open("w") as sink:
        watcher = subprocess.Popen(
            [str(VENV_BIN / "dcsctl"), "status", "-f", str(lab.spec_file), "--watch",
             "--interval", "0.5"], stdout=sink, stderr=subprocess.PIPE, text=True,
            env=lab.environ)
    try:
        # Three views in the file while it still runs: written as they were taken.
        wait_until(lambda: log.read_text().count("INDEX/S") >= 3, timeout=30,
                   what="the views were not written as they were taken",
                   last_error=lambda: log.read_text()[-500:])
        assert watcher.poll() is None
    finally:
        watcher.send_signal(signal.SIGINT)
        _, errors = watcher.communicate(timeout=15)
    assert watcher.returncode == 0, errors
    assert "Traceback" not in errors
