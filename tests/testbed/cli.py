"""`scripts/testbed`: a thin command line over tests.testbed.bed."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from dcsctl.errors import DcsctlError
from tests.testbed.bed import Testbed, TestbedError
from tests.testbed.net import NetError
from tests.testbed.rootfs import SUITES, BuildError


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="scripts/testbed", description=__doc__)
    sub = top.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="make the testbed (idempotent)")
    up.add_argument("--hosts", type=int, default=3)
    up.add_argument("--suite", choices=SUITES, default="bookworm")
    up.add_argument("--db", type=int, default=None, metavar="N",
                    help="also N (at most 3) database hosts db-00.. (PostgreSQL + Patroni 4.1.5 as "
                    "systemd services; default: as many as the testbed has)")
    for name in ("down", "status", "spec"):
        sub.add_parser(name)
    ssh = sub.add_parser("ssh", help="a shell or command on a host, as the admin user")
    ssh.add_argument("host")
    ssh.add_argument("cmd", nargs=argparse.REMAINDER)
    run = sub.add_parser("run", help="a command on the control side (e.g. dcsctl up -f F)")
    run.add_argument("cmd", nargs=argparse.REMAINDER)
    for name in ("kill", "boot", "reboot", "partition", "block-ssh"):
        sub.add_parser(name).add_argument("host")
    heal = sub.add_parser("heal", help="undo every network fault (of one host)")
    heal.add_argument("host", nargs="?")
    delay = sub.add_parser("delay", help="delay the bytes a host sends on etcd's TCP connections "
                           "(a userspace relay: no netem here)")
    delay.add_argument("host")
    delay.add_argument("ms", type=float)
    delay.add_argument("jitter", type=float, nargs="?", default=0.0)
    loss = sub.add_parser("loss", help="drop a share of the packets leaving a host")
    loss.add_argument("host")
    loss.add_argument("percent", type=float)
    return top


def _exec_in_control(bed: Testbed, argv: list[str]) -> int:
    """Interactive: the command gets this terminal (no capture)."""
    bed.net.check_isolation(bed.all_hosts())
    return subprocess.call(["ip", "netns", "exec", bed.net.control_ns, *argv],
                           env=bed.control_env())


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    if os.geteuid() != 0:
        print("error: the testbed needs root (namespaces, mounts, containers)", file=sys.stderr)
        return 1
    # A second testbed beside a running one: DCSCTL_TESTBED_PREFIX names its namespaces,
    # links, machines and state folder, as it does for the tests' fixture.
    bed = Testbed(prefix=os.environ.get("DCSCTL_TESTBED_PREFIX", "dcstb"))
    command = args.command
    if command == "up":
        changed = bed.up(args.hosts, args.suite, db=args.db)
        print(f"booted {', '.join(changed)}" if changed else "no changes")
        command = "status"
    if command == "status":
        for host in bed.status():
            print(f"{host.name}  {host.address:<15} {host.state:<10} "
                  f"init={host.init_pid or '-'}  {', '.join(host.faults) or 'network ok'}")
    elif command == "down":
        bed.down()
        left = bed.leftovers()
        if left:
            print("left behind:\n  " + "\n  ".join(left), file=sys.stderr)
            return 1
    elif command == "spec":
        print(bed.spec(), end="")
    elif command == "ssh":
        return _exec_in_control(bed, bed.ssh_argv(args.host, *args.cmd))
    elif command == "run":
        return _exec_in_control(bed, args.cmd)
    elif command in ("kill", "boot", "reboot"):
        getattr(bed, command)(args.host)
    elif command == "partition":
        bed.net.partition(args.host)
    elif command == "block-ssh":
        bed.net.block_ssh(args.host)
    elif command == "heal":
        for host in [args.host] if args.host else list(bed.all_hosts()):
            bed.net.heal(host)
    elif command == "delay":
        bed.net.delay(args.host, args.ms, args.jitter)
    elif command == "loss":
        bed.net.loss(args.host, args.percent)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except (TestbedError, NetError, BuildError, DcsctlError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
