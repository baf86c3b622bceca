"""The module that speaks etcd's gRPC API: TLS + client-cert identity, answers as model
values (`etcd/tls.py` does the HTTPS probes).

A thin synchronous facade over etcd3aio (chosen by measurement: docs/architecture.md,
"Dependencies"). It adds what the library lacks: one connection per member for
per-member questions (status, health — round-robin would pick any member), single
attempts for non-idempotent changes,
and etcd's errors mapped to dcsctl errors. Sections, in order: plumbing (one loop, one
call helper), cluster, keys, maintenance, membership, auth, load. The TLS context and the
HTTPS probes (/metrics, /version, the served certificate) are in `etcd/tls.py`.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
import time
from collections.abc import Awaitable, Callable, Collection, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import grpc
from etcd3aio import AlarmType, DowngradeAction, Etcd3Client, PermissionType
from etcd3aio.errors import EtcdError

from dcsctl.errors import DcsctlError
from dcsctl.etcd.errors import translate
from dcsctl.etcd.model import Alarm, EndpointHealth, EndpointStatus, KeyValue, MemberInfo
from dcsctl.etcd.tls import ClientTls, cluster_version, metrics_text, served_certificate

__all__ = ["ClientTls", "EtcdClient", "LoadRecord", "cluster_version", "metrics_text",
           "prefix_range_end", "served_certificate"]

T = TypeVar("T")
ALARM_NAMES = {1: "NOSPACE", 2: "CORRUPT"}
PERMISSION = {
    "read": PermissionType.READ,
    "write": PermissionType.WRITE,
    "readwrite": PermissionType.READWRITE,
}


@dataclass
class LoadRecord:
    """What a load run saw: per request its start (s since the run began) and latency."""

    starts: list[float]
    latencies: list[float]
    errors: dict[str, int]
    seconds: float
    stopped_by: str = ""  # the error that stopped the run early ("" = ran to the end)


def _target(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 2379}"


def _concise(details: str) -> str:
    """gRPC's connection errors bury the cause ("... remote host: Connection refused")."""
    match = re.search(r"Failed to connect to remote host: (.+)$", details)
    return match.group(1) if match else details


def _error_text(exc: BaseException) -> tuple[str, str]:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, grpc.aio.AioRpcError):
            return cause.code().name, _concise(cause.details() or "")
        cause = cause.__cause__
    if isinstance(exc, TimeoutError):
        return "DEADLINE_EXCEEDED", "no answer before the deadline"
    return type(exc).__name__, str(exc)


class _LoopThread:
    """One asyncio loop, in a daemon thread, for every client in the process.

    grpc.aio binds channels and its completion-queue poller to an event loop; with one
    loop per client (and clients in several threads, as under a background writer) it
    ends up calling into loops that are already closed. Synchronous callers hand their
    coroutines to this one loop instead.
    """

    _lock = threading.Lock()
    _shared: _LoopThread | None = None

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        thread = threading.Thread(target=self.loop.run_forever, name="dcsctl-etcd",
                                  daemon=True)
        thread.start()

    @classmethod
    def shared(cls) -> _LoopThread:
        with cls._lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        try:
            return future.result()
        except KeyboardInterrupt:
            future.cancel()  # Ctrl-C stops the work on the loop too, not just the wait
            raise


class EtcdClient:
    def __init__(
        self, endpoints: Sequence[str], tls: ClientTls, *, timeout: float = 5.0
    ) -> None:
        if not endpoints:
            raise ValueError("at least one endpoint is needed")
        self.endpoints = tuple(endpoints)
        self.tls = tls
        self.timeout = timeout
        self._runner = _LoopThread.shared()
        self._clients: dict[tuple[str, ...], Any] = {}

    # -- plumbing --
    def close(self) -> None:
        async def _close_all() -> None:
            for client in self._clients.values():
                await client.close()

        if self._clients:
            self._runner.run(_close_all())
        self._clients.clear()

    def __enter__(self) -> EtcdClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    async def _client(self, endpoints: tuple[str, ...] | None = None) -> Any:
        key = endpoints or self.endpoints
        if key not in self._clients:
            client = Etcd3Client(
                [_target(url) for url in key],
                tls_server_name=self.tls.server_name,
                ca_cert=self.tls.ca_pem,
                cert_key=self.tls.key_pem,
                cert_chain=self.tls.cert_pem,
            )
            await client.connect()
            self._clients[key] = client
        return self._clients[key]

    def _run(self, doing: str, make: Callable[[], Awaitable[T]]) -> T:
        async def _guarded() -> T:
            try:
                return await make()
            except (EtcdError, grpc.aio.AioRpcError, TimeoutError) as exc:
                code, details = _error_text(exc)
                raise translate(code, details, doing=doing) from exc

        return self._runner.run(_guarded())

    def _call(self, doing: str, request: Callable[[Any], Awaitable[T]],
              endpoints: tuple[str, ...] | None = None) -> T:
        """One request through the library's client for `endpoints` (default: all, which
        the library round-robins), its errors translated (`doing`: for the message)."""

        async def call() -> T:
            return await request(await self._client(endpoints))

        return self._run(doing, call)

    def _once(self) -> dict[str, Any]:
        """Keyword arguments of a request that must not be retried (not idempotent)."""
        return {"timeout": self.timeout, "max_attempts": 1}

    # -- cluster: members, status, health, alarms --
    def member_list(self, *, linearizable: bool = True) -> list[MemberInfo]:
        async def ask(endpoints: tuple[str, ...] | None) -> Any:
            client = await self._client(endpoints)
            return await client.cluster.member_list(
                linearizable=linearizable, timeout=self.timeout)

        async def call() -> list[MemberInfo]:
            try:
                response = await ask(None)
            except (EtcdError, grpc.aio.AioRpcError) as exc:
                # etcd 3.7 refuses the member list on a learner, and the client may have
                # picked one: ask the members one by one until a voter answers.
                if "not supported for learner" not in _error_text(exc)[1]:
                    raise
                for endpoint in self.endpoints:
                    try:
                        response = await ask((endpoint,))
                        break
                    except (EtcdError, grpc.aio.AioRpcError):
                        continue
                else:
                    raise
            return [
                MemberInfo(
                    id=m.ID,
                    name=m.name,
                    peer_urls=tuple(m.peerURLs),
                    client_urls=tuple(m.clientURLs),
                    is_learner=m.isLearner,
                )
                for m in response.members
            ]

        return self._run("listing members", call)

    def cluster_id(self) -> int:
        response = self._call("reading the cluster ID",
                              lambda c: c.cluster.member_list(timeout=self.timeout))
        return int(response.header.cluster_id)

    async def _status_of(self, endpoint: str) -> EndpointStatus:
        client = await self._client((endpoint,))
        s = await client.maintenance.status(timeout=self.timeout, max_attempts=1)
        return EndpointStatus(
            endpoint=endpoint,
            member_id=s.header.member_id,
            version=s.version,
            db_size=s.dbSize,
            db_size_in_use=s.dbSizeInUse,
            leader_id=s.leader,
            raft_term=s.raftTerm,
            raft_index=s.raftIndex,
            raft_applied_index=s.raftAppliedIndex,
            is_learner=s.isLearner,
            errors=tuple(s.errors),
            revision=s.header.revision,
            # 3.6+ only (a 3.5 member leaves them unset).
            storage_version=s.storageVersion,
            downgrade_target=(s.downgradeInfo.targetVersion
                              if s.HasField("downgradeInfo") and s.downgradeInfo.enabled
                              else ""),
        )

    async def _health_of(self, endpoint: str) -> EndpointHealth:
        """etcdctl's definition: a linearizable read answers, and no alarm is raised."""
        client = await self._client((endpoint,))
        started = time.monotonic()
        try:
            await client.kv.get("health", timeout=self.timeout, max_attempts=1)
            alarms = await client.maintenance.alarms(timeout=self.timeout, max_attempts=1)
        except (EtcdError, grpc.aio.AioRpcError, TimeoutError) as exc:
            code, details = _error_text(exc)
            # A permission-denied read still proves quorum.
            healthy = "permission denied" in details.lower()
            return EndpointHealth(endpoint, healthy, time.monotonic() - started,
                                  "" if healthy else details or code)
        took = time.monotonic() - started
        raised = [ALARM_NAMES.get(a.alarm, str(a.alarm)) for a in alarms.alarms]
        if raised:
            return EndpointHealth(endpoint, False, took, "Active Alarm(s): " + ",".join(raised))
        return EndpointHealth(endpoint, True, took, "")

    async def _status_or_error(self, endpoint: str) -> EndpointStatus | DcsctlError:
        try:
            return await self._status_of(endpoint)
        except (EtcdError, grpc.aio.AioRpcError, TimeoutError) as exc:
            code, details = _error_text(exc)
            return translate(code, details, doing=f"status of {endpoint}")

    def statuses(
        self, endpoints: Sequence[str] | None = None
    ) -> list[EndpointStatus | DcsctlError]:
        """Status of each endpoint, asked of that member itself, all at once."""

        async def call() -> list[EndpointStatus | DcsctlError]:
            targets = endpoints or self.endpoints
            return list(await asyncio.gather(*(self._status_or_error(e) for e in targets)))

        return self._runner.run(call())

    def survey(self) -> tuple[list[EndpointStatus | DcsctlError], list[EndpointHealth]]:
        """Status and health of every member, all asked at once: a hung member costs one
        timeout, not one per question."""

        async def call() -> tuple[list[EndpointStatus | DcsctlError], list[EndpointHealth]]:
            statuses = asyncio.gather(*(self._status_or_error(e) for e in self.endpoints))
            healths = asyncio.gather(*(self._health_of(e) for e in self.endpoints))
            got_statuses, got_healths = await asyncio.gather(statuses, healths)
            return list(got_statuses), list(got_healths)

        return self._runner.run(call())

    def health(self, endpoints: Sequence[str] | None = None) -> list[EndpointHealth]:
        async def call() -> list[EndpointHealth]:
            targets = endpoints or self.endpoints
            return list(await asyncio.gather(*(self._health_of(e) for e in targets)))

        return self._runner.run(call())

    def alarms(self) -> list[Alarm]:
        response = self._call("reading alarms",
                              lambda c: c.maintenance.alarms(timeout=self.timeout))
        return [Alarm(a.memberID, ALARM_NAMES.get(a.alarm, str(a.alarm)))
                for a in response.alarms]

    # -- keys --
    def put(self, key: str, value: bytes) -> int:
        response = self._call(f"writing {key!r}", lambda c: c.kv.put(key, value, **self._once()))
        return int(response.header.revision)

    def get(self, key: str) -> KeyValue | None:
        response = self._call(f"reading {key!r}", lambda c: c.kv.get(key, timeout=self.timeout))
        return _key_value(response.kvs[0]) if response.kvs else None

    def get_prefix(self, prefix: str, *, limit: int = 1000) -> list[KeyValue]:
        response = self._call(f"reading keys under {prefix!r}", lambda c: c.kv.get(
            prefix.encode(), prefix_range_end(prefix), limit=limit, timeout=self.timeout))
        return [_key_value(kv) for kv in response.kvs]

    def delete_prefix(self, prefix: str) -> int:
        """Delete every key under `prefix`; return the revision after the delete."""
        response = self._call(f"deleting keys under {prefix!r}", lambda c: c.kv.delete(
            prefix.encode(), prefix_range_end(prefix), timeout=60, max_attempts=1))
        return int(response.header.revision)

    def lease_ttl_of(self, key: str) -> int | None:
        """Seconds left on the lease `key` is attached to (None: no key, or no lease)."""

        async def call() -> int | None:
            client = await self._client()
            found = await client.kv.get(key, timeout=self.timeout)
            if not found.kvs or not found.kvs[0].lease:
                return None
            lease = await client.lease.time_to_live(found.kvs[0].lease, timeout=self.timeout)
            return int(lease.TTL)

        return self._run(f"reading the lease of {key!r}", call)

    def count_keys(self, *, revision: int = 0) -> int:
        """How many live keys there are (at `revision`, 0 = now)."""
        response = self._call("counting keys", lambda c: c.kv.get(
            b"\0", b"\0", revision=revision, count_only=True, timeout=self.timeout))
        return int(response.count)

    def revision(self) -> int:
        """The cluster's current revision (from a linearizable read's header)."""
        response = self._call("reading the revision", lambda c: c.kv.get(
            b"\0", count_only=True, timeout=self.timeout))
        return int(response.header.revision)

    # -- maintenance --
    def snapshot(
        self, endpoint: str, sink: Callable[[bytes], None], *, timeout: float = 600.0
    ) -> int:
        """Stream a snapshot from one member into `sink`; return the bytes received.

        etcd appends a sha256 of the database to the stream; callers verify it.
        """

        async def call() -> int:
            client = await self._client((endpoint,))
            received = 0
            async for chunk in client.maintenance.snapshot(timeout=timeout, max_attempts=1):
                sink(chunk)
                received += len(chunk)
            return received

        return self._run(f"streaming a snapshot from {endpoint}", call)

    def hash_kv(self, endpoint: str, revision: int) -> tuple[int, int]:
        """(hash of the key-value store up to `revision`, compact revision) of one member."""
        response = self._call(f"hashing {endpoint}", lambda c: c.maintenance.hash_kv(
            revision, timeout=self.timeout), (endpoint,))
        return int(response.hash), int(response.compact_revision)

    def downgrade(self, action: str, version: str) -> str:
        """etcd's downgrade API (3.6+): action validate | enable | cancel, version a
        release line such as "3.6". The cluster version it reports."""
        response = self._call(f"downgrade {action} {version}", lambda c: c.maintenance.downgrade(
            DowngradeAction[action.upper()], version, **self._once()))
        return str(response.version)

    def compact(self, revision: int) -> None:
        self._call(f"compacting to revision {revision}", lambda c: c.kv.compact(
            revision, physical=True, timeout=60, max_attempts=1))

    def defragment(self, endpoint: str) -> None:
        """Defragment one member (it blocks that member's reads and writes meanwhile)."""
        self._call(f"defragmenting {endpoint}", lambda c: c.maintenance.defragment(
            timeout=300, max_attempts=1), (endpoint,))

    def move_leader(self, leader_endpoint: str, target_id: int) -> None:
        """Hand leadership to `target_id` (the request must reach the current leader)."""
        self._call(f"moving leadership to {target_id:x}", lambda c: c.maintenance.move_leader(
            target_id, **self._once()), (leader_endpoint,))

    def disarm_alarms(self, kinds: Collection[str] | None = None) -> None:
        """Deactivate every raised alarm (or those of `kinds`, e.g. {"NOSPACE"}), one
        (member, alarm) pair at a time: etcd treats a blanket "deactivate NONE on member 0"
        as deactivating nothing."""

        async def call() -> None:
            client = await self._client()
            raised = await client.maintenance.alarms(timeout=self.timeout)
            for alarm in raised.alarms:
                if kinds is not None and ALARM_NAMES.get(alarm.alarm) not in kinds:
                    continue
                await client.maintenance.alarm_deactivate(
                    AlarmType(alarm.alarm), member_id=alarm.memberID, timeout=self.timeout,
                    max_attempts=1,
                )

        self._run("disarming alarms", call)

    # -- membership (single attempt: not idempotent) --
    def member_add_learner(self, peer_url: str) -> MemberInfo:
        response = self._call(f"adding learner {peer_url}", lambda c: c.cluster.member_add(
            [peer_url], is_learner=True, **self._once()))
        m = response.member
        return MemberInfo(m.ID, m.name, tuple(m.peerURLs), tuple(m.clientURLs), m.isLearner)

    def member_promote(self, member_id: int, leader_endpoint: str) -> None:
        """Promote a learner. Only the leader can: a follower forwards the request over the
        peer port without the caller's identity, and with auth on the leader refuses it
        ("auth: user name is empty")."""
        self._call(f"promoting member {member_id:x}", lambda c: c.cluster.member_promote(
            member_id, **self._once()), (leader_endpoint,))

    def member_remove(self, member_id: int) -> None:
        self._call(f"removing member {member_id:x}", lambda c: c.cluster.member_remove(
            member_id, **self._once()))

    # -- auth (changes: single attempt, they are not idempotent) --
    def auth_enabled(self) -> bool:
        response = self._call("reading the auth status",
                              lambda c: c.auth.auth_status(timeout=self.timeout))
        return bool(response.enabled)

    def auth_enable(self) -> None:
        self._call("enabling auth", lambda c: c.auth.auth_enable(**self._once()))

    def role_names(self) -> set[str]:
        response = self._call("listing roles", lambda c: c.auth.role_list(timeout=self.timeout))
        return set(response.roles)

    def role_grants(self, role: str) -> set[tuple[str, bytes, bytes]]:
        """(permission, key, range end) triples granted to `role`."""
        names = {int(v): k for k, v in PERMISSION.items()}
        response = self._call(f"reading role {role}",
                              lambda c: c.auth.role_get(role, timeout=self.timeout))
        return {(names[p.permType], p.key, p.range_end) for p in response.perm}

    def role_add(self, role: str) -> None:
        self._call(f"adding role {role}", lambda c: c.auth.role_add(role, **self._once()))

    def role_grant(self, role: str, prefix: str, permission: str = "readwrite") -> None:
        self._call(f"granting {permission} on {prefix!r} to role {role}",
                   lambda c: c.auth.role_grant_permission(
                       role, prefix.encode(), prefix_range_end(prefix),
                       perm_type=PERMISSION[permission], **self._once()))

    def role_delete(self, role: str) -> None:
        self._call(f"deleting role {role}", lambda c: c.auth.role_delete(role, **self._once()))

    def user_roles(self) -> dict[str, set[str]]:
        async def call() -> dict[str, set[str]]:
            client = await self._client()
            users = (await client.auth.user_list(timeout=self.timeout)).users
            found = {}
            for user in users:
                got = await client.auth.user_get(user, timeout=self.timeout)
                found[user] = set(got.roles)
            return found

        return self._run("listing users", call)

    def user_add(self, user: str, password: str) -> None:
        self._call(f"adding user {user}", lambda c: c.auth.user_add(
            user, password, **self._once()))

    def user_grant_role(self, user: str, role: str) -> None:
        self._call(f"granting role {role} to user {user}", lambda c: c.auth.user_grant_role(
            user, role, **self._once()))

    def user_change_password(self, user: str, password: str) -> None:
        self._call(f"changing the password of user {user}",
                   lambda c: c.auth.user_change_password(user, password, **self._once()))

    def user_delete(self, user: str) -> None:
        self._call(f"deleting user {user}", lambda c: c.auth.user_delete(user, **self._once()))

    def password_ok(self, user: str, password: str) -> bool:
        """Whether etcd accepts `password` for `user` (auth must be on; a raft request).

        The token it earns is dropped: this client keeps its certificate identity.
        """
        async def call() -> bool:
            client = await self._client()
            try:
                await client.auth.authenticate(user, password, timeout=self.timeout,
                                               max_attempts=1)
            except (EtcdError, grpc.aio.AioRpcError) as exc:
                if "invalid user ID or password" in _error_text(exc)[1]:
                    return False
                raise
            return True

        return self._run(f"checking the password of user {user}", call)

    # -- load (dcsctl check) --
    def put_load(
        self,
        *,
        prefix: str,
        clients: int,
        key_size: int,
        value_size: int,
        rate: float | None = None,
        seconds: float | None = None,
        total: int | None = None,
        on_tick: Callable[[int, float], None] | None = None,
        stop_on: Sequence[str] = (),
    ) -> LoadRecord:
        """Write random keys under `prefix` from `clients` concurrent writers, paced to
        `rate` writes/s (like etcdctl's limiter), for `seconds` or `total` writes.

        The first error whose text contains one of `stop_on` stops the run at once:
        nothing more is produced and queued keys are dropped unwritten."""

        async def call() -> LoadRecord:
            client = await self._client()
            record = LoadRecord([], [], {}, 0.0)
            queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=clients)
            value = bytes(value_size)
            started = time.monotonic()
            needles = [needle.lower() for needle in stop_on]

            async def produce() -> None:
                produced, next_at = 0, started
                while (total is None or produced < total) and (
                    seconds is None or time.monotonic() - started < seconds
                ) and not record.stopped_by:
                    if rate:
                        next_at += 1 / rate
                        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                    suffix = os.urandom(8).hex().encode()
                    await queue.put((prefix.encode() + suffix).ljust(key_size, b"\0"))
                    produced += 1
                for _ in range(clients):
                    await queue.put(None)

            async def write() -> None:
                while (key := await queue.get()) is not None:
                    if record.stopped_by:
                        continue  # drain the queue without writing
                    began = time.monotonic()
                    try:
                        await client.kv.put(key, value, timeout=30, max_attempts=1)
                    except (EtcdError, grpc.aio.AioRpcError, TimeoutError) as exc:
                        code, details = _error_text(exc)
                        record.errors[code] = record.errors.get(code, 0) + 1
                        if any(needle in details.lower() for needle in needles):
                            record.stopped_by = record.stopped_by or details or code
                        continue
                    finished = time.monotonic()
                    record.starts.append(began - started)
                    record.latencies.append(finished - began)

            async def tick() -> None:
                while True:
                    await asyncio.sleep(0.25)
                    if on_tick:
                        on_tick(len(record.latencies), time.monotonic() - started)

            ticker = asyncio.create_task(tick())
            try:
                await asyncio.gather(produce(), *(write() for _ in range(clients)))
            finally:
                ticker.cancel()
            record.seconds = time.monotonic() - started
            return record

        return self._run(f"writing load under {prefix!r}", call)


def _key_value(kv: Any) -> KeyValue:
    return KeyValue(kv.key.decode(errors="replace"), kv.value, kv.create_revision,
                    kv.mod_revision, kv.version)


def prefix_range_end(prefix: str) -> bytes:
    """The range end covering every key that starts with `prefix` ('/' -> everything >= '/')."""
    raw = bytearray(prefix.encode())
    for index in range(len(raw) - 1, -1, -1):
        if raw[index] < 0xFF:
            raw[index] += 1
            return bytes(raw[: index + 1])
    return b"\0"
