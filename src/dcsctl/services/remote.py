"""Member services on a host reached through a Host adapter (SSH): systemd, or a plain
detached process for hosts without systemd (containers, and the SSH test hosts).

The shell programs are constants; every value reaches them as a positional argument, so
nothing the spec says is ever parsed by a shell.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePath

from dcsctl.errors import DcsctlError
from dcsctl.hosts.protocol import Host
from dcsctl.services.process import terminate

# Prints the PID if the pidfile's process is alive and still the one we started (same
# start time in /proc/<pid>/stat, field 22), else exits 1.
ALIVE_SCRIPT = r"""
read -r pid ticks < "$1" 2>/dev/null || exit 1
stat=$(cat "/proc/$pid/stat" 2>/dev/null) || exit 1
set -- ${stat##*) }
[ "$1" != Z ] || exit 1
shift 19
[ "$1" = "$ticks" ] || exit 1
echo "$pid"
"""

# setsid: etcd outlives the SSH session; env -i: it sees its configuration and nothing of
# the login environment; setpriv: it runs as the service user, not as root.
# The log is opened by the service user, never by root, so a link planted in its place
# reaches only what that user may write anyway. Root only creates it when it is missing
# (the user may not write its directory, e.g. /var/log): `set -C` creates with O_EXCL,
# which never follows a link, and `chown -h` changes the new file itself, never a target.
START_SCRIPT = r"""
set -eu
log=$1 pidfile=$2 user=$3
shift 3
mkdir -p "$(dirname "$log")" "$(dirname "$pidfile")"
if [ -L "$log" ]; then
  echo "$log is a symbolic link; refusing to log through it (remove it)" >&2
  exit 1
fi
if [ ! -e "$log" ]; then
  (umask 027 && set -C && : > "$log")
  chown -h "$user" "$log"
fi
owner=$(stat -c %U "$log")
if [ "$owner" != "$user" ]; then
  echo "$log belongs to $owner, not $user, who writes it (chown it to $user)" >&2
  exit 1
fi
setsid setpriv --reuid="$user" --regid="$user" --init-groups \
  sh -c 'log=$1; shift; exec env -i "$@" >>"$log" 2>&1' sh "$log" "$@" </dev/null &
pid=$!
stat=$(cat "/proc/$pid/stat")
set -- ${stat##*) }
shift 19
echo "$pid $1" > "$pidfile.tmp"
mv -f "$pidfile.tmp" "$pidfile"
echo "$pid"
"""


class RemoteProcessService:
    """etcd as a detached process on the host, found again through its pidfile."""

    def __init__(self, host: Host, pidfile: PurePath, logfile: PurePath,
                 user: str) -> None:
        self.host = host
        self.pidfile = pidfile
        self.logfile = logfile
        self.user = user

    def running_pid(self) -> int | None:
        result = self.host.run(["sh", "-c", ALIVE_SCRIPT, "sh", str(self.pidfile)])
        return int(result.stdout.strip()) if result.ok and result.stdout.strip() else None

    def is_active(self) -> bool:
        return self.running_pid() is not None

    def start(self, executable: PurePath, environment: Mapping[str, str]) -> int | None:
        running = self.running_pid()
        if running is not None:
            return running
        variables = [f"{key}={value}" for key, value in environment.items()]
        result = self.host.run([
            "sh", "-c", START_SCRIPT, "sh", str(self.logfile), str(self.pidfile), self.user,
            "PATH=/usr/local/bin:/usr/bin:/bin", *variables, str(executable),
        ])
        if not result.ok:
            raise DcsctlError(
                f"{self.host.name}: could not start etcd ({result.stderr.strip()})",
                fix=f"check {executable} and the service user {self.user!r} on that host",
            )
        return int(result.stdout.strip())

    def stop(self, *, timeout: float = 15.0) -> bool:
        pid = self.running_pid()
        if pid is None:
            return False
        terminate(lambda sig: self.host.run(["kill", "-s", sig.name.removeprefix("SIG"), str(pid)]),
                  lambda: self.running_pid() is not None, timeout=timeout)
        self.host.run(["rm", "-f", str(self.pidfile)])
        return True

    def log_tail(self, lines: int = 20) -> list[str]:
        result = self.host.run(["tail", "-n", str(lines), str(self.logfile)])
        return result.stdout.splitlines() if result.ok else []


class SystemdService:
    """etcd as the systemd unit dcsctl writes (`etcd.service`)."""

    def __init__(self, host: Host, unit: str = "etcd.service") -> None:
        self.host = host
        self.unit = unit

    def running_pid(self) -> int | None:
        result = self.host.run(["systemctl", "show", "--property=MainPID", "--value",
                                self.unit])
        pid = result.stdout.strip()
        return int(pid) if result.ok and pid.isdigit() and pid != "0" else None

    def is_active(self) -> bool:
        state = self.host.run(["systemctl", "is-active", self.unit]).stdout.strip()
        return state in {"active", "activating", "reloading"}

    def start(self, executable: PurePath, environment: Mapping[str, str]) -> int | None:
        # The unit reads its EnvironmentFile itself. --no-block: a member of a new cluster
        # is "started" only once its peers are up, so all members must start together.
        for argv in (["systemctl", "daemon-reload"],
                     ["systemctl", "enable", self.unit],
                     ["systemctl", "start", "--no-block", self.unit]):
            result = self.host.run(argv)
            if not result.ok:
                raise DcsctlError(
                    f"{self.host.name}: `{' '.join(argv)}` failed ({result.stderr.strip()})",
                    fix=f"see `journalctl -u {self.unit}` on that host",
                )
        return self.running_pid()

    def stop(self, *, timeout: float = 15.0) -> bool:
        was_active = self.is_active()
        self.host.run(["systemctl", "stop", self.unit], timeout=timeout + 30)
        return was_active

    def log_tail(self, lines: int = 20) -> list[str]:
        result = self.host.run(["journalctl", "--unit", self.unit, "--lines", str(lines),
                                "--no-pager", "--output", "cat"])
        return result.stdout.splitlines()
