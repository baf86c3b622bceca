"""The testbed's network: one bridge in a namespace of its own, each host and the control
side in a namespace joined to it by a veth pair, and the faults a real network has.

Nothing here touches the machine's own namespace: every link is created inside a
namespace the testbed made, so deleting the namespaces removes every link. No namespace
gets a default route, and `check_isolation` proves it (and that every host address is
reached over the bridge) before any traffic flows.

Faults act from outside the hosts, with the control machine's tools: a partition is an
nftables rule in the bridge (frames to and from the host's port are dropped, both sides
see silence, as on a cut cable); loss an nftables rule in the bridge; an SSH outage drops
TCP port 22 in the host's namespace.

Delay is a TCP-stream delay, not a packet delay: this kernel has no netem (nor NFQUEUE,
nor fq), so `delay` hands etcd's TCP connections (ports 2379 and 2380) to a userspace
relay (delay.py) that holds back the bytes the delayed host sends by `ms ± jitter`. It
delays what etcd's raft messages, heartbeats, peer probes and client answers see; it does
not delay TCP handshakes (a connect-time probe, like `preflight`'s rtt check, sees none of
it), ICMP, SSH or any other port. See delay.py for where the relays run and why.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.testbed import delay as relay
from tests.testbed.delay import Delay

BRIDGE = "br0"
HOST_IF = "eth0"  # each host's and the control side's interface, inside its namespace
SSH_PORT = 22
ETCD_PORTS = (2379, 2380)  # what `delay` delays: etcd's client and peer ports


class NetError(RuntimeError):
    pass


class IsolationError(NetError):
    """The testbed's traffic could leave its bridge: it refuses to run."""


def run(argv: list[str], *, check: bool = True, timeout: float = 30) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise NetError(f"`{' '.join(argv)}` failed: {result.stderr.strip()}")
    return result.stdout


@dataclass(frozen=True)
class Net:
    prefix: str  # names every namespace, e.g. dcstb
    subnet: str  # first three octets, e.g. 192.168.56

    @property
    def bridge_ns(self) -> str:
        return f"{self.prefix}-br"

    @property
    def control_ns(self) -> str:
        return f"{self.prefix}-ctl"

    @property
    def control_address(self) -> str:
        return f"{self.subnet}.5"

    def host_ns(self, host: str) -> str:
        return f"{self.prefix}-{host}"

    def address(self, index: int) -> str:
        return f"{self.subnet}.{10 + index}"

    @staticmethod
    def port(host: str) -> str:
        return f"p-{host}"[:15]

    def namespaces(self) -> list[str]:
        """Every namespace with this testbed's prefix that exists now."""
        out = run(["ip", "-j", "netns", "list"])
        return [n["name"] for n in json.loads(out or "[]")
                if n["name"].startswith(self.prefix + "-")]

    # -- building (each step checks before it acts: up is idempotent) --

    def ensure_bridge(self) -> None:
        self._ensure_ns(self.bridge_ns)
        if not _has_link(self.bridge_ns, BRIDGE):
            run(["ip", "-n", self.bridge_ns, "link", "add", BRIDGE, "type", "bridge"])
        run(["ip", "-n", self.bridge_ns, "link", "set", BRIDGE, "up"])

    def ensure_attached(self, ns: str, port: str, address: str) -> None:
        """`ns` exists, its eth0 holds `address`/24 and is a port of the bridge."""
        self._ensure_ns(ns)
        if not _has_link(ns, HOST_IF):
            if _has_link(self.bridge_ns, port):  # half of a pair: start over
                run(["ip", "-n", self.bridge_ns, "link", "del", port])
            run(["ip", "-n", self.bridge_ns, "link", "add", port, "type", "veth",
                 "peer", "name", HOST_IF, "netns", ns])
        run(["ip", "-n", self.bridge_ns, "link", "set", port, "master", BRIDGE, "up"])
        if address not in run(["ip", "-n", ns, "-4", "addr", "show", HOST_IF]):
            run(["ip", "-n", ns, "addr", "add", f"{address}/24", "dev", HOST_IF])
        run(["ip", "-n", ns, "link", "set", HOST_IF, "up"])
        run(["ip", "-n", ns, "link", "set", "lo", "up"])

    def write_control_hosts(self, hosts: dict[str, str]) -> None:
        """The control side's name resolution (`ip netns exec` mounts it over /etc/hosts)."""
        folder = Path("/etc/netns") / self.control_ns
        folder.mkdir(parents=True, exist_ok=True)
        lines = ["127.0.0.1 localhost", f"{self.control_address} control"]
        lines += [f"{address} {name}" for name, address in hosts.items()]
        (folder / "hosts").write_text("\n".join(lines) + "\n")

    def remove(self) -> None:
        """Every namespace (and so every link, rule and delay relay in it) and the hosts
        file. A relay would keep its namespace alive: it is stopped first, by PID."""
        for ns in self.namespaces():
            for pid in relay.relay_pids(ns):
                relay.stop_relay(pid)
            run(["ip", "netns", "del", ns])
        folder = Path("/etc/netns") / self.control_ns
        if folder.exists():
            for child in folder.iterdir():
                child.unlink()
            folder.rmdir()

    @staticmethod
    def _ensure_ns(ns: str) -> None:
        if not Path("/run/netns", ns).exists():
            run(["ip", "netns", "add", ns])

    # -- isolation --

    def check_isolation(self, hosts: dict[str, str]) -> None:
        """Refuse to run unless traffic can only stay on the bridge.

        Every namespace of the testbed lacks a default route (v4 and v6); from the control
        side, every host address is routed directly (no gateway) out of its bridge port;
        the bridge namespace holds nothing but the bridge and the testbed's own ports.
        """
        problems = []
        names = [self.bridge_ns, self.control_ns, *(self.host_ns(h) for h in hosts)]
        for ns in names:
            if not Path("/run/netns", ns).exists():
                problems.append(f"namespace {ns} is missing")
                continue
            for family in ("-4", "-6"):
                if run(["ip", "-n", ns, family, "route", "show", "default"]).strip():
                    problems.append(f"{ns} has a default route ({family})")
        expected = {"lo", BRIDGE, self.port("ctl"), *(self.port(h) for h in hosts)}
        links = {link["ifname"]: link for link in
                 json.loads(run(["ip", "-n", self.bridge_ns, "-j", "link", "show"]))}
        for name in sorted(set(links) - expected):
            problems.append(f"{self.bridge_ns} holds a link the testbed did not make: {name}")
        for name in sorted(expected - {"lo", BRIDGE}):
            if links.get(name, {}).get("master") != BRIDGE:
                problems.append(f"{name} is not a port of {self.bridge_ns}/{BRIDGE}")
        for host, address in hosts.items():
            route = json.loads(run(["ip", "-n", self.control_ns, "-j", "route", "get", address],
                                   check=False) or "[{}]")[0]
            if route.get("dev") != HOST_IF or "gateway" in route:
                problems.append(f"{host} ({address}) is not reached over the bridge "
                                f"from {self.control_ns}: {route}")
        if problems:
            raise IsolationError("testbed network is not isolated; refusing to run:\n  "
                                 + "\n  ".join(problems))

    # -- faults --

    def partition(self, host: str) -> None:
        """Drop every frame to and from the host's bridge port (idempotent)."""
        table = self._table(host)
        script = (f"table bridge {table} {{\n chain forward {{\n"
                  "  type filter hook forward priority 0; policy accept;\n"
                  f'  iifname "{self.port(host)}" drop\n  oifname "{self.port(host)}" drop\n'
                  " }\n}\n")
        self._nft(self.bridge_ns, _drop("bridge", table) + script)

    def heal(self, host: str) -> None:
        """Undo partition, delay, loss and an SSH block on one host."""
        self._nft(self.bridge_ns, _drop("bridge", self._table(host))
                  + _drop("bridge", self._table(host, "loss")))
        self._nft(self.host_ns(host), _drop("inet", f"{self.prefix}_ssh"))
        table = self.delays()
        if table.pop(self.address_of(host), None) is not None:
            self._apply_delays(table)

    def delay(self, host: str, delay_ms: float, jitter_ms: float = 0) -> None:
        """Delay the bytes the host sends on etcd's TCP connections by `delay_ms` ±
        `jitter_ms` (uniform), in every connection to and from it: a TCP-stream delay by
        userspace relays (delay.py), as this kernel has no netem. Other delayed hosts keep
        theirs. Every open etcd connection is ended once (`ss -K`: nat applies to new
        connections only), here and on heal; etcd dials again at once."""
        if delay_ms < 0 or not 0 <= jitter_ms <= delay_ms:
            raise NetError(f"delay {delay_ms} ms ± {jitter_ms} ms: want 0 <= jitter <= delay")
        table = self.delays()
        table[self.address_of(host)] = Delay(delay_ms, jitter_ms)
        self._apply_delays(table)

    def delays(self) -> dict[str, Delay]:
        """address -> delay of every delayed host now (every relay holds the whole table)."""
        for ns in self._endpoint_namespaces():
            for pid in relay.relay_pids(ns):
                return relay.relay_table(pid)
        return {}

    def address_of(self, host: str) -> str:
        """The address of a host (or of the control side, host "ctl") from its namespace."""
        ns = self.control_ns if host == "ctl" else self.host_ns(host)
        for entry in json.loads(run(["ip", "-n", ns, "-4", "-j", "addr", "show", HOST_IF])):
            for info in entry.get("addr_info", []):
                return str(info["local"])
        raise NetError(f"{ns} has no address on {HOST_IF}")

    def _endpoint_namespaces(self) -> list[str]:
        return [ns for ns in self.namespaces() if ns != self.bridge_ns]

    def _apply_delays(self, table: dict[str, Delay]) -> None:
        """In every namespace with an address (the hosts and the control side): the old
        relay and its rules gone, then (if anything is delayed) a relay with the new table
        and the rules that send the namespace's etcd connections through it."""
        name = f"{self.prefix}_delay"
        for ns in self._endpoint_namespaces():
            self._nft(ns, _drop("ip", name))
            for pid in relay.relay_pids(ns):
                relay.stop_relay(pid)
            if not table:
                continue
            local = self.address_of("ctl" if ns == self.control_ns
                                    else ns.removeprefix(self.prefix + "-"))
            relay.start_relay(ns, local, table)
            self._nft(ns, relay.relay_rules(name, local, table, ETCD_PORTS, HOST_IF))
        for ns in self._endpoint_namespaces():
            # nat rules see only new connections: end the ones this namespace opened to
            # etcd before (etcd dials again at once, now through the rules in force)
            ports = " or ".join(f"dport = :{p}" for p in ETCD_PORTS)
            run(["ip", "netns", "exec", ns, "ss", "-K", "-t", f"( {ports} )"])

    def loss(self, host: str, percent: float) -> None:
        """Drop `percent` of the frames to and from the host, at random, in the bridge
        (nftables numgen: works without netem)."""
        table = self._table(host, "loss")
        share = round(percent * 100)  # in 1/10000
        rule = f"numgen random mod 10000 < {share} drop"
        self._nft(self.bridge_ns, _drop("bridge", table)
                  + f"table bridge {table} {{\n chain forward {{\n"
                  "  type filter hook forward priority 0; policy accept;\n"
                  f'  iifname "{self.port(host)}" {rule}\n'
                  f'  oifname "{self.port(host)}" {rule}\n }}\n}}\n')

    def block_ssh(self, host: str) -> None:
        """The host's sshd unreachable (TCP 22 dropped) while everything else flows."""
        table = f"{self.prefix}_ssh"
        self._nft(self.host_ns(host),
                  _drop("inet", table) + f"table inet {table} {{\n chain input {{\n"
                  "  type filter hook input priority 0; policy accept;\n"
                  f"  tcp dport {SSH_PORT} drop\n }}\n}}\n")

    def faults(self, host: str) -> list[str]:
        """What is done to a host's network now, in words."""
        found = []
        tables = run(["ip", "netns", "exec", self.bridge_ns, "nft", "list", "tables"],
                     check=False).split()
        if self._table(host) in tables:
            found.append("partitioned")
        if self._table(host, "loss") in tables:
            found.append("lossy")
        if f"{self.prefix}_ssh" in run(["ip", "netns", "exec", self.host_ns(host), "nft",
                                        "list", "tables"], check=False):
            found.append("ssh blocked")
        delayed = self.delays().get(self.address_of(host))
        if delayed is not None:
            found.append(f"etcd TCP delayed {delayed.ms:g} ms ± {delayed.jitter_ms:g} ms")
        return found

    def _table(self, host: str, kind: str = "cut") -> str:
        return f"{self.prefix}_{kind}_{host}".replace("-", "_")

    @staticmethod
    def _nft(ns: str, script: str) -> None:
        result = subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=script,
                                capture_output=True, text=True, timeout=30, check=False)
        if result.returncode != 0:
            raise NetError(f"nft in {ns} failed: {result.stderr.strip()}\n{script}")


def _has_link(ns: str, name: str) -> bool:
    return subprocess.run(["ip", "-n", ns, "link", "show", name], capture_output=True,
                          timeout=30, check=False).returncode == 0


def _drop(family: str, table: str) -> str:
    """nft lines removing a table whether or not it exists (nft 1.0.6 has no `destroy`)."""
    return f"table {family} {table}\ndelete table {family} {table}\n"
