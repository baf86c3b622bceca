"""A member host reached with the system OpenSSH client.

OpenSSH rather than a Python SSH library: the user's ~/.ssh/config, agent, jump hosts and
known_hosts then just work, and one master connection per host (ControlMaster) is reused
by every command. Commands are argv lists, quoted here and nowhere else; file contents
and secrets travel on stdin, never in a command line.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import stat
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath

from dcsctl.errors import DcsctlError, EnvironmentProblem
from dcsctl.hosts.protocol import UNCHANGED_EXIT, Result

SSH_FAILED = 255  # ssh's own exit code: the connection, not the remote command, failed

# Written once, quoted once: the data arrives as positional arguments and on stdin.
# umask 077 makes the temp file private before a byte lands in it; the final mode and
# owner are set before the rename, so the file never appears with the wrong ones.
WRITE_SCRIPT = r"""
set -eu
path=$1 mode=$2 owner=$3 want=$4
if [ -f "$path" ] && [ ! -L "$path" ] \
   && [ "$(sha256sum < "$path" | cut -d' ' -f1)" = "$want" ] \
   && [ "$(stat -c %a "$path")" = "$mode" ] \
   && { [ -z "$owner" ] || [ "$(stat -c %U:%G "$path")" = "$owner" ]; }; then
  cat > /dev/null
  exit 3
fi
dir=$(dirname "$path")
mkdir -p "$dir"
tmp=$(umask 077 && mktemp "$dir/.dcsctl.XXXXXX")
trap 'rm -f "$tmp"' EXIT
cat > "$tmp"
if [ "$(sha256sum < "$tmp" | cut -d' ' -f1)" != "$want" ]; then
  echo "content arrived damaged" >&2
  exit 1
fi
[ -z "$owner" ] || chown "$owner" "$tmp"
chmod "$mode" "$tmp"
sync "$tmp"
mv -f "$tmp" "$path"
trap - EXIT
sync "$dir"
"""

READ_SCRIPT = r"""
[ -e "$1" ] || exit 3
exec cat "$1"
"""


@dataclass(frozen=True)
class SshOptions:
    user: str | None = None
    port: int | None = None
    identity_file: str | None = None
    known_hosts_file: str | None = None
    config_file: str | None = None
    strict_host_key_checking: bool = True
    connect_timeout_s: int = 10


@dataclass(frozen=True)
class Destination:
    host: str
    user: str | None = None
    port: int | None = None

    @classmethod
    def parse(cls, text: str) -> Destination:
        user, _, rest = text.rpartition("@")
        host, _, port = rest.partition(":")
        return cls(host, user or None, int(port) if port else None)

    def __str__(self) -> str:
        return (f"{self.user}@" if self.user else "") + self.host + (
            f":{self.port}" if self.port else ""
        )


class SshHost:
    """One member host. `sudo` puts `sudo -n` in front of every command (never a prompt)."""

    def __init__(
        self,
        name: str,
        destination: Destination,
        options: SshOptions,
        control_dir: Path,
        *,
        sudo: bool,
    ) -> None:
        self.name = name
        self.destination = destination
        self.options = options
        self.control_dir = control_dir
        self.sudo = sudo

    def ssh_options(self) -> list[str]:
        """`ssh` and its options, without the destination (no secrets in it, ever)."""
        options = self.options
        argv = ["ssh"]
        if options.config_file:
            argv += ["-F", options.config_file]
        port = self.destination.port or options.port
        if port:
            argv += ["-p", str(port)]
        user = self.destination.user or options.user
        if user:
            argv += ["-l", user]
        if options.identity_file:
            argv += ["-i", options.identity_file, "-o", "IdentitiesOnly=yes"]
        if options.known_hosts_file:
            argv += ["-o", f"UserKnownHostsFile={options.known_hosts_file}"]
        argv += [
            "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=" + (
                "yes" if options.strict_host_key_checking else "accept-new"
            ),
            "-o", f"ConnectTimeout={options.connect_timeout_s}",
            "-o", "ServerAliveInterval=5",
            "-o", "ServerAliveCountMax=3",
            "-o", "ControlMaster=auto",
            "-o", f"ControlPath={self.control_dir}/%C",
            "-o", "ControlPersist=60",
            "-o", "LogLevel=ERROR",
        ]
        return argv

    def ssh_argv(self) -> list[str]:
        """The ssh command line up to the remote command.

        The destination comes after `--`: then OpenSSH takes it, and every word after it,
        as a host and a command, never as options (checked on OpenSSH 9.2: `ssh -- -Fx`
        is refused as "hostname contains invalid characters", while `ssh host -l x` still
        reads `-l x` as an option). The spec refuses a destination starting with '-' too.
        """
        return [*self.ssh_options(), "--", self.destination.host]

    def _exec(self, argv: Sequence[str], stdin: bytes | None, timeout: float
              ) -> subprocess.CompletedProcess[bytes]:
        remote = ["sudo", "-n", "--", *argv] if self.sudo else list(argv)
        command = [*self.ssh_argv(), shlex.join(remote)]
        try:
            completed = subprocess.run(
                command, input=stdin if stdin is not None else b"", capture_output=True,
                timeout=timeout, check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise DcsctlError(
                f"{self.name}: `{shlex.join(argv)}` did not finish within {timeout:.0f} s",
                fix=f"check that {self.destination} is responsive (load, disk), then run again",
            ) from exc
        stderr = completed.stderr.decode(errors="replace")
        if completed.returncode == SSH_FAILED:
            raise unreachable(self.name, self.destination, stderr,
                              self.options.known_hosts_file)
        if self.sudo and ("sudo: a password is required" in stderr
                          or "is not in the sudoers file" in stderr
                          or "sudo: not found" in stderr):
            raise EnvironmentProblem(
                f"{self.name}: sudo on {self.destination} is not usable without a password "
                f"({stderr.strip().splitlines()[-1]})",
                fix="give the SSH user passwordless sudo on that host (dcsctl never types a "
                "password), or log in as root and set `ssh: {sudo: false}` in the spec",
            )
        return completed

    def run(
        self, argv: Sequence[str], *, stdin: bytes | None = None, timeout: float = 60.0
    ) -> Result:
        completed = self._exec(argv, stdin, timeout)
        return Result.of(argv, completed)

    def write(
        self, path: PurePath, content: bytes, mode: int, owner: str | None = None
    ) -> bool:
        want = hashlib.sha256(content).hexdigest()
        argv = ["sh", "-c", WRITE_SCRIPT, "sh", str(path), format(mode, "o"), owner or "", want]
        result = self.run(argv, stdin=content)
        if result.returncode == UNCHANGED_EXIT:
            return False
        if not result.ok:
            raise DcsctlError(
                f"{self.name}: could not write {path} ({result.stderr.strip() or 'no output'})",
                fix=f"check free space and permissions on {self.destination}, then run again",
            )
        return True

    def read(self, path: PurePath) -> bytes | None:
        completed = self._exec(["sh", "-c", READ_SCRIPT, "sh", str(path)], None, 60.0)
        if completed.returncode == UNCHANGED_EXIT:
            return None
        if completed.returncode != 0:
            raise DcsctlError(
                f"{self.name}: could not read {path} ({completed.stderr.decode().strip()})",
                fix=f"check permissions on {self.destination} (sudo?), then run again",
            )
        return completed.stdout

    def close(self) -> None:
        """End the shared master connection (it would otherwise linger ControlPersist s)."""
        subprocess.run([*self.ssh_options(), "-O", "exit", "--", self.destination.host],
                       capture_output=True, timeout=10, check=False)


def control_dir() -> Path:
    """Where ssh keeps its master sockets: short (a socket path must fit 108 bytes) and
    private, so no other user can ride on our connections."""
    path = Path(tempfile.gettempdir()) / f"dcsctl-ssh-{os.getuid()}"
    path.mkdir(mode=0o700, exist_ok=True)
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise EnvironmentProblem(
            f"{path} is not a private directory of this user",
            fix=f"remove {path} (something else created it) and run again",
        )
    return path


def unreachable(name: str, destination: Destination, stderr: str,
                known_hosts: str | None = None) -> EnvironmentProblem:
    stderr = stderr.replace("\r\n", "\n")  # ssh ends its lines with CR LF at times
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    last = lines[-1] if lines else "ssh failed"
    if changed := CHANGED_KEY.search(stderr):
        return changed_host_key(name, destination, stderr, changed.group(1), known_hosts)
    if "Host key verification failed" in stderr or "REMOTE HOST IDENTIFICATION" in stderr:
        fix = (f"verify {destination}'s host key out of band, then add it to "
               f"{known_hosts or 'known_hosts'} (e.g. `ssh-keyscan` and compare fingerprints); "
               "dcsctl never accepts an unknown or changed host key")
    elif "Permission denied" in stderr:
        fix = (f"make key-based login to {destination} work (`ssh {destination}` must not ask "
               "for a password): ssh-copy-id, ssh.identity_file or your ssh agent")
    else:
        fix = f"check that `ssh {destination}` works from this machine, then run again"
    return EnvironmentProblem(f"{name}: cannot reach {destination} over SSH ({last})", fix=fix)


# OpenSSH's words (9.2) when a known host presents another key than the one on file.
CHANGED_KEY = re.compile(r"Host key for (\S+) has changed and you have requested strict")
SENT_KEY = re.compile(r"The fingerprint for the (\S+) key sent by the remote host is\s+(\S+?)\.?$",
                      re.MULTILINE)
OFFENDING = re.compile(r"Offending \S+ key in (.+):(\d+)\s*$", re.MULTILINE)


def changed_host_key(name: str, destination: Destination, stderr: str, known_as: str,
                     known_hosts: str | None) -> EnvironmentProblem:
    """The host answered with another host key than known_hosts holds: either it was
    reinstalled (its key regenerated) or someone is in between. dcsctl stops, writes
    nothing, and says how to accept the new key once it is verified."""
    sent = SENT_KEY.search(stderr)
    key_type, fingerprint = (sent.group(1), sent.group(2)) if sent else ("", "")
    offending = OFFENDING.search(stderr)
    where = (f" (the old one is {offending.group(1)}:{offending.group(2)})" if offending
             else "")
    file = known_hosts or (offending.group(1) if offending else "~/.ssh/known_hosts")
    port = destination.port
    scan = ["ssh-keyscan", *(["-p", str(port)] if port else []),
            *(["-t", key_type.lower()] if key_type else []), destination.host]
    fix = ("dcsctl never accepts a changed host key by itself. "
           f"If {destination.host} was reinstalled or its host key regenerated, compare "
           f"{fingerprint or 'the new fingerprint'} with `ssh-keygen -lf "
           "/etc/ssh/ssh_host_*_key.pub` run on the host's console, then replace the old key: "
           f"`ssh-keygen -R {shlex.quote(known_as)} -f {shlex.quote(file)}` and "
           f"`{shlex.join(scan)} >> {shlex.quote(file)}`; if nobody changed it, someone may "
           "be intercepting the connection: do not go on")
    return EnvironmentProblem(
        f"{name}: the SSH host key of {destination} has changed{where}: it now presents "
        f"{key_type or 'a'} key {fingerprint or '(fingerprint not shown)'}; dcsctl did not "
        "log in",
        fix=fix)
