"""`put` and `get`: a key read or written by hand, as admin."""

from __future__ import annotations

from dcsctl.errors import NotFound
from dcsctl.etcd.model import KeyValue
from dcsctl.ops.cluster import Cluster


def put(cluster: Cluster, key: str, value: bytes) -> int:
    with cluster.admin_client() as client:
        return client.put(key, value)


def get(cluster: Cluster, key: str) -> KeyValue:
    with cluster.admin_client() as client:
        found = client.get(key)
    if found is None:
        raise NotFound(f"key {key!r} does not exist", fix="check the key name (keys are exact)")
    return found
