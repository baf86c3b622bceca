"""A recorded workload and its linearizability check (tools/histcheck, on porcupine).

`Workload` runs N concurrent clients (etcd3aio, the client dcsctl uses, one connection
each, round-robin over the members) that read, write, delete and contend for a Patroni-like
leader key: create-if-absent with a lease, compare-and-swap on the value to renew it, lease
keepalives and revocations. Every call and its return are recorded with monotonic
nanoseconds in histcheck's JSON-lines format; a call that got no answer is an unknown
outcome (`return: null, ok: null`), a call the server refused before acting a failure
(`ok: false`). Bounded in count and time; a client that crashes on anything but an etcd
error fails the workload.

Keys rotate: every GENERATION operations the workload moves to fresh data keys, and every
LEADER_GENERATION to a fresh leader key (with fresh leases), so each key's history stays
short enough for the checker to search exhaustively even with unknown outcomes in it.
When the clients stop, one more client reads every key back (a lost write shows even on a
key the workload had moved on from).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import random
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import grpc
from etcd3aio import Etcd3Client

from dcsctl.etcd.client import ClientTls, client_loop
from dcsctl.ops.cluster import Cluster
from tests.support import HasSpecFile, cluster_of, poll

REPO = Path(__file__).resolve().parents[2]
HISTCHECK = REPO / ".tools" / "bin" / "histcheck"

GENERATION = 120  # operations on one set of data keys
DATA_KEYS = 3  # data keys per generation
LEADER_GENERATION = 240  # operations on one leader key
LEASE_TTL = 3  # seconds: like Patroni's ttl, short enough to expire within a test
SWEEP_S = 120.0  # the final read of every key, at most
DEADLINE_S = 2.0  # per call, like dcsctl's writer and Patroni's retry_timeout share

# gRPC codes with which etcd refuses a write that took no effect: checked before the
# proposal (lease not found, permissions, bad request, too many requests) or refused when
# applied (NOSPACE: "database space exceeded"). Anything else (deadline, unavailable,
# leader changed, a dropped connection) may have been committed: unknown.
REFUSED = {"NOT_FOUND", "PERMISSION_DENIED", "INVALID_ARGUMENT", "UNAUTHENTICATED",
           "OUT_OF_RANGE", "RESOURCE_EXHAUSTED"}

# How a call slower than DEADLINE_S ends: no answer, which a busy machine explains, not an
# error the cluster gave (asyncio's TimeoutError at our deadline, gRPC's own at etcd's).
SLOW = frozenset({"TimeoutError", "DEADLINE_EXCEEDED"})

Connect = Callable[[], tuple[list[str], ClientTls]]


def lab_connect(lab: HasSpecFile) -> Connect:
    """Endpoints and admin TLS of a lab cluster, read afresh at every (re)connect: a
    rotation changes the trust, a member replacement the endpoints."""

    def connect() -> tuple[list[str], ClientTls]:
        cluster = cluster_of(lab)
        return cluster.endpoints(), cluster.admin_tls()

    return connect


def cluster_connect(cluster: Callable[[], Cluster]) -> Connect:
    def connect() -> tuple[list[str], ClientTls]:
        current = cluster()
        return current.endpoints(), current.admin_tls()

    return connect


def _code(exc: BaseException) -> str:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, grpc.aio.AioRpcError):
            return str(cause.code().name)
        cause = cause.__cause__ or cause.__context__
    return type(exc).__name__


def _target(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 2379}"


@dataclass
class Summary:
    """What a workload did, for the figures: operations recorded, of which writes
    acknowledged, unknown outcomes, failures."""

    operations: int
    acked_writes: int
    unknown: int
    failed: int


@dataclass
class Checked:
    """histcheck's verdict on one history file."""

    path: Path
    code: int  # 0 linearizable, 1 not, 2 bad input, 3 undecided
    output: str

    @property
    def linearizable(self) -> bool:
        return self.code == 0


def check_history(path: Path, timeout_s: float = 240) -> Checked:
    """Run histcheck on a history file."""
    if not HISTCHECK.exists():
        raise FileNotFoundError(f"{HISTCHECK} is missing: run scripts/setup")
    done = subprocess.run([str(HISTCHECK), "-timeout", f"{timeout_s:g}s", str(path)],
                          capture_output=True, text=True, timeout=timeout_s + 60, check=False)
    return Checked(path, done.returncode, done.stdout + done.stderr)


@dataclass
class Workload:
    """Run as a context manager; the history is written to `path` on exit."""

    connect: Connect
    prefix: str
    path: Path
    clients: int = 4
    max_ops: int = 40_000
    max_seconds: float = 300.0
    pace_s: float = 0.01  # per client, between calls
    seed: int = 21
    records: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    # (call, gave up) of every call that failed or got no answer, in ns: how long a client
    # waited before it gave up (an unknown outcome has no return in the history)
    gave_up: list[tuple[int, int]] = field(default_factory=list)
    # how the calls that failed or got no answer ended: gRPC code or exception type, count
    failures: Counter[str] = field(default_factory=Counter, init=False)
    _stop: asyncio.Event | None = None
    _future: concurrent.futures.Future[None] | None = None
    _started: int = 0
    _issued: int = 0
    _lease_ids: int = 0

    # -- lifecycle --
    def __enter__(self) -> Workload:
        assert self.clients >= 1 and self.prefix.endswith("/")
        # Lease IDs are chosen by the client (so a grant without an answer still names its
        # lease), at random: two workloads on one cluster never ask for the same ID.
        self._lease_ids = random.SystemRandom().randrange(1 << 40, 1 << 50)
        self._future = asyncio.run_coroutine_threadsafe(self._run(), client_loop())
        poll(lambda: self._stop is not None or None, 10, "the workload did not start")
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop the clients, wait for them, write the history; raise if a client crashed."""
        if self._future is None:
            return
        loop = client_loop()
        if self._stop is not None:
            loop.call_soon_threadsafe(self._stop.set)
        try:
            self._future.result(timeout=DEADLINE_S * 4 + SWEEP_S + 30)
        finally:
            self._future = None
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text("".join(json.dumps(r) + "\n" for r in self.records))
        if self.errors:
            raise AssertionError(f"the workload failed: {self.errors[:3]}")

    def alive(self) -> bool:
        return self._future is not None and not self._future.done()

    # -- what happened --
    def acked_writes(self, since_ns: int = 0) -> int:
        """Writes acknowledged that were called at or after `since_ns` (0: all)."""
        return sum(1 for r in list(self.records) if r["call"] >= since_ns and acked_write(r))

    def acked_write_returns(self, since_ns: int) -> list[int]:
        """Return times of the writes acknowledged that were called at or after `since_ns`."""
        return sorted(r["return"] for r in list(self.records)
                      if r["call"] >= since_ns and acked_write(r))

    def wait_acked(self, count: int, since_ns: int = 0, timeout: float = 30.0) -> None:
        """Block until `count` writes called at or after `since_ns` are acknowledged."""

        def enough() -> bool:
            if not self.alive():
                raise AssertionError(f"the workload stopped: {self.errors[:3]}")
            return self.acked_writes(since_ns) >= count

        poll(enough, timeout, f"{count} writes acknowledged since the fault", interval=0.02)

    def summary(self) -> Summary:
        records = list(self.records)
        return Summary(len(records), sum(1 for r in records if acked_write(r)),
                       sum(1 for r in records if r["ok"] is None),
                       sum(1 for r in records if r["ok"] is False))

    # -- the clients --
    async def _run(self) -> None:
        self._stop = asyncio.Event()
        deadline = time.monotonic() + self.max_seconds
        await asyncio.gather(*(self._client(n, deadline) for n in range(self.clients)))
        if not self.errors:
            await self._sweep()

    async def _sweep(self) -> None:
        """Read back every key the clients touched, as one more client: an acknowledged
        write that is gone shows as a read the checker cannot place, even on a key the
        workload had moved on from. A read that gets no answer is tried again (bounded)."""
        keys = sorted({str(r["key"]) for r in self.records if "key" in r})
        deadline = time.monotonic() + SWEEP_S
        client = await self._connect()
        try:
            for key in keys:
                for _ in range(5):
                    if time.monotonic() > deadline:
                        self.errors.append(f"the final reads took over {SWEEP_S:g} s")
                        return
                    if await self._get(client, self.clients, key):
                        break
                    await client.close()
                    client = await self._connect()
                else:
                    self.errors.append(f"the final read of {key} got no answer 5 times")
        finally:
            await client.close()

    async def _connect(self) -> Any:
        endpoints, tls = await asyncio.to_thread(self.connect)
        client = Etcd3Client([_target(url) for url in endpoints], rpc_max_attempts=1,
                             tls_server_name=tls.server_name, ca_cert=tls.ca_pem,
                             cert_key=tls.key_pem, cert_chain=tls.cert_pem)
        await client.connect()
        return client

    async def _client(self, number: int, deadline: float) -> None:
        assert self._stop is not None
        rng = random.Random(self.seed * 1000 + number)
        seq = 0
        lease = 0  # this client's lease on the current leader key
        lease_key = ""
        holding: str | None = None  # the value this client last wrote to the leader key
        client = None
        try:
            client = await self._connect()
            while not self._stop.is_set() and self._issued < self.max_ops \
                    and time.monotonic() < deadline:
                self._issued += 1
                seq += 1
                value = f"c{number}-{seq}"
                generation = self._issued // GENERATION
                leader_key = f"{self.prefix}leader/{self._issued // LEADER_GENERATION}"
                if lease_key != leader_key:  # a fresh key takes fresh leases
                    lease, lease_key, holding = 0, leader_key, None
                roll = rng.random()
                ok = True
                if roll < 0.35:
                    key = f"{self.prefix}k/{generation}/{rng.randrange(DATA_KEYS)}"
                    ok = await self._get(client, number, key)
                elif roll < 0.62:
                    key = f"{self.prefix}k/{generation}/{rng.randrange(DATA_KEYS)}"
                    ok = await self._put(client, number, key, value)
                elif roll < 0.66:
                    key = f"{self.prefix}k/{generation}/{rng.randrange(DATA_KEYS)}"
                    ok = await self._delete(client, number, key)
                elif roll < 0.74:
                    ok = await self._get(client, number, leader_key)
                elif lease == 0:
                    self._lease_ids += 1
                    lease = self._lease_ids
                    ok = await self._grant(client, number, lease)
                    if not ok:
                        lease = 0
                elif holding is not None and roll > 0.985:
                    # Patroni releasing the leader key on shutdown: revoke the lease.
                    ok = await self._revoke(client, number, lease, leader_key)
                    lease, holding = 0, None
                elif holding is not None:
                    # The leader's loop: keep the lease alive, then renew the key by value.
                    alive = await self._keepalive(client, number, lease)
                    ok = alive is not None
                    if alive is False:  # expired: the next round grants a new lease
                        lease, holding = 0, None
                    elif alive:
                        won = await self._cas(client, number, leader_key, holding, value, lease)
                        holding = value if won else None
                        ok = won is not None
                    else:
                        holding = None
                else:
                    won = await self._create(client, number, leader_key, value, lease)
                    holding = value if won else None
                    ok = won is not None
                    if won is None:  # the lease may be gone (refused) or unknown: a new one
                        lease = 0
                if not ok:
                    # Like a real client: reconnect with what is published now (a rotation
                    # changes the trust, a replacement the members).
                    await client.close()
                    client = await self._connect()
                await asyncio.sleep(self.pace_s)
        except Exception as exc:  # the workload's own failure, not etcd's answer
            self.errors.append(f"client {number}: {type(exc).__name__}: {exc}")
        finally:
            if client is not None:
                await client.close()

    # -- one call each, recorded --
    async def _record(self, number: int, op: dict[str, Any], call: Any,
                      answer: Callable[[Any], dict[str, Any]], write: bool) -> Any | None:
        """Run `call`, record it; the response, or None when it failed or is unknown."""
        started = time.monotonic_ns()
        try:
            response = await asyncio.wait_for(call(), DEADLINE_S)
        except (TimeoutError, grpc.aio.AioRpcError, ConnectionError, OSError) as exc:
            self._failed(number, op, started, exc, write)
            return None
        except Exception as exc:
            if type(exc).__module__.startswith("etcd3aio"):
                self._failed(number, op, started, exc, write)
                return None
            raise
        returned = time.monotonic_ns()
        self.records.append({"client": number, **op, "call": started, "return": returned,
                             "ok": True, **answer(response)})
        return response

    def _failed(self, number: int, op: dict[str, Any], started: int, exc: BaseException,
                write: bool) -> None:
        code = _code(exc)
        refused = code in REFUSED
        self.failures[code] += 1
        self.gave_up.append((started, time.monotonic_ns()))
        if write and not refused:
            self.records.append({"client": number, **op, "call": started, "return": None,
                                 "ok": None})
        else:
            self.records.append({"client": number, **op, "call": started,
                                 "return": time.monotonic_ns(), "ok": False})

    async def _get(self, client: Any, number: int, key: str) -> bool:
        response = await self._record(
            number, {"op": "get", "key": key}, lambda: client.kv.get(key),
            lambda r: {"result": r.kvs[0].value.decode() if r.kvs else None}, write=False)
        return response is not None

    async def _put(self, client: Any, number: int, key: str, value: str) -> bool:
        response = await self._record(
            number, {"op": "put", "key": key, "value": value},
            lambda: client.kv.put(key, value), lambda _: {}, write=True)
        return response is not None

    async def _delete(self, client: Any, number: int, key: str) -> bool:
        response = await self._record(
            number, {"op": "delete", "key": key}, lambda: client.kv.delete(key),
            lambda _: {}, write=True)
        return response is not None

    async def _grant(self, client: Any, number: int, lease: int) -> bool:
        response = await self._record(
            number, {"op": "grant", "lease": lease},
            lambda: client.lease.grant(LEASE_TTL, lease), lambda r: {"ttl": int(r.TTL)},
            write=True)
        return response is not None

    async def _keepalive(self, client: Any, number: int, lease: int) -> bool | None:
        """True: renewed; False: the lease is gone; None: no answer."""
        async def once() -> Any:
            stream = client.lease.keep_alive(lease)
            try:
                async for response in stream:
                    return response
                raise ConnectionError("the keepalive stream closed without an answer")
            finally:
                stream.cancel()

        response = await self._record(number, {"op": "keepalive", "lease": lease}, once,
                                      lambda r: {"ttl": int(r.TTL)}, write=True)
        return None if response is None else int(response.TTL) > 0

    async def _revoke(self, client: Any, number: int, lease: int, key: str) -> bool:
        response = await self._record(
            number, {"op": "revoke", "lease": lease, "key": key},
            lambda: client.lease.revoke(lease), lambda _: {}, write=True)
        return response is not None

    async def _create(self, client: Any, number: int, key: str, value: str,
                      lease: int) -> bool | None:
        """Patroni's leader race: put with our lease if the key does not exist."""
        kv = client.kv
        response = await self._record(
            number, {"op": "create", "key": key, "value": value, "lease": lease},
            lambda: kv.txn([kv.txn_compare_create_revision(key, 0)],
                           [kv.txn_op_put(key, value, lease=lease)]),
            lambda r: {"succeeded": bool(r.succeeded)}, write=True)
        return None if response is None else bool(response.succeeded)

    async def _cas(self, client: Any, number: int, key: str, prev: str, value: str,
                   lease: int) -> bool | None:
        """Patroni's leader renewal: rewrite the key only if it still holds our value."""
        kv = client.kv
        response = await self._record(
            number, {"op": "cas", "key": key, "prev": prev, "value": value, "lease": lease},
            lambda: kv.txn([kv.txn_compare_value(key, prev)],
                           [kv.txn_op_put(key, value, lease=lease)]),
            lambda r: {"succeeded": bool(r.succeeded)}, write=True)
        return None if response is None else bool(response.succeeded)


def acked_write(record: dict[str, Any]) -> bool:
    """An acknowledged put or delete, or a create or cas that won."""
    if record["ok"] is not True:
        return False
    if record["op"] in {"put", "delete"}:
        return True
    return record["op"] in {"create", "cas"} and bool(record.get("succeeded"))


def assert_empty(connect: Connect, prefix: str) -> None:
    """A scenario's prefix holds nothing before it starts: what it finds is its own."""

    async def count() -> int:
        endpoints, tls = connect()
        client = Etcd3Client([_target(url) for url in endpoints], tls_server_name=tls.server_name,
                             ca_cert=tls.ca_pem, cert_key=tls.key_pem, cert_chain=tls.cert_pem)
        await client.connect()
        try:
            from etcd3aio.kv import prefix_range_end

            response = await client.kv.get(prefix, prefix_range_end(prefix), count_only=True,
                                           timeout=10)
            return int(response.count)
        finally:
            await client.close()

    found = asyncio.run_coroutine_threadsafe(count(), client_loop()).result(timeout=30)
    assert found == 0, f"prefix {prefix} already holds {found} keys: not a fresh prefix"
