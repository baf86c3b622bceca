"""etcd's errors mapped to dcsctl errors by table: cause in etcd's words, fix in ours."""

from __future__ import annotations

from dataclasses import dataclass

from dcsctl.errors import ClusterUnhealthy, DcsctlError, EtcdRequestFailed


@dataclass(frozen=True)
class Translation:
    needle: str
    error: type[DcsctlError]
    meaning: str
    fix: str


# Matched against "<gRPC code>: <details>", first hit wins. etcd answers a bad password
# with INVALID_ARGUMENT, not UNAUTHENTICATED.
TRANSLATIONS: tuple[Translation, ...] = (
    Translation("authentication failed, invalid user ID or password", EtcdRequestFailed,
                "wrong user name or password", "check the credentials"),
    Translation("permission denied", EtcdRequestFailed,
                "the identity lacks permission", "use an identity whose role grants it"),
    Translation("user name is empty", EtcdRequestFailed,
                "auth is on and no identity was presented",
                "present the admin client certificate (CN=root)"),
    Translation("invalid auth token", EtcdRequestFailed,
                "the auth token expired or the member restarted", "retry the command"),
    Translation("mvcc: database space exceeded", ClusterUnhealthy,
                "the space quota is full (NOSPACE alarm): writes are refused",
                "compact, defragment and disarm the alarm (dcsctl maintenance)"),
    Translation("etcdserver: request timed out", ClusterUnhealthy,
                "the cluster did not commit the request in time (quorum lost or slow disk);"
                " a write may or may not have been applied",
                "check `dcsctl status`; start stopped members"),
    Translation("etcdserver: leader changed", ClusterUnhealthy,
                "a leader election interrupted the request", "retry the command"),
    Translation("etcdserver: no leader", ClusterUnhealthy,
                "the cluster has no leader (quorum lost)",
                "start stopped members: `dcsctl up`, then `dcsctl status`"),
    Translation("unhealthy cluster", ClusterUnhealthy,
                "etcd refuses membership changes until every member is healthy",
                "wait for `dcsctl status` to show all members healthy, then retry"),
    Translation("can only promote a learner member which is in sync with leader",
                ClusterUnhealthy, "the learner has not caught up with the leader yet",
                "wait a moment and run the same command again"),
    Translation("UNAVAILABLE", ClusterUnhealthy,
                "no member could be reached", "start the cluster: `dcsctl up`"),
    Translation("DEADLINE_EXCEEDED", ClusterUnhealthy,
                "etcd did not answer in time (quorum lost?); a write may or may not"
                " have been applied", "check `dcsctl status`"),
)


def translate(code: str, details: str, *, doing: str) -> DcsctlError:
    text = f"{code}: {details}"
    for item in TRANSLATIONS:
        if item.needle.lower() in text.lower():
            return item.error(f"{doing} failed: {item.meaning} ({details or code})", fix=item.fix)
    return EtcdRequestFailed(f"{doing} failed: {text}", fix="see `dcsctl status` and the logs")
