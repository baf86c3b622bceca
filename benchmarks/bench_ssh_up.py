"""`dcsctl up` over SSH (real sshd hosts on loopback) vs the same cluster in lab mode, same run.

    .venv/bin/python benchmarks/bench_ssh_up.py [--rounds 5]

Every round builds two fresh 3-member clusters, each with its own DCSCTL_HOME. The side that
goes first alternates: odd rounds start with SSH.

(a) SSH: three real OpenSSH servers (tests/ssh/sshd.py, `start_ssh_lab`) on
    127.77.<round>.10-12 port 2222, each host a fresh directory tree (`remote_root`) in a
    0755 temp dir, because etcd runs there as the `etcd` user. The spec is written the way
    tests/ssh/conftest.py writes it: `target: ssh`, `ssh.config_file` = the lab's
    ssh_config, `sudo: false`, `install.method: release` with a tarball packed from
    .venv/bin/etcd{,ctl,utl} and its sha256, `service.manager: process`, per member
    `ssh: <alias>` and `remote_root`. Timed, each as a subprocess:
      * `dcsctl up -f SPEC` on the fresh hosts (returns 0 once every member is healthy and
        auth is on; checked afterwards, untimed, with etcdctl and the admin certificate);
      * `dcsctl up -f SPEC` again: the check-only re-run, which must print "no changes";
      * `dcsctl up --plan -f SPEC`.
    Remote commands are counted from each sshd's log ("Starting session:" = one command, one
    session). The lab also appends every command line to `commands.log`, but a command with
    a multi-line script in it (dcsctl's file write and read) spans several lines there, so
    that file is split back into commands with shell quoting (`shlex`) to classify them
    and to cross-check the count; its raw line count is recorded too. New SSH logins
    ("Accepted publickey") are counted as well. dcsctl's stderr is read as it runs, so the
    sessions each phase used are known (the session count is read when the phase's line
    appears; commands after the last phase line count as "after phases").
(b) reference, lab: the same 3 members with `target: lab` on 127.78.<round>.10-12; wall time
    of `dcsctl up -f SPEC` (checked the same way). The ratio SSH/lab is the cost of SSH.
(c) reference, raw ssh: against the first SSH host, open one ControlMaster
    (`-o ControlMaster=auto -o ControlPath=... -o ControlPersist=60`, timed apart as
    "connect"), then 20 sequential `ssh -F CONFIG ALIAS true` over it: ms per round trip.
    Also, for comparison, 5 `ssh ... true` each on a fresh connection (no master), and
    the lab user's login shell timed locally as sshd starts it for every command
    (`SHELL -c true` with SSH_CLIENT set, which makes bash read ~/.bashrc) and plainly.
Also recorded: how many of dcsctl's own ControlMaster connections are still running right
after the fresh `up` returned (`ssh -O check` on its sockets in /tmp/dcsctl-ssh-UID).

After every round, pass or fail: `dcsctl destroy --yes -f SPEC` for each cluster that has
state, then (last resort) SIGKILL of etcd PIDs this round started that are still running
(matched by PID and start time), then the sshd lab is stopped (by PID) and the round's
temp dirs removed. Every step is bounded (STEP_TIMEOUT_S); rounds are capped at 20.
Results: a markdown table on stdout, benchmarks/out/ssh_up.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import pwd
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import yaml
from harness import (
    BIN,
    OUT,
    REPO,
    STEP_TIMEOUT_S,
    clean_environ,
    kill_recorded,
    port_free,
    run,
    terminate_as_exit,
)

sys.path.insert(0, str(REPO))
from tests.ssh.sshd import SshLab, start_ssh_lab
from tests.support import pack_release

SSH_PORT = 2222
CLIENT_PORT, PEER_PORT = 2379, 2380
CLUSTER = "bench"
MAX_ROUNDS = 20
RTT_COMMANDS = 20
FRESH_CONNECTIONS = 5
PHASE_LINE = re.compile(r"^\S+ \[(\w+)\]")
PHASE_TIME = re.compile(r"\((\d+\.\d+) s\)\s*$")


def ssh_addresses(index: int) -> list[str]:
    return [f"127.77.{index}.{10 + i}" for i in range(3)]


def lab_addresses(index: int) -> list[str]:
    return [f"127.78.{index}.{10 + i}" for i in range(3)]


# -- helpers ---------------------------------------------------------------------------------



def dcsctl_env(home: Path) -> dict[str, str]:
    return {**clean_environ(), "DCSCTL_HOME": str(home), "DCSCTL_ETCD_BIN_DIR": str(BIN)}








def ports_free(index: int) -> bool:
    return (all(port_free(ip, p) for ip in ssh_addresses(index)
                for p in (SSH_PORT, CLIENT_PORT, PEER_PORT))
            and all(port_free(ip, p) for ip in lab_addresses(index)
                    for p in (CLIENT_PORT, PEER_PORT)))




def lab_pid_records(home: Path) -> list[tuple[int, int]]:
    records = []
    for pidfile in (home / CLUSTER / "members").glob("*/etcd.pid"):
        with contextlib.suppress(OSError, ValueError, KeyError):
            data = json.loads(pidfile.read_text())
            records.append((int(data["pid"]), int(data["start_ticks"])))
    return records


def remote_pid_records(roots: list[Path]) -> list[tuple[int, int]]:
    """The etcd PIDs the SSH hosts' pidfiles name ("PID START_TICKS", as the tests read them)."""
    records = []
    for root in roots:
        with contextlib.suppress(OSError, ValueError):
            pid, ticks = (root / "run" / "dcsctl-etcd.pid").read_text().split()
            records.append((int(pid), int(ticks)))
    return records



def verify_cluster(home: Path, addresses: list[str]) -> None:
    """Untimed: every member healthy and auth on, seen with the admin certificate."""
    pki = home / CLUSTER / "pki"
    etcdctl = [str(BIN / "etcdctl"),
               "--endpoints=" + ",".join(f"https://{ip}:{CLIENT_PORT}" for ip in addresses),
               f"--cacert={pki / 'ca.crt'}", f"--cert={pki / 'admin.crt'}",
               f"--key={pki / 'admin.key'}"]
    run([*etcdctl, "endpoint", "health"], timeout=30)
    auth = run([*etcdctl, "auth", "status"], timeout=30).stdout
    assert "Authentication Status: true" in auth, auth


# -- counting what happened on the sshd hosts ------------------------------------------------

def sessions(lab: SshLab) -> int:
    """Remote commands so far: each is one session, logged by sshd as it starts."""
    return sum(server.log.read_text(errors="replace").count("Starting session:")
               for server in lab.servers.values())


def logins(lab: SshLab) -> int:
    """SSH logins so far (one per new connection; commands over a master need none)."""
    return sum(server.log.read_text(errors="replace").count("Accepted publickey for")
               for server in lab.servers.values())


def split_commands(text: str) -> list[str]:
    """commands.log back into commands: a line continues the previous one while a quote is open."""
    commands: list[str] = []
    pending = ""
    for line in text.splitlines():
        pending = f"{pending}\n{line}" if pending else line
        try:
            shlex.split(pending)
        except ValueError:  # an open quote: the command goes on on the next line
            continue
        commands.append(pending)
        pending = ""
    if pending:
        commands.append(pending)
    return commands


def kind(command: str) -> str:
    """A short label for a remote command line, to see where the round trips go."""
    if "path=$1 mode=$2 owner=$3 want=$4" in command:
        return "write file (sh WRITE_SCRIPT)"
    if '[ -e "$1" ] || exit 3' in command:
        return "read file (sh READ_SCRIPT)"
    try:
        words = shlex.split(command)
    except ValueError:
        return "unparsed"
    if words[:3] == ["sudo", "-n", "--"]:
        words = words[3:]
    if not words:
        return "empty"
    if words[0] in {"sh", "/bin/sh", "bash"} and len(words) > 2 and words[1] == "-c":
        script = " ".join(words[2].split())
        return f"sh -c '{script[:40]}{'…' if len(script) > 40 else ''}'"
    tool = Path(words[0]).name
    return f"{tool} {words[1]}" if len(words) > 1 and not words[1].startswith("/") else tool


class Counts:
    """Before/after snapshot of the lab's sessions, logins and commands.log."""

    def __init__(self, lab: SshLab) -> None:
        self.lab = lab
        self.sessions = sessions(lab)
        self.logins = logins(lab)
        self.log_bytes = lab.commands.stat().st_size

    def since(self) -> dict[str, object]:
        raw = self.lab.commands.read_bytes()[self.log_bytes:].decode(errors="replace")
        commands = split_commands(raw)
        return {"sessions": sessions(self.lab) - self.sessions,
                "logins": logins(self.lab) - self.logins,
                "commands_log_lines": raw.count("\n"),
                "commands_log_commands": len(commands),
                "kinds": dict(Counter(kind(c) for c in commands).most_common())}


def timed_dcsctl(argv: list[str], env: dict[str, str], lab: SshLab | None = None
                 ) -> dict[str, object]:
    """Wall time of one dcsctl command (must exit 0); its stderr is read as it arrives, so
    the sshd sessions each phase used are known (lab: the SSH lab, or None)."""
    before = (sessions(lab), lab.commands.stat().st_size) if lab else (0, 0)
    marks: list[tuple[str, int, int]] = []
    lines: list[str] = []
    with tempfile.TemporaryFile() as stdout:
        started = time.perf_counter()
        process = subprocess.Popen([str(BIN / "dcsctl"), *argv], env=env,
                                   stdin=subprocess.DEVNULL, stdout=stdout,
                                   stderr=subprocess.PIPE, text=True)

        def read() -> None:
            assert process.stderr is not None
            for line in process.stderr:
                lines.append(line.rstrip("\n"))
                if lab and (m := PHASE_LINE.match(line)):
                    marks.append((m.group(1), sessions(lab), lab.commands.stat().st_size))

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            code = process.wait(timeout=STEP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
            raise
        elapsed = time.perf_counter() - started
        reader.join(timeout=10)
        stdout.seek(0)
        out = stdout.read().decode(errors="replace")
    stderr = "\n".join(lines)
    if code != 0:
        raise RuntimeError(f"dcsctl {' '.join(argv)} exited {code}:\n{out[-2000:]}"
                           f"{stderr[-3000:]}")
    result: dict[str, object] = {
        "s": elapsed, "stderr": stderr,
        "phase_s": {m.group(1): float(t.group(1)) for line in lines
                    if (m := PHASE_LINE.match(line)) and (t := PHASE_TIME.search(line))}}
    if lab:
        log = lab.commands.read_bytes()
        marks.append(("(after phases)", sessions(lab), len(log)))
        per_phase: dict[str, dict[str, object]] = {}
        (previous, offset) = before
        for phase, count, size in marks:
            commands = split_commands(log[offset:size].decode(errors="replace"))
            per_phase[phase] = {"sessions": count - previous,
                                "kinds": dict(Counter(kind(c) for c in commands).most_common())}
            previous, offset = count, size
        result["per_phase"] = per_phase
    return result


# -- (c) raw ssh -----------------------------------------------------------------------------

def raw_ssh(lab: SshLab, alias: str, control_path: Path) -> dict[str, float]:
    base = ["ssh", "-F", str(lab.ssh_config)]
    master = ["-o", "ControlMaster=auto", "-o", f"ControlPath={control_path}",
              "-o", "ControlPersist=60"]
    try:
        started = time.perf_counter()
        run([*base, *master, alias, "true"], timeout=30)
        connect = time.perf_counter() - started
        started = time.perf_counter()
        for _ in range(RTT_COMMANDS):
            run([*base, *master, alias, "true"], timeout=30)
        over_master = (time.perf_counter() - started) / RTT_COMMANDS
    finally:
        subprocess.run([*base, "-o", f"ControlPath={control_path}", "-O", "exit", alias],
                       capture_output=True, timeout=10, check=False, stdin=subprocess.DEVNULL)
    started = time.perf_counter()
    for _ in range(FRESH_CONNECTIONS):
        run([*base, "-o", "ControlMaster=no", "-o", "ControlPath=none", alias, "true"],
            timeout=30)
    fresh = (time.perf_counter() - started) / FRESH_CONNECTIONS
    return {"ssh_connect_ms": connect * 1000, "ssh_rtt_ms": over_master * 1000,
            "ssh_fresh_ms": fresh * 1000}


def masters_left(lab: SshLab, hosts: dict[str, str]) -> int:
    """How many of dcsctl's ControlMaster connections still run after its command returned
    (its sockets: /tmp/dcsctl-ssh-UID/%C, as src/dcsctl/hosts/ssh.py names them)."""
    path = Path(tempfile.gettempdir()) / f"dcsctl-ssh-{os.getuid()}" / "%C"
    running = 0
    for alias in hosts:
        check = subprocess.run(["ssh", "-F", str(lab.ssh_config), "-o", f"ControlPath={path}",
                                "-O", "check", alias], capture_output=True, text=True,
                               timeout=10, check=False, stdin=subprocess.DEVNULL)
        running += "Master running" in check.stderr
    return running


def login_shell_ms(user: str) -> dict[str, float]:
    """What the lab user's login shell costs before each remote command even starts: sshd
    runs `SHELL -c COMMAND` with SSH_CLIENT set, and bash then reads ~/.bashrc. Timed here,
    locally, both ways (median of 5)."""
    entry = pwd.getpwnam(user)
    base = {k: v for k, v in clean_environ().items()
            if k not in {"SHLVL", "SSH_CLIENT", "SSH2_CLIENT", "SSH_CONNECTION"}}
    base["HOME"] = entry.pw_dir

    def median_ms(env: dict[str, str]) -> float:
        times = []
        for _ in range(5):
            started = time.perf_counter()
            subprocess.run([entry.pw_shell, "-c", "true"], env=env, capture_output=True,
                           timeout=30, check=False, stdin=subprocess.DEVNULL)
            times.append((time.perf_counter() - started) * 1000)
        return statistics.median(times)

    return {"shell_plain_ms": median_ms(base),
            "shell_as_sshd_runs_it_ms": median_ms({**base, "SSH_CLIENT": "127.0.0.1 1 2222"})}


# -- (a) SSH and (b) lab rounds --------------------------------------------------------------

def destroy(spec_file: Path, home: Path, env: dict[str, str]) -> str | None:
    """`dcsctl destroy --yes -f SPEC` if the cluster has state; the error text if it failed."""
    if not (home / CLUSTER).exists():
        return None
    try:
        run([str(BIN / "dcsctl"), "destroy", "--yes", "-f", str(spec_file)], env=env)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        return str(exc)[:500]
    return None


def ssh_round(index: int, workdir: Path, tarball: tuple[Path, str]) -> dict[str, object]:
    hosts = {f"h{index}-{i}": address for i, address in enumerate(ssh_addresses(index))}
    roots_dir = workdir / "hosts"
    roots_dir.mkdir()
    roots_dir.chmod(0o755)
    roots = {alias: roots_dir / alias for alias in hosts}
    home = workdir / "home-ssh"
    env = dcsctl_env(home)
    spec_file = workdir / "ssh.yaml"
    lab = start_ssh_lab(workdir / "sshlab", hosts, port=SSH_PORT)
    row: dict[str, object] = {}
    try:
        spec_file.write_text(yaml.safe_dump({
            "name": CLUSTER,
            "target": "ssh",
            "ssh": {"config_file": str(lab.ssh_config), "sudo": False},
            "install": {"method": "release", "tarball": str(tarball[0]), "sha256": tarball[1]},
            "service": {"manager": "process"},
            "members": [{"name": alias, "address": address, "ssh": alias,
                         "remote_root": str(roots[alias])} for alias, address in hosts.items()],
        }, sort_keys=False))
        argv = ["up", "-f", str(spec_file)]

        counts = Counts(lab)
        fresh = timed_dcsctl(argv, env, lab)
        row["ssh_up_s"] = fresh["s"]
        row["ssh_up_phases"] = fresh["per_phase"]
        row["ssh_up_phase_s"] = fresh["phase_s"]
        row["masters_left_after_up"] = masters_left(lab, hosts)
        row["ssh_up_remote"] = counts.since()
        verify_cluster(home, ssh_addresses(index))

        counts = Counts(lab)
        rerun = timed_dcsctl(argv, env, lab)
        assert "no changes" in str(rerun["stderr"]), f"re-run changed something:\n{rerun}"
        row["rerun_s"] = rerun["s"]
        row["rerun_phases"] = rerun["per_phase"]
        row["rerun_phase_s"] = rerun["phase_s"]
        row["rerun_remote"] = counts.since()

        counts = Counts(lab)
        plan = timed_dcsctl([*argv[:1], "--plan", *argv[1:]], env, lab)
        row["plan_s"] = plan["s"]
        row["plan_phases"] = plan["per_phase"]
        row["plan_remote"] = counts.since()

        row.update(raw_ssh(lab, next(iter(hosts)), workdir / "cm"))
        row.update(login_shell_ms(lab.user))
    finally:
        failure = destroy(spec_file, home, env)
        if failure:
            print(f"  round {index}: SSH destroy failed: {failure}", file=sys.stderr)
        leftover = kill_recorded(remote_pid_records(list(roots.values())))
        if leftover:
            print(f"  round {index}: SSH etcd PIDs {leftover} left; killed", file=sys.stderr)
        lab.stop()
    return row


def lab_round(index: int, workdir: Path) -> dict[str, object]:
    home = workdir / "home-lab"
    env = dcsctl_env(home)
    spec_file = workdir / "lab.yaml"
    spec_file.write_text(yaml.safe_dump({
        "name": CLUSTER,
        "target": "lab",
        "members": [{"name": f"l{index}-{i}", "address": address}
                    for i, address in enumerate(lab_addresses(index))],
    }, sort_keys=False))
    records: list[tuple[int, int]] = []
    try:
        up = timed_dcsctl(["up", "-f", str(spec_file)], env)
        records = lab_pid_records(home)
        verify_cluster(home, lab_addresses(index))
    finally:
        records = records or lab_pid_records(home)
        failure = destroy(spec_file, home, env)
        if failure:
            print(f"  round {index}: lab destroy failed: {failure}", file=sys.stderr)
        leftover = kill_recorded(records)
        if leftover:
            print(f"  round {index}: lab etcd PIDs {leftover} left; killed", file=sys.stderr)
    return {"lab_up_s": up["s"], "lab_up_phase_s": up["phase_s"]}


# -- report ----------------------------------------------------------------------------------

def first_line(argv: list[str]) -> str:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False,
                                stdin=subprocess.DEVNULL)
        return (result.stdout + result.stderr).splitlines()[0].strip()
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "unknown"


def machine() -> dict[str, object]:
    meminfo = Path("/proc/meminfo").read_text().split()
    return {
        "nproc": first_line(["nproc"]),
        "mem_total_gib": round(int(meminfo[meminfo.index("MemTotal:") + 1]) / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "etcd": first_line([str(BIN / "etcd"), "--version"]),
        "openssh": first_line(["ssh", "-V"]),
        "loadavg_start": Path("/proc/loadavg").read_text().split()[:3],
    }


def table(rows: list[dict[str, object]], medians: dict[str, float]) -> str:
    lines = ["| round | first | fresh SSH up | re-run (no changes) | up --plan | lab up "
             "| ratio SSH/lab | SSH − lab | remote cmds: fresh / re-run / plan "
             "| ms per ssh round trip |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['round']} | {r['first']} | {r['ssh_up_s']:.2f} s | {r['rerun_s']:.2f} s | "
            f"{r['plan_s']:.2f} s | {r['lab_up_s']:.2f} s | {r['ratio']:.2f} | "
            f"{r['ssh_minus_lab_s']:.2f} s | "
            f"{r['ssh_up_cmds']} / {r['rerun_cmds']} / {r['plan_cmds']} | "
            f"{r['ssh_rtt_ms']:.1f} ms |")
    lines.append(
        f"| **median** | | **{medians['ssh_up_s']:.2f} s** | **{medians['rerun_s']:.2f} s** | "
        f"**{medians['plan_s']:.2f} s** | **{medians['lab_up_s']:.2f} s** | "
        f"**{medians['ratio']:.2f}** | {medians['ssh_minus_lab_s']:.2f} s | "
        f"{medians['ssh_up_cmds']:g} / {medians['rerun_cmds']:g} / "
        f"{medians['plan_cmds']:g} | **{medians['ssh_rtt_ms']:.1f} ms** |")
    return "\n".join(lines)



def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5,
                        help=f"rounds, 1..{MAX_ROUNDS} (default 5)")
    args = parser.parse_args()
    if not 1 <= args.rounds <= MAX_ROUNDS:
        parser.error(f"--rounds must be between 1 and {MAX_ROUNDS}")
    busy = [i for i in range(1, args.rounds + 1) if not ports_free(i)]
    if busy:
        print(f"ports on 127.77/127.78.{busy}.10-12 are in use: another run? nothing started.",
              file=sys.stderr)
        return 2
    info = machine()
    # 0755: etcd runs as the `etcd` user on the "hosts" and must reach their roots in here.
    scratch = Path(tempfile.mkdtemp(prefix="dcsctl-bench-ssh-"))
    scratch.chmod(0o755)
    rows: list[dict[str, object]] = []
    with terminate_as_exit():
        try:
            tarball = pack_release(BIN, scratch)
            for index in range(1, args.rounds + 1):
                first = "ssh" if index % 2 else "lab"
                row: dict[str, object] = {"round": index, "first": first}
                workdir = scratch / f"round-{index}"
                workdir.mkdir()
                workdir.chmod(0o755)
                try:
                    for side in (("ssh", "lab") if first == "ssh" else ("lab", "ssh")):
                        if side == "ssh":
                            row.update(ssh_round(index, workdir, tarball))
                        else:
                            row.update(lab_round(index, workdir))
                finally:
                    shutil.rmtree(workdir, ignore_errors=True)
                row["ratio"] = float(row["ssh_up_s"]) / float(row["lab_up_s"])  # type: ignore[arg-type]
                row["ssh_minus_lab_s"] = float(row["ssh_up_s"]) - float(row["lab_up_s"])  # type: ignore[arg-type]
                for key in ("ssh_up", "rerun", "plan"):
                    row[f"{key}_cmds"] = row[f"{key}_remote"]["sessions"]  # type: ignore[index]
                rows.append(row)
                print(f"round {index} ({first} first): SSH up {row['ssh_up_s']:.2f} s "
                      f"({row['ssh_up_cmds']} cmds), re-run {row['rerun_s']:.2f} s "
                      f"({row['rerun_cmds']} cmds), plan {row['plan_s']:.2f} s, lab up "
                      f"{row['lab_up_s']:.2f} s, ratio {row['ratio']:.2f}, ssh "
                      f"{row['ssh_rtt_ms']:.1f} ms/cmd", file=sys.stderr)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    keys = ("ssh_up_s", "rerun_s", "plan_s", "lab_up_s", "ratio", "ssh_minus_lab_s",
            "ssh_up_cmds", "rerun_cmds", "plan_cmds", "ssh_rtt_ms", "ssh_connect_ms",
            "ssh_fresh_ms", "shell_plain_ms", "shell_as_sshd_runs_it_ms")
    medians = {k: statistics.median(float(r[k]) for r in rows) for k in keys}  # type: ignore[arg-type]
    info["loadavg_end"] = Path("/proc/loadavg").read_text().split()[:3]
    OUT.mkdir(exist_ok=True)
    (OUT / "ssh_up.json").write_text(json.dumps(
        {"command": f".venv/bin/python benchmarks/bench_ssh_up.py --rounds {args.rounds}",
         "machine": info, "rounds": rows, "median": medians}, indent=2) + "\n")
    print(table(rows, medians))
    print(f"\nnproc {info['nproc']}; {info['etcd']}; {info['openssh']}; load average "
          f"{' '.join(info['loadavg_start'])} → {' '.join(info['loadavg_end'])}")  # type: ignore[arg-type]
    print(f"ssh: connect (new master) {medians['ssh_connect_ms']:.1f} ms, command over the "
          f"master {medians['ssh_rtt_ms']:.1f} ms, command on a fresh connection "
          f"{medians['ssh_fresh_ms']:.1f} ms (medians); the login shell as sshd runs it "
          f"{medians['shell_as_sshd_runs_it_ms']:.1f} ms (plain: "
          f"{medians['shell_plain_ms']:.1f} ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
