"""Network delay without netem: a userspace TCP relay that holds back the bytes a delayed
host sends, run in the testbed's own network namespaces.

This kernel has no netem qdisc (nor NFQUEUE, nor fq), so packets cannot be delayed in the
kernel. What can be delayed is the byte stream of a TCP connection: an nftables
`redirect` in a namespace's nat output hook hands the connection to this relay, which
finds where it was going with SO_ORIGINAL_DST, opens its own connection there (marked
with SO_MARK so the rule lets it through) and copies bytes both ways, releasing each
chunk sent by a delayed host `delay ± jitter` ms after it arrived, never before the chunk
in front of it (order is kept within a stream: release = max(previous release, arrival +
delay), so jitter shows as bunching, not reordering).

Where the relay runs: in the namespace of whichever side OPENED the connection. A delayed
host's own connections (to its peers' 2380, to their 2379) go through its own relay, which
delays what it sends; connections the others (and the control side) open to it go through
THEIR relay, which delays what the delayed host answers. A relay on the accepting side
would reach etcd from its own address, and etcd checks a peer's client certificate
against the connection's source address (its IP SANs: `checkCertSAN`, etcd's
client/pkg/transport/listener_tls.go) and would refuse every peer. Every relay gets the
whole table of delayed addresses and reads its own row and the peer's.

What it does not delay: the TCP handshake (the kernel of the relay's namespace answers the
SYN at once, so a connect-time probe sees no delay), ICMP, SSH, and any port but etcd's
(2379, 2380). A peer that is cut off is seen as a connection that opens and is reset (the
relay's own connect fails), not as a connect timeout.

    python tests/testbed/delay.py --port 12379 --mark 29796 --local 192.168.56.10 \
        --delay 192.168.56.11=100:10        (run by net.Net.delay in a namespace)

The relay side uses the standard library only: it runs as a script, by path.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

SCRIPT = Path(__file__).resolve()
RELAY_PORT = 12379  # in each namespace of the testbed; etcd's ports are 2379/2380
MARK = 0x7464  # on the relay's own connections: the redirect rule lets them pass
SO_ORIGINAL_DST = 80  # linux/netfilter_ipv4.h
CONNECT_TIMEOUT_S = 5.0
CHUNK = 65536
QUEUED_CHUNKS = 256  # per direction: a bound on what a relay holds back (16 MiB)


@dataclass(frozen=True)
class Delay:
    ms: float
    jitter_ms: float = 0.0

    def __str__(self) -> str:
        return f"{self.ms:g}:{self.jitter_ms:g}"

    @classmethod
    def parse(cls, text: str) -> Delay:
        ms, _, jitter = text.partition(":")
        return cls(float(ms), float(jitter or 0))

    def draw(self, rng: random.Random) -> float:
        """Seconds, uniform in [ms - jitter, ms + jitter] (netem's default shape)."""
        return max(0.0, self.ms + rng.uniform(-self.jitter_ms, self.jitter_ms)) / 1000


def parse_table(entries: list[str]) -> dict[str, Delay]:
    """["192.168.56.11=100:10", ...] -> {address: Delay}."""
    table = {}
    for entry in entries:
        address, _, delay = entry.partition("=")
        table[address] = Delay.parse(delay)
    return table


def original_destination(sock: socket.socket) -> tuple[str, int]:
    """Where a redirected connection was going (the nat table's record of it)."""
    raw = sock.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
    port, packed = struct.unpack_from("!2xH4s", raw)
    return socket.inet_ntoa(packed), port


# -- the relay (runs in a namespace, as a script) --

async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                delay: Delay | None, rng: random.Random) -> None:
    """Copy until EOF, each chunk released at max(previous release, arrival + delay)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(maxsize=QUEUED_CHUNKS)

    async def release() -> None:
        while True:
            at, data = await queue.get()
            wait = at - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)  # the emulated delay itself
            if not data:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()

    async def read() -> None:
        last = 0.0
        while True:
            data = await reader.read(CHUNK)
            last = max(last, loop.time() + (delay.draw(rng) if delay else 0.0))
            await queue.put((last, data))
            if not data:
                return

    tasks = [asyncio.create_task(read()), asyncio.create_task(release())]
    try:
        # both end (EOF passed on), or one fails (a reset on either side): stop both
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            error = task.exception()
            if error is not None:
                raise error
    finally:
        for task in tasks:
            task.cancel()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0): the peer sees the failure at once."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.close()


class Relay:
    def __init__(self, local: str, table: dict[str, Delay], mark: int) -> None:
        self.local, self.table, self.mark = local, table, mark
        self.rng = random.Random()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                     ) -> None:
        loop = asyncio.get_running_loop()
        try:
            target = original_destination(writer.get_extra_info("socket"))
            upstream = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            upstream.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, self.mark)
            upstream.setblocking(False)
            try:
                await asyncio.wait_for(loop.sock_connect(upstream, target), CONNECT_TIMEOUT_S)
            except BaseException:
                upstream.close()
                raise
            up_reader, up_writer = await asyncio.open_connection(sock=upstream)
        except (OSError, TimeoutError):
            _reset(writer)
            return
        directions = [
            asyncio.create_task(_pipe(reader, up_writer, self.table.get(self.local), self.rng)),
            asyncio.create_task(_pipe(up_reader, writer, self.table.get(target[0]), self.rng)),
        ]
        try:
            done, _ = await asyncio.wait(directions, return_when=asyncio.FIRST_EXCEPTION)
            failed = any(t.exception() is not None for t in done)
        finally:
            for task in directions:
                task.cancel()
        for side in (writer, up_writer):
            if failed:
                _reset(side)
            else:
                side.close()


async def _serve(args: argparse.Namespace) -> None:
    relay = Relay(args.local, parse_table(args.delay), args.mark)
    server = await asyncio.start_server(relay.handle, "127.0.0.1", args.port,
                                        reuse_address=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"ready {os.getpid()}", flush=True)
    devnull = os.open(os.devnull, os.O_WRONLY)  # nobody reads our output from now on
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    async with server:
        await stop.wait()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description="TCP delay relay (see module docstring)")
    parser.add_argument("--port", type=int, default=RELAY_PORT)
    parser.add_argument("--mark", type=int, default=MARK)
    parser.add_argument("--local", required=True, help="this namespace's own address")
    parser.add_argument("--delay", action="append", default=[], metavar="ADDRESS=MS:JITTER")
    asyncio.run(_serve(parser.parse_args(argv)))


# -- managing relays (the testbed's side; every namespace here is the testbed's own) --

_children: dict[int, subprocess.Popen[bytes]] = {}  # relays this process started: reaped


def relay_rules(table_name: str, local: str, table: dict[str, Delay], ports: tuple[int, ...],
                interface: str) -> str:
    """The nat rules of one namespace: connections it opens to a delayed address (or, if
    it is itself delayed, every connection it opens out of `interface`) go to the relay."""
    dports = ", ".join(str(p) for p in ports)
    if local in table:
        match = f'oifname "{interface}" tcp dport {{ {dports} }}'
    else:
        match = f"ip daddr {{ {', '.join(sorted(table))} }} tcp dport {{ {dports} }}"
    return (f"table ip {table_name} {{\n chain output {{\n"
            "  type nat hook output priority -100; policy accept;\n"
            f"  meta mark {MARK} return\n"
            f"  {match} redirect to :{RELAY_PORT}\n }}\n}}\n")


def start_relay(ns: str, local: str, table: dict[str, Delay], timeout: float = 30) -> int:
    """A relay in namespace `ns`, listening once this returns; its PID."""
    argv = ["ip", "netns", "exec", ns, sys.executable, str(SCRIPT), "--local", local,
            *(f"--delay={address}={delay}" for address, delay in sorted(table.items()))]
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, start_new_session=True)
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    output = b""
    with process.stdout:
        while b"\n" not in output and time.monotonic() < deadline:
            ready, _, _ = select.select([process.stdout], [], [], deadline - time.monotonic())
            chunk = os.read(process.stdout.fileno(), 4096) if ready else b""
            if not chunk:
                break
            output += chunk
    if not output.startswith(b"ready "):
        process.kill()
        process.wait(timeout=10)
        raise RuntimeError(f"the delay relay in {ns} did not start: "
                           f"{output.decode(errors='replace').strip()[-2000:]}")
    _children[process.pid] = process
    return process.pid


def relay_pids(ns: str) -> list[int]:
    """The relays running in namespace `ns` (found by their script path)."""
    out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True,
                         timeout=30, check=False).stdout
    found = []
    for pid in out.split():
        argv = _argv(int(pid))
        if len(argv) > 1 and argv[1] == str(SCRIPT):
            found.append(int(pid))
    return found


def relay_table(pid: int) -> dict[str, Delay]:
    """The delay table a running relay was given."""
    return parse_table([a.removeprefix("--delay=") for a in _argv(pid)
                        if a.startswith("--delay=")])


def stop_relay(pid: int, timeout: float = 10) -> None:
    """SIGTERM, then SIGKILL after `timeout`; reaped when this process started it."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    child = _children.pop(pid, None)
    if child is not None:
        try:
            child.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(timeout=timeout)
        return
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + timeout
        time.sleep(0.05)  # polling another process's exit: no handle to wait on


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _argv(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


if __name__ == "__main__":
    main(sys.argv[1:])
