"""Watches Patroni clusters on the testbed's database hosts while dcsctl operates the DCS,
from the control side (`ip netns exec`); run by Patroni's own Python (.tools/patroni has
psycopg), so nothing of dcsctl is imported here.

  pgwatch CONFIG OUT MAX_SECONDS    until stdin closes or MAX_SECONDS: per scope, a writer
                                    (one INSERT a commit, through the primary: libpq's
                                    target_session_attrs=read-write over every node) and a
                                    sampler (every node's GET /patroni every 0.5 s), as
                                    JSON lines in OUT
  pgwatch CONFIG check              JSON {scope: [ids present]} read from each primary

CONFIG: {"scopes": [{"name", "port", "hosts": [address...], "apis": {node: url}}],
"interval": seconds between writes}. The password comes from PGPASSFILE (0600).

Analysis (`summarise`) is pure: it reads the lines back.
"""

from __future__ import annotations

import json
import select
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

SAMPLE_EVERY_S = 0.5
TABLE = "dcsctl_writes"


class Out:
    def __init__(self, path: str) -> None:
        self._file = open(path, "a", buffering=1)  # noqa: SIM115 - closed by main
        self._lock = threading.Lock()

    def line(self, record: Mapping[str, object]) -> None:
        with self._lock:
            self._file.write(json.dumps(record) + "\n")

    def close(self) -> None:
        self._file.close()


def _dsn(scope: Mapping[str, Any], timeout: int = 3) -> str:
    hosts = ",".join(scope["hosts"])
    return (f"host={hosts} port={scope['port']} user=postgres dbname=postgres "
            f"target_session_attrs=read-write connect_timeout={timeout}")


def sample(scope: Mapping[str, Any], out: Out, stop: threading.Event) -> None:
    while not stop.is_set():
        for node, url in scope["apis"].items():
            record: dict[str, object] = {"k": "s", "t": time.time(), "scope": scope["name"],
                                         "node": node}
            try:
                with urllib.request.urlopen(f"{url}/patroni", timeout=2) as response:
                    state = json.loads(response.read())
                record.update(role=state.get("role"), state=state.get("state"),
                              pg_start=state.get("postmaster_start_time"),
                              seen=state.get("dcs_last_seen"),
                              timeline=state.get("timeline"))
            except (urllib.error.URLError, OSError, ValueError) as exc:
                record.update(role="unreachable", error=str(exc))
            out.line(record)
        stop.wait(SAMPLE_EVERY_S)


def write(scope: Mapping[str, Any], out: Out, stop: threading.Event, interval: float,
          max_seconds: float) -> None:
    """Bounded in count and time. A failed commit may still have been applied: it is
    `fail`, never counted as acknowledged or lost."""
    import psycopg

    start = time.monotonic()
    count = int(max_seconds / interval) + 1
    connection: Any = None
    for index in range(1, count + 1):
        if stop.is_set() or time.monotonic() - start > max_seconds:
            break
        stop.wait(max(0.0, start + index * interval - time.monotonic()))
        try:
            if connection is None:
                connection = psycopg.connect(_dsn(scope), autocommit=True)
                connection.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} "
                                   "(id bigint PRIMARY KEY, t double precision)")
            connection.execute(f"INSERT INTO {TABLE} VALUES (%s, %s)",
                               (index, time.time()))
            out.line({"k": "ack", "t": time.time(), "scope": scope["name"], "id": index})
        except psycopg.Error as exc:
            out.line({"k": "fail", "t": time.time(), "scope": scope["name"], "id": index,
                      "error": str(exc).strip()[:300]})
            if connection is not None:
                connection.close()
            connection = None
    if connection is not None:
        connection.close()


def check(config: Mapping[str, Any]) -> dict[str, list[int]]:
    import psycopg

    found = {}
    for scope in config["scopes"]:
        with psycopg.connect(_dsn(scope, timeout=10)) as connection:
            rows = connection.execute(f"SELECT id FROM {TABLE} ORDER BY id").fetchall()
        found[scope["name"]] = [int(row[0]) for row in rows]
    return found


def watch(config: Mapping[str, Any], path: str, max_seconds: float) -> None:
    out = Out(path)
    stop = threading.Event()
    threads = []
    for scope in config["scopes"]:
        threads.append(threading.Thread(target=sample, args=(scope, out, stop)))
        threads.append(threading.Thread(target=write, args=(
            scope, out, stop, float(config["interval"]), max_seconds)))
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + max_seconds
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([sys.stdin], [], [], 0.5)
            if ready and not sys.stdin.readline():
                break
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        out.close()


# -- the analysis (pure) --

@dataclass(frozen=True)
class Window:
    """What happened to one scope between `start` and `end` (time.time())."""

    scope: str
    demotions: int  # a node seen primary, then another role (unreachable does not count)
    promotions: int  # a node seen in another role, then primary
    pg_restarts: int  # PostgreSQL start time changed on a node
    longest_seen_age_s: float  # the oldest dcs_last_seen any answer gave (sample time - it)
    unanswered: int  # samples with no answer (REST API timed out on a busy machine)
    samples: int
    acked: int
    failed: int


def read(path: str) -> list[dict[str, Any]]:
    with open(path) as lines:
        return [json.loads(line) for line in lines if line.endswith("}\n")]


def summarise(records: Sequence[Mapping[str, Any]], scope: str, start: float, end: float
              ) -> Window:
    """A node's role and start time are compared with its own previous answer, which may
    come from before `start`: a change that lands inside the window counts there."""
    demotions = promotions = restarts = unanswered = samples = acked = failed = 0
    oldest = 0.0
    last: dict[str, Mapping[str, Any]] = {}
    for record in records:
        if record.get("scope") != scope or float(record["t"]) >= end:
            continue
        inside = float(record["t"]) >= start
        kind = record["k"]
        if kind in ("ack", "fail"):
            if inside:
                acked += kind == "ack"
                failed += kind == "fail"
            continue
        node = str(record["node"])
        if record.get("role") == "unreachable":
            unanswered += inside
            continue
        before = last.get(node)
        last[node] = record
        if not inside:
            continue
        samples += 1
        if record.get("seen") is not None:
            oldest = max(oldest, float(record["t"]) - float(record["seen"]))
        if before is None:
            continue
        if before.get("role") == "primary" and record.get("role") != "primary":
            demotions += 1
        if before.get("role") != "primary" and record.get("role") == "primary":
            promotions += 1
        if before.get("pg_start") != record.get("pg_start"):
            restarts += 1
    return Window(scope, demotions, promotions, restarts, round(oldest, 1), unanswered,
                  samples, acked, failed)


def acknowledged(records: Iterable[Mapping[str, Any]], scope: str) -> list[int]:
    return [int(r["id"]) for r in records if r.get("scope") == scope and r["k"] == "ack"]


def main(argv: list[str]) -> None:
    with open(argv[0]) as source:
        config = json.load(source)
    if argv[1] == "check":
        print(json.dumps(check(config)))
        return
    watch(config, argv[1], float(argv[2]))


if __name__ == "__main__":
    main(sys.argv[1:])
