"""The SSH adapter's command line: the destination and the remote command are never options."""

from __future__ import annotations

import subprocess
from pathlib import Path

from dcsctl.hosts.ssh import Destination, SshHost, SshOptions


def _host(destination: str, tmp_path: Path) -> SshHost:
    return SshHost("dcs-00", Destination.parse(destination), SshOptions(user="admin"), tmp_path,
                   sudo=True)


def test_the_destination_comes_after_the_end_of_options(tmp_path: Path) -> None:
    argv = _host("dcs-00", tmp_path).ssh_argv()
    assert argv[-2:] == ["--", "dcs-00"]
    assert argv.count("--") == 1


def test_openssh_reads_nothing_after_the_destination_as_an_option(tmp_path: Path) -> None:
    # `ssh -G` prints the configuration it would use, without connecting: a word after the
    # destination that OpenSSH took as an option would show up in it.
    argv = _host("dcs-00", tmp_path).ssh_argv()
    shown = subprocess.run([argv[0], "-G", *argv[1:], "-oProxyCommand=touch /tmp/pwned",
                            "-lmallory"], capture_output=True, text=True, check=True).stdout
    settings = dict(line.split(" ", 1) for line in shown.splitlines() if " " in line)
    assert settings["user"] == "admin"
    assert settings.get("proxycommand", "none") == "none"
    assert settings["hostname"] == "dcs-00"
