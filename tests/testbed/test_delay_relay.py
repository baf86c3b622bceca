"""The TCP delay relay (delay.py) on a small network of the testbed's kind (a bridge and
three namespaces, no containers): a request/answer round trip over one connection to a
delayed address rises by the delay, the server still sees the client's own address, and
heal leaves no relay and no rule behind."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.testbed import delay as relay
from tests.testbed.net import Net

# answers each line with the address the connection came from and the line
SERVER = r"""
import socket, sys, threading
listener = socket.create_server(("0.0.0.0", int(sys.argv[1])))
print("ready", flush=True)
def serve(conn, peer):
    with conn, conn.makefile("rb") as lines:
        for line in lines:
            conn.sendall(peer[0].encode() + b" " + line)
while True:
    threading.Thread(target=serve, args=listener.accept(), daemon=True).start()
"""
# N round trips over one connection: [[ms, answer], ...]
CLIENT = r"""
import json, socket, sys, time
sock = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
lines, found = sock.makefile("rb"), []
for _ in range(int(sys.argv[3])):
    started = time.perf_counter()
    sock.sendall(b"ping\n")
    answer = lines.readline().decode().split()[0]
    found.append([(time.perf_counter() - started) * 1000, answer])
print(json.dumps(found))
"""
# a stream of numbered lines, one small write each 1 ms; the numbers answered, in order
STREAM = r"""
import json, socket, sys, time
sock = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
count = int(sys.argv[3])
for n in range(count):
    sock.sendall(b"%d\n" % n)
    time.sleep(0.001)  # pacing: each line its own chunk at the relay
lines = sock.makefile("rb")
print(json.dumps([int(lines.readline().split()[1]) for _ in range(count)]))
"""
PORT = 2380  # a port the relays take (etcd's peer port)


@pytest.fixture(scope="module")
def net() -> Iterator[Net]:
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces)")
    net = Net(os.environ.get("DCSCTL_TESTBED_PREFIX", "dcstbt") + "d", "10.231.7")
    server: subprocess.Popen[str] | None = None
    try:
        net.ensure_bridge()
        net.ensure_attached(net.control_ns, net.port("ctl"), net.control_address)
        for index, host in enumerate(("a", "b")):
            net.ensure_attached(net.host_ns(host), net.port(host), net.address(index))
        net.check_isolation({"a": net.address(0), "b": net.address(1)})
        server = subprocess.Popen(["ip", "netns", "exec", net.host_ns("b"), sys.executable,
                                   "-c", SERVER, str(PORT)], stdout=subprocess.PIPE, text=True)
        assert server.stdout is not None and server.stdout.readline() == "ready\n"
        yield net
    finally:
        if server is not None:
            server.kill()
            server.wait(timeout=10)
        net.remove()
    assert net.namespaces() == []


def _round_trips(net: Net, ns: str, count: int = 12) -> tuple[list[float], set[str]]:
    out = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", CLIENT,
                          net.address(1), str(PORT), str(count)],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    samples = json.loads(out)
    return [ms for ms, _ in samples], {answer for _, answer in samples}


def test_the_relay_delays_what_the_host_sends_and_keeps_the_source_address(net: Net) -> None:
    before, _ = _round_trips(net, net.host_ns("a"))
    net.delay("b", 50)
    try:
        assert net.delays() == {net.address(1): relay.Delay(50)}
        assert "etcd TCP delayed 50 ms ± 0 ms" in net.faults("b")
        rtts, seen = _round_trips(net, net.host_ns("a"))
        assert seen == {net.address(0)}  # the server sees a, not a relay's address
        assert 50 <= statistics.median(rtts) < statistics.median(before) + 90, rtts
        control, seen = _round_trips(net, net.control_ns)  # the control side's too
        assert seen == {net.control_address} and statistics.median(control) >= 50
        net.delay("a", 30)  # both ends delayed: a's bytes by 30, b's answers by 50
        both, _ = _round_trips(net, net.host_ns("a"))
        assert 80 <= statistics.median(both) < statistics.median(before) + 120, both
    finally:
        net.heal("a")
        net.heal("b")
    after, _ = _round_trips(net, net.host_ns("a"))
    # the positive control's inverse: back near the first median, not 50 ms above it
    assert statistics.median(after) < statistics.median(before) + 40, (before, after)
    print(f"round trip medians: {statistics.median(before):.1f} ms; b delayed 50 ms "
          f"{statistics.median(rtts):.1f} ms (from the control side "
          f"{statistics.median(control):.1f}); a 30 + b 50 {statistics.median(both):.1f} ms;"
          f" healed {statistics.median(after):.1f} ms")
    assert net.delays() == {}
    for ns in (net.control_ns, net.host_ns("a"), net.host_ns("b")):
        assert relay.relay_pids(ns) == []
        tables = subprocess.run(["ip", "netns", "exec", ns, "nft", "list", "tables"],
                                capture_output=True, text=True, timeout=30, check=True).stdout
        assert "_delay" not in tables


def test_jitter_spreads_round_trips_without_reordering_a_stream(net: Net) -> None:
    net.delay("b", 40, 20)
    try:
        rtts, _ = _round_trips(net, net.host_ns("a"), count=30)
        out = subprocess.run(["ip", "netns", "exec", net.host_ns("a"), sys.executable, "-c",
                              STREAM, net.address(1), str(PORT), "300"],
                             capture_output=True, text=True, timeout=60, check=True).stdout
        assert json.loads(out) == list(range(300))
    finally:
        net.heal("b")
    assert min(rtts) >= 20, rtts
    assert max(rtts) - min(rtts) > 5, rtts  # a constant delay would not spread
    assert statistics.median(rtts) < 40 + 60, rtts
