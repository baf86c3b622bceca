"""etcd's timing rule for a network's round trip, in one place: `dcsctl init --rtt-ms`
suggests timings with it, `preflight`'s rtt check holds a spec's timings against it.

etcd's tuning guide: the heartbeat interval should be around the round trip between
members (0.5-1.5x of it), the election timeout at least 10 times the round trip, to absorb
the network's variance; etcd's defaults (100 ms / 1000 ms) suit a local network and are
the floor here, and etcd refuses an election timeout above 50 s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from dcsctl.errors import DcsctlError
from dcsctl.spec import ClusterSpec, EtcdSettings, digest_source, from_mapping

ELECTION_RTT_FACTOR = 10  # etcd's tuning guide: election timeout >= 10 x the RTT
DEFAULT_HEARTBEAT_MS = EtcdSettings.model_fields["heartbeat_interval_ms"].default
DEFAULT_ELECTION_MS = EtcdSettings.model_fields["election_timeout_ms"].default
MAX_ELECTION_MS = 50_000  # etcd's own upper limit (and the spec's)
HEARTBEAT_STEP_MS = 10  # suggestions are rounded up to whole steps: easier to read
ELECTION_STEP_MS = 100


@dataclass(frozen=True)
class Timings:
    heartbeat_interval_ms: int
    election_timeout_ms: int
    rtt_ms: float

    def why(self) -> list[str]:
        """Comment lines for the spec: where these numbers come from."""
        return [
            f"timings for a {self.rtt_ms:g} ms round trip between members (dcsctl init "
            "--rtt-ms), by etcd's tuning guide:",
            f"heartbeat_interval_ms ~ the round trip, at least etcd's default "
            f"{DEFAULT_HEARTBEAT_MS} -> {self.heartbeat_interval_ms}; election_timeout_ms >= "
            f"{ELECTION_RTT_FACTOR} x the heartbeat -> {self.election_timeout_ms}",
            "`dcsctl preflight` measures the real round trip and warns when the election "
            f"timeout is under {ELECTION_RTT_FACTOR} of them",
        ]


def _round_up(value: float, step: int) -> int:
    return int(math.ceil(value / step) * step)


def suggest(rtt_ms: float) -> Timings:
    """Heartbeat ~ the round trip (never under etcd's default), election timeout
    ELECTION_RTT_FACTOR heartbeats: so at least ELECTION_RTT_FACTOR round trips."""
    if not math.isfinite(rtt_ms) or rtt_ms <= 0:
        raise DcsctlError(f"a round trip of {rtt_ms:g} ms is not a network's",
                          fix="give the measured round trip between members in ms, e.g. "
                              "--rtt-ms 50 (`ping` between two hosts shows it)")
    heartbeat = max(DEFAULT_HEARTBEAT_MS, _round_up(rtt_ms, HEARTBEAT_STEP_MS))
    election = max(DEFAULT_ELECTION_MS,
                   _round_up(ELECTION_RTT_FACTOR * heartbeat, ELECTION_STEP_MS))
    if election > MAX_ELECTION_MS:
        raise DcsctlError(
            f"a round trip of {rtt_ms:g} ms needs an election timeout of {election} ms; "
            f"etcd allows at most {MAX_ELECTION_MS}",
            fix="members that far apart do not make one etcd cluster: keep the round trip "
                f"under {MAX_ELECTION_MS // ELECTION_RTT_FACTOR} ms")
    return Timings(heartbeat, election, rtt_ms)


def election_is_enough(election_timeout_ms: int, rtt_ms: float) -> bool:
    """The spec's election timeout covers ELECTION_RTT_FACTOR round trips."""
    return election_timeout_ms >= ELECTION_RTT_FACTOR * rtt_ms


def with_timings(cluster: ClusterSpec, timings: Timings) -> ClusterSpec:
    """The spec with the suggested heartbeat and election timeout (validated again)."""
    raw = digest_source(cluster)
    raw["etcd"] = {**raw.get("etcd", {}),
                   "heartbeat_interval_ms": timings.heartbeat_interval_ms,
                   "election_timeout_ms": timings.election_timeout_ms}
    return from_mapping(raw, source=f"the spec tuned for a {timings.rtt_ms:g} ms round trip")
