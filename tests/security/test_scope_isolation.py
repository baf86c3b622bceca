"""CVE-2026-73499: a Patroni scope's user opens a watch from its own prefix to the end of
the keyspace ("from key", range_end "\\0") and must receive no event of another scope.

The probe runs against every etcd the suite has: the fixed releases keep scopes apart,
and Debian's 3.5.30 shows the leak, so the probe is known to be able to fail. There
dcsctl refuses a second scope unless the risk is accepted by name.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from dcsctl.errors import ExitCode
from dcsctl.etcd.versions import NEWEST, Version
from tests.security.gateway import Gateway, WatchOutcome
from tests.support.lab import LabCluster, debian_etcd

LEAK = "CVE-2026-73499"
WATCH_TIMEOUT_S = 20.0


def _gateway(lab: LabCluster, scope: str, out: Path) -> Gateway:
    lab.ok("patroni", "config", scope, "--node", "pg", "--out", str(out))
    password = (lab.state / "secrets" / f"patroni-{scope}.password").read_text().strip()
    return Gateway(lab.addresses()[0], out, "pg", f"patroni-{scope}", password)


def _open_ended_watch(lab: LabCluster, alpha: Gateway) -> WatchOutcome:
    """alpha watches /service/alpha/ .. end of keyspace while the admin writes beta's
    leader key and then, as the marker, a key alpha may see."""

    def write() -> None:
        lab.ok("put", "/service/beta/leader", "beta-node-secret")
        lab.ok("put", "/service/zz-marker", "x")  # sorts after alpha's prefix
        lab.ok("put", "/service/alpha/marker", "end")

    return alpha.watch_until("/service/alpha/", "\0", "/service/alpha/marker",
                             timeout=WATCH_TIMEOUT_S, started=write)


def _scoped(lab: LabCluster, tmp_path: Path, *accept: str) -> Gateway:
    lab.ok("patroni", "add", "alpha")
    lab.ok("patroni", "add", "beta", *[arg for cve in accept for arg in ("--accept-risk", cve)])
    return _gateway(lab, "alpha", tmp_path / "alpha")


@pytest.mark.parametrize("version", sorted(NEWEST.values()), ids=str)
def test_fixed_etcd_keeps_an_open_ended_watch_inside_its_scope(
    lab_factory: Callable[..., LabCluster], tmp_path: Path, version: Version
) -> None:
    lab = lab_factory(members=1, etcd=version)
    lab.ok("up")
    outcome = _open_ended_watch(lab, _scoped(lab, tmp_path))
    keys = [event.key for event in outcome.events]
    assert "/service/beta/leader" not in keys, f"etcd {version} leaked another scope's key"
    assert "/service/zz-marker" not in keys
    # The control: either etcd itself refused the open-ended watch (not a dead connection:
    # that would prove nothing), or the watch was alive and delivered alpha's own marker,
    # so beta's event, written before it, would have been delivered too.
    assert "permission denied" in outcome.refused or keys == ["/service/alpha/marker"], outcome


def test_debians_etcd_leaks_and_dcsctl_refuses_the_second_scope(
    lab_factory: Callable[..., LabCluster], tmp_path: Path
) -> None:
    version = debian_etcd(affected_by=LEAK)
    lab = lab_factory(members=1, etcd=version)
    lab.ok("up")
    first = lab.ok("patroni", "add", "alpha")
    assert LEAK in first.err  # the first scope hears about it: nothing to leak into yet
    refused = lab.dcsctl("patroni", "add", "beta")
    assert refused.code == ExitCode.ENVIRONMENT, refused.err
    assert LEAK in refused.err and "--accept-risk" in refused.err
    assert str(NEWEST[version.line]) in refused.err  # the fixed release of its line
    listed = lab.ok("patroni", "list", "--json").json_list()
    assert [scope["scope"] for scope in listed] == ["alpha"]  # nothing half-made

    lab.ok("patroni", "add", "beta", "--accept-risk", LEAK)
    outcome = _open_ended_watch(lab, _gateway(lab, "alpha", tmp_path / "alpha"))
    leaked = [e for e in outcome.events if e.key == "/service/beta/leader"]
    assert leaked and leaked[0].value == "beta-node-secret", (
        f"the probe no longer sees the leak on etcd {version}: {outcome}")
