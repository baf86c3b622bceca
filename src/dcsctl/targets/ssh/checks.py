"""Can these SSH hosts run an etcd member? Each check gives a verdict (`dcsctl preflight`).

SSH reachable, privileges, OS and init system, ports free, clock skew between the
hosts and this machine (raft leases and JWT expiry both trust clocks), room for the WAL
on the data filesystem, and a short
fsync probe of the data dir's disk: etcd fsyncs its WAL on every write and wants the
99th percentile under 10 ms.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from dcsctl import tuning
from dcsctl.errors import DcsctlError, EnvironmentProblem
from dcsctl.etcd.versions import advisories, upgrade_advice
from dcsctl.hosts.ssh import SshHost
from dcsctl.targets.disk import DISK_PROBE, data_disk, disk_check
from dcsctl.targets.protocol import Check, Verdict
from dcsctl.targets.ssh.init_systems import InitSystem
from dcsctl.targets.ssh.install import InstallState, superseded_package
from dcsctl.targets.ssh.place import Place
from dcsctl.tuning import ELECTION_RTT_FACTOR

MAX_CLOCK_SKEW_S = 0.5  # beyond this, lease and token expiry drift noticeably
CLOCK_FIX = ("synchronise the host's clock and this machine's (chrony or "
             "systemd-timesyncd on both), then run again")
WAL_FSYNC_P99_LIMIT_MS = 10.0
FSYNC_WRITES = 100

# Writes FSYNC_WRITES blocks of etcd's typical WAL entry size into a temporary file in
# the data dir (or its nearest existing parent), fdatasync after each, prints p50/p99.
FSYNC_PROBE = r"""
import os, sys, tempfile, time
path = sys.argv[1]
while not os.path.isdir(path):
    path = os.path.dirname(path)
fd, name = tempfile.mkstemp(prefix=".dcsctl-fsync-", dir=path)
try:
    took = []
    block = os.urandom(2300)
    for _ in range(int(sys.argv[2])):
        os.write(fd, block)
        start = time.perf_counter()
        os.fdatasync(fd)
        took.append((time.perf_counter() - start) * 1000)
finally:
    os.close(fd)
    os.unlink(name)
took.sort()
print(f"{took[len(took) // 2]:.3f} {took[min(len(took) - 1, int(len(took) * 0.99))]:.3f}")
"""


# The same measurement where the host has no python3 (a minimal Debian server has none):
# bash and dd, which every Debian host has. Each write is one `dd oflag=dsync` appending
# a WAL-sized block; the same loop without dsync measures what starting dd costs, and that
# baseline is subtracted (p50 from p50, p99 from p99). Prints "plain t0 t1 ..." and
# "dsync t0 t1 ...".
FSYNC_PROBE_SH = r"""
path=$1 n=$2
while [ ! -d "$path" ]; do path=$(dirname "$path"); done
f=$(mktemp -p "$path" .dcsctl-fsync-XXXXXX)
trap 'rm -f "$f"' EXIT
for mode in plain dsync; do
  flags=append
  [ "$mode" = dsync ] && flags=append,dsync
  line=$mode i=0
  while [ "$i" -lt "$n" ]; do
    t0=$EPOCHREALTIME
    dd if=/dev/zero of="$f" bs=2300 count=1 oflag="$flags" conv=notrunc status=none
    line="$line $t0 $EPOCHREALTIME"
    i=$((i + 1))
  done
  echo "$line"
done
"""


def fsync_from_dd(output: str) -> tuple[float, float]:
    """p50 and p99 (ms) of the dsync writes, less the same percentile of a plain dd."""
    samples: dict[str, list[float]] = {}
    for line in output.splitlines():
        mode, *stamps = line.replace(",", ".").split()
        times = [float(t) for t in stamps]
        samples[mode] = sorted((b - a) * 1000 for a, b in zip(times[::2], times[1::2],
                                                             strict=True))
    plain, dsync = samples["plain"], samples["dsync"]

    def cost(share: float) -> float:
        # percentile by percentile: dd's start-up jitter has a tail of its own
        def at(values: list[float]) -> float:
            return values[min(len(values) - 1, int(len(values) * share))]
        return max(0.0, at(dsync) - at(plain))

    return cost(0.5), cost(0.99)

# The round trip from this host to each other member: a TCP connect to its peer port
# (one SYN and its answer, SYN-ACK or RST, whether or not etcd listens yet), timed inside
# one bash with no process started per sample. Prints "ADDRESS:PORT t0 t1 t0 t1 ...".
RTT_PROBE = r"""
for target in "$@"; do
  addr=${target%:*} port=${target##*:} line=$target i=0
  while [ "$i" -lt 5 ]; do
    t0=$EPOCHREALTIME
    : 2>/dev/null 3<>"/dev/tcp/$addr/$port"
    line="$line $t0 $EPOCHREALTIME"
    i=$((i + 1))
  done
  echo "$line"
done
"""
RTT_SAMPLES = 5


def rtts_from_probe(output: str) -> dict[str, float]:
    """Median round trip (ms) per target of RTT_PROBE's output."""
    found = {}
    for line in output.splitlines():
        target, *stamps = line.replace(",", ".").split()
        times = [float(t) for t in stamps]
        samples = sorted((b - a) * 1000 for a, b in zip(times[::2], times[1::2], strict=True))
        if samples:
            found[target] = samples[len(samples) // 2]
    return found


def rtt_check(member: str, election_timeout_ms: int, rtts: dict[str, float]) -> Check:
    """WARN when the spec's election timeout is under 10 round trips to the farthest member:
    followers would start elections on ordinary network delay."""
    if not rtts:
        return Check(member, "rtt", Verdict.WARN, "round trip to the other members not measured")
    farthest, rtt = max(rtts.items(), key=lambda item: item[1])
    detail = f"up to {rtt:.2f} ms to the other members ({farthest})"
    if not tuning.election_is_enough(election_timeout_ms, rtt):
        try:
            timings = tuning.suggest(rtt)
        except DcsctlError as exc:  # beyond what etcd's timings can cover
            return Check(member, "rtt", Verdict.WARN, f"{detail}: {exc.message}")
        return Check(member, "rtt", Verdict.WARN,
                     f"{detail}: etcd.election_timeout_ms {election_timeout_ms} is under "
                     f"{ELECTION_RTT_FACTOR} x that; raise it to at least "
                     f"{timings.election_timeout_ms} (and heartbeat_interval_ms to "
                     f"{timings.heartbeat_interval_ms}; `dcsctl init --rtt-ms {rtt:.0f}` "
                     "writes both)")
    return Check(member, "rtt", Verdict.OK,
                 f"{detail}; election timeout {election_timeout_ms} ms >= "
                 f"{ELECTION_RTT_FACTOR} x")


def _rtt_check(place: Place) -> Check:
    member, cluster_spec = place.member, place.spec
    others = [f"{m.address}:{cluster_spec.peer_port(m)}" for m in cluster_spec.members
              if m.name != member.name]
    if not others:
        return Check(member.name, "rtt", Verdict.OK, "a single member: no round trip")
    result = place.host.run(["timeout", "10", "bash", "-c", RTT_PROBE, "bash", *others],
                            timeout=30)
    try:
        rtts = rtts_from_probe(result.stdout)
    except ValueError:
        rtts = {}
    return rtt_check(member.name, cluster_spec.etcd.election_timeout_ms, rtts)



def reach(place: Place, host: SshHost, init_system: InitSystem) -> list[Check]:
    """What `up` must know before it writes anything: the host answers, as root, runs the
    spec's init system, its clock agrees with this machine's and the data dir has room."""
    name = place.member.name
    data_dir = str(place.layout.data_dir)
    answer = host.run(["sh", "-c", "id -u; cat /proc/1/comm;" + DISK_PROBE, "sh", data_dir])
    uid, init, df_line = [*answer.stdout.splitlines(), "", "", ""][:3]
    if uid != "0":
        raise EnvironmentProblem(
            f"{name}: commands on {host.destination} run as uid {uid}, not root",
            fix="log in as root, or keep `ssh: {sudo: true}` with passwordless sudo",
        )
    how = "sudo" if place.spec.ssh.sudo else "login"
    return [Check(name, "ssh", Verdict.OK, f"reached {host.destination}"),
            Check(name, "privileges", Verdict.OK, f"root via {how}"),
            init_system.host_check(init),
            _clock_check(name, host),
            disk_check(name, data_dir, df_line)]


def clock_check(member: str, remote_clock: str, before: float, after: float) -> Check:
    """The host's clock against this machine's, from `date +%s.%N` read between `before`
    and `after` (the error is at most half that round trip)."""
    try:
        skew = float(remote_clock) - (before + after) / 2
    except ValueError:
        return Check(member, "clock", Verdict.WARN, "could not read the host's clock")
    detail = (f"{skew * 1000:+.0f} ms against this machine (round trip "
              f"{(after - before) * 1000:.0f} ms)")
    # Only what the measurement proves: the skew less its uncertainty (a slow round trip
    # on a loaded machine is no skew).
    if abs(skew) - (after - before) / 2 <= MAX_CLOCK_SKEW_S:
        return Check(member, "clock", Verdict.OK, detail)
    return Check(member, "clock", Verdict.FAIL,
                 f"clock {detail}; etcd's leases, JWT tokens and certificate "
                 f"validity need clocks within {MAX_CLOCK_SKEW_S * 1000:.0f} ms",
                 fix=CLOCK_FIX)


def _clock_check(member: str, host: SshHost) -> Check:
    # Asked over the connection already open, so the round trip is short.
    before = time.time()
    remote_clock = host.run(["date", "+%s.%N"]).stdout.strip()
    return clock_check(member, remote_clock, before, time.time())


def host_checks(place: Place, host: SshHost, init_system: InitSystem,
                state: Callable[[], InstallState]) -> list[Check]:
    """`dcsctl preflight`'s full list for one host."""
    name = place.member.name
    try:
        result = host.run(["sh", "-c", "id -u; cat /proc/1/comm; "
                           ". /etc/os-release && echo \"$PRETTY_NAME\""])
        clock = _clock_check(name, host)
    except DcsctlError as exc:
        return [Check(name, "ssh", Verdict.FAIL, exc.message, fix=exc.fix)]
    checks = [Check(name, "ssh", Verdict.OK, f"reached {host.destination}")]
    lines = [*result.stdout.splitlines(), "", "", ""]
    uid, init, os_name = lines[:3]
    if uid == "0":
        how = "sudo -n" if place.spec.ssh.sudo else "root login"
        checks.append(Check(name, "privileges", Verdict.OK, f"root via {how}"))
    else:
        checks.append(Check(name, "privileges", Verdict.FAIL,
                            f"commands run as uid {uid or '?'}: dcsctl needs root there "
                            "(passwordless sudo, or log in as root)"))
    checks.append(Check(name, "os", Verdict.OK if os_name else Verdict.WARN,
                        os_name or "no /etc/os-release"))
    checks.append(init_system.host_check(init))
    checks.append(clock)
    checks.append(data_disk(host, name, place.layout.data_dir))
    checks.append(_ports_check(place, init_system))
    checks.append(_fsync_check(place))
    checks.append(_rtt_check(place))
    checks.append(_etcd_check(place, state()))
    return checks


def _etcd_check(place: Place, state: InstallState) -> Check:
    """The etcd already on the host: its advisories, and a package left beside a release."""
    member = place.member
    if superseded := superseded_package(place, state):
        return Check(member.name, "etcd", Verdict.WARN, superseded.partition(": ")[2])
    if state.version is None:
        return Check(member.name, "etcd", Verdict.OK, "not installed yet (up installs it)")
    found = advisories(state.version)
    if found:
        return Check(member.name, "etcd", Verdict.WARN,
                     f"etcd {state.version} has {', '.join(a.ident for a in found)}: "
                     f"upgrade to {upgrade_advice(state.version)}")
    return Check(member.name, "etcd", Verdict.OK, f"etcd {state.version}")


def _ports_check(place: Place, init_system: InitSystem) -> Check:
    member, host = place.member, place.host
    if init_system.service().is_active():
        return Check(member.name, "ports", Verdict.OK, "held by this cluster's etcd")
    listening = host.run(["ss", "-Hltn"])
    if not listening.ok:
        return Check(member.name, "ports", Verdict.WARN, "`ss` is missing: ports not checked")
    wanted = {place.spec.client_port(member), place.spec.peer_port(member)}
    busy = []
    for line in listening.stdout.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        address, _, port = fields[3].rpartition(":")
        if port.isdigit() and int(port) in wanted and address in {
            str(member.address), "0.0.0.0", "*", "[::]"  # noqa: S104 - what ss prints
        }:
            busy.append(fields[3])
    if busy:
        return Check(member.name, "ports", Verdict.FAIL,
                     f"in use: {', '.join(busy)} — stop that service or change the ports")
    return Check(member.name, "ports", Verdict.OK,
                 ", ".join(f"{member.address}:{p}" for p in sorted(wanted)) + " free")


def _fsync_check(place: Place) -> Check:
    member, host = place.member, place.host
    data_dir = place.layout.data_dir
    result = host.run(["python3", "-c", FSYNC_PROBE, str(data_dir), str(FSYNC_WRITES)],
                      timeout=120)
    how = ""
    try:
        if result.ok:
            p50, p99 = (float(v) for v in result.stdout.split())
        else:  # no python3 on the host
            result = host.run(["bash", "-c", FSYNC_PROBE_SH, "bash", str(data_dir),
                               str(FSYNC_WRITES)], timeout=120)
            p50, p99 = fsync_from_dd(result.stdout)
            how = " (dd oflag=dsync less a plain dd: no python3 on the host)"
    except (ValueError, KeyError, IndexError):
        return Check(member.name, "fsync", Verdict.WARN,
                     f"not measured ({(result.stderr.strip() or 'no output')[-200:]})")
    verdict = Verdict.OK if p99 < WAL_FSYNC_P99_LIMIT_MS else Verdict.WARN
    note = "" if verdict is Verdict.OK else " — etcd wants < 10 ms: use an SSD"
    return Check(member.name, "fsync", verdict,
                 f"p50 {p50:.2f} ms, p99 {p99:.2f} ms over {FSYNC_WRITES} WAL-sized "
                 f"writes in {data_dir}{how}{note}")
