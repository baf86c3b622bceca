"""etcd's answers, parsed once into frozen values (Patroni's `Cluster` snapshot idea)."""

from __future__ import annotations

from dataclasses import dataclass


def hex_id(value: int) -> str:
    return format(value, "x")


@dataclass(frozen=True)
class MemberInfo:
    id: int
    name: str
    peer_urls: tuple[str, ...]
    client_urls: tuple[str, ...]
    is_learner: bool

    @property
    def started(self) -> bool:
        # An added-but-unstarted member is listed with an empty name.
        return bool(self.name)


@dataclass(frozen=True)
class EndpointStatus:
    endpoint: str
    member_id: int
    version: str
    db_size: int
    db_size_in_use: int
    leader_id: int
    raft_term: int
    raft_index: int
    raft_applied_index: int
    is_learner: bool
    errors: tuple[str, ...]
    revision: int = 0  # the member's store revision when it answered (0: not known)
    storage_version: str = ""  # etcd 3.6+: the data format on disk ("" before 3.6)
    downgrade_target: str = ""  # etcd 3.6+: the version a downgrade in progress aims at

    @property
    def is_leader(self) -> bool:
        return self.member_id == self.leader_id


@dataclass(frozen=True)
class EndpointHealth:
    endpoint: str
    healthy: bool
    took_s: float
    error: str


@dataclass(frozen=True)
class Alarm:
    member_id: int
    kind: str


@dataclass(frozen=True)
class KeyValue:
    key: str
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
