"""Real OpenSSH servers on loopback for the SSH tests: no mocks, nothing of the system's sshd.

Every server is `/usr/sbin/sshd` run in the foreground as our child, with its own throwaway
host key and config under the lab's root, listening on one 127.0.0.0/8 address. The client
side is a generated ed25519 key, a known_hosts that pins every server's key, and an
ssh_config with one Host alias per server, so a test (or dcsctl) reaches a "remote host"
with nothing more than `ssh -F lab.ssh_config ALIAS -- COMMAND`.

Findings that shaped the config (OpenSSH 9.2, Debian 12):
  * sshd re-executes itself for every connection after chdir("/"), so the -E log path must
    be absolute or the connection logs land in /<relative path>.
  * No LogLevel (up to DEBUG3) logs the text of an executed command; VERBOSE shows the
    accepted key, the user and "Starting session: command", which is what a test can use.
  * sshd reads AuthorizedKeysFile as the target user; a non-root user cannot traverse
    pytest's 0700 /tmp/pytest-of-root, so non-root logins fall back to an
    AuthorizedKeysCommand that cats the same file as root.
  * UsePAM no (PAM's loginuid module fails in containers) makes sshd refuse accounts whose
    shadow password starts with "!" (Debian's useradd default) even for public keys; the
    lab checks that up front and says how to fix it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import pwd
import re
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import poll, start_ticks, stat_fields

SSHD = Path("/usr/sbin/sshd")
SSH_KEYGEN = Path("/usr/bin/ssh-keygen")
PRIVSEP_DIR = Path("/run/sshd")
READY_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
POLL_INTERVAL = 0.02
LOG_LEVEL = "VERBOSE"

# Characters that need no quoting or %-escaping in sshd_config and ssh_config.
_SAFE_PATH = re.compile(r"[A-Za-z0-9._/+@=,:-]+")
_SAFE_ALIAS = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class SshServer:
    """One running sshd: where it listens, its PID, and the log to read when a test fails."""

    address: str
    port: int
    pid: int
    log: Path


@dataclass
class SshLab:
    """sshd servers plus the client-side files that reach them; `stop()` ends what it started."""

    root: Path
    identity_file: Path
    known_hosts: Path
    ssh_config: Path
    servers: dict[str, SshServer]
    user: str
    commands: Path  # every remote command line any server ran (root sessions), one a line
    _processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict, repr=False)

    def stop(self) -> None:
        """Stop every sshd this lab started, by PID: each listener's connections, then it.

        A listener that gets SIGTERM exits leaving its connections (setsid()'d children)
        running, so they go first, while the listener is alive to reap them (an orphan would
        stay a zombie under an init that does not reap, as in some containers). The commands
        those connections run are the test's business, as on a real host. Safe to call twice.
        """
        for name, process in list(self._processes.items()):
            if process.poll() is None:
                _stop_processes(_children(process.pid))
            _stop_child(process)
            del self._processes[name]


def start_ssh_lab(
    root: Path,
    hosts: Mapping[str, str],
    *,
    port: int = 2222,
    user: str = "root",
    extra_users: Sequence[str] = (),
) -> SshLab:
    """Start one sshd per `hosts` entry (alias -> 127.x.y.z) and write the client files.

    Raises RuntimeError when the machine cannot run them (no sshd: run scripts/setup), so a
    CI without OpenSSH fails loudly instead of skipping the SSH tests.
    """
    root = root.resolve()
    _check_inputs(root, hosts, [user, *extra_users])
    _check_machine()
    root.mkdir(parents=True, exist_ok=True)
    if any(root.iterdir()):
        raise ValueError(f"lab root {root} is not empty: every lab gets fresh keys and configs")

    identity_file = root / "client_ed25519"
    _keygen(identity_file, comment="dcsctl-test-client")
    client_key = (root / "client_ed25519.pub").read_text()
    keys_dir = root / "authorized_keys"
    keys_dir.mkdir(exist_ok=True)
    for name in dict.fromkeys([user, *extra_users]):
        (keys_dir / name).write_text(client_key)

    known_hosts = root / "known_hosts"
    ssh_config = root / "ssh_config"
    commands = root / "commands.log"
    commands.write_bytes(b"")
    lab = SshLab(root, identity_file, known_hosts, ssh_config, {}, user, commands)
    known_lines: list[str] = []
    config_blocks: list[str] = []
    try:
        for alias, address in hosts.items():
            server_dir = root / "hosts" / alias
            server_dir.mkdir(parents=True)
            host_key = server_dir / "host_ed25519"
            _keygen(host_key, comment=f"dcsctl-test-{alias}")
            key_type, key_blob = (server_dir / "host_ed25519.pub").read_text().split()[:2]
            host = address if port == 22 else f"[{address}]:{port}"
            known_lines.append(f"{host} {key_type} {key_blob}\n")
            config_blocks.append(
                _client_block(alias, address, port, user, identity_file, known_hosts)
            )
            config = server_dir / "sshd_config"
            config.write_text(
                _server_config(server_dir, address, port, host_key, keys_dir, commands)
            )
            lab.servers[alias] = _start_server(lab, alias, config, address, port)
        known_hosts.write_text("".join(known_lines))
        ssh_config.write_text("\n".join(config_blocks))
    except BaseException:
        lab.stop()
        raise
    return lab


def _check_inputs(root: Path, hosts: Mapping[str, str], users: list[str]) -> None:
    """Refuse what would silently misbehave: odd paths or aliases, non-loopback, clashes."""
    if not _SAFE_PATH.fullmatch(str(root)):
        raise ValueError(f"lab root {root} needs quoting in sshd_config; use a plain path")
    if not hosts:
        raise ValueError("an SSH lab needs at least one host")
    for alias, address in hosts.items():
        if not _SAFE_ALIAS.fullmatch(alias):
            raise ValueError(f"host alias {alias!r}: letters, digits, '.', '_' and '-' only")
        if ipaddress.ip_address(address) not in ipaddress.ip_network("127.0.0.0/8"):
            raise ValueError(f"{alias}: {address} is not an IPv4 loopback address")
    if len(set(hosts.values())) != len(hosts):
        raise ValueError(f"two hosts share an address: {dict(hosts)}")
    for name in users:
        _check_account(name)


def _check_account(name: str) -> None:
    """sshd with UsePAM no refuses missing or locked accounts; say so before it does."""
    try:
        pwd.getpwnam(name)
    except KeyError:
        raise RuntimeError(f"SSH lab: no account {name!r} on this machine; create it") from None
    with contextlib.suppress(OSError):
        for line in Path("/etc/shadow").read_text().splitlines():
            login, _, rest = line.partition(":")
            if login == name and rest.startswith("!"):
                raise RuntimeError(
                    f"SSH lab: account {name!r} is locked (its shadow password starts with "
                    f"'!'), which sshd with UsePAM no refuses even for keys; "
                    f"unlock it without a password: usermod -p '*' {name}"
                )


def _check_machine() -> None:
    for tool in (SSHD, SSH_KEYGEN):
        if not tool.exists():
            raise RuntimeError(f"{tool} is missing: run scripts/setup (installs OpenSSH)")
    if os.geteuid() != 0:
        raise RuntimeError("the SSH lab runs sshd as root, as it must be to log users in")
    # The privilege-separation directory lives on /run (a tmpfs) and is made by the system's
    # ssh service, which nothing here starts.
    if not PRIVSEP_DIR.is_dir():
        PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
        PRIVSEP_DIR.chmod(0o755)


def _keygen(path: Path, comment: str) -> None:
    subprocess.run(
        [str(SSH_KEYGEN), "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        stdin=subprocess.DEVNULL,
        check=True,
        capture_output=True,
        timeout=30,
    )


def _server_config(
    server_dir: Path, address: str, port: int, host_key: Path, keys: Path, commands: Path
) -> str:
    cat = "/usr/bin/cat" if Path("/usr/bin/cat").exists() else "/bin/cat"
    # sshd logs no command lines at any level: an audit wrapper records each one (what a
    # `ps` on the host would show) before running it, so tests can look for leaked secrets.
    audit = (
        f'printf "%s\\n" "$SSH_ORIGINAL_COMMAND" >> {commands} 2>/dev/null; '
        'exec /bin/sh -c "$SSH_ORIGINAL_COMMAND"'
    )
    return f"""\
# One test sshd of an SSH lab (tests/ssh/sshd.py); nothing here is shared with the system's.
ListenAddress {address}:{port}
HostKey {host_key}
PidFile {server_dir / "sshd.pid"}
LogLevel {LOG_LEVEL}
PubkeyAuthentication yes
AuthorizedKeysFile {keys}/%u
# sshd reads AuthorizedKeysFile as the user logging in; one who cannot traverse the lab's
# root (pytest's tmp dirs are 0700) gets the same file read by root.
AuthorizedKeysCommand {cat} {keys}/%u
AuthorizedKeysCommandUser root
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
PrintMotd no
PrintLastLog no
# Tests open connections to several hosts at once and may multiplex sessions.
MaxStartups 64
MaxSessions 64
Subsystem sftp internal-sftp
ForceCommand {audit}
"""


def _client_block(
    alias: str, address: str, port: int, user: str, identity: Path, known_hosts: Path
) -> str:
    return f"""\
Host {alias}
    HostName {address}
    Port {port}
    User {user}
    IdentityFile {identity}
    IdentitiesOnly yes
    UserKnownHostsFile {known_hosts}
    GlobalKnownHostsFile /dev/null
    StrictHostKeyChecking yes
    UpdateHostKeys no
    BatchMode yes
"""


def _start_server(lab: SshLab, alias: str, config: Path, address: str, port: int) -> SshServer:
    """Run sshd in the foreground as our child; ready once *it* logs that it is listening.

    The log line (rather than a TCP probe) proves the listener is this process and not a
    stray one on the same address; sshd exits when it cannot bind, which the loop notices.
    """
    log = config.parent / "sshd.log"
    log.write_bytes(b"")
    with log.open("ab") as early_errors:
        process = subprocess.Popen(
            [str(SSHD), "-D", "-e", "-f", str(config), "-E", str(log)],
            stdin=subprocess.DEVNULL,
            stdout=early_errors,
            stderr=early_errors,
            start_new_session=True,
        )
    lab._processes[alias] = process
    listening = f"Server listening on {address} port {port}."

    def ready() -> bool:
        if process.poll() is not None:
            raise RuntimeError(
                f"sshd for {alias} ({address}:{port}) exited with {process.returncode}:\n"
                + log.read_text(errors="replace")
            )
        return listening in log.read_text(errors="replace")

    poll(ready, READY_TIMEOUT, f"sshd for {alias} listening ({log})", POLL_INTERVAL)
    return SshServer(address, port, process.pid, log)


def _stop_child(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT)


def _stop_processes(processes: list[tuple[int, int]]) -> None:
    """SIGTERM (pid, start ticks) processes, SIGKILL those still there after STOP_TIMEOUT."""
    for pid, started in processes:
        _signal_if_same(pid, started, signal.SIGTERM)
    with contextlib.suppress(TimeoutError):
        poll(lambda: all(start_ticks(pid) != started for pid, started in processes),
             STOP_TIMEOUT, "processes stopped", POLL_INTERVAL)
    for pid, started in processes:
        _signal_if_same(pid, started, signal.SIGKILL)


def _children(parent: int) -> list[tuple[int, int]]:
    """(pid, start ticks) of parent's live children: the start time guards against reuse."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = stat_fields(int(entry.name))
            if fields and fields[0] not in {"Z", "X"} and int(fields[1]) == parent:
                found.append((int(entry.name), int(fields[19])))
    return found


def _signal_if_same(pid: int, started: int, signum: signal.Signals) -> None:
    if start_ticks(pid) == started:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)
