"""Every supported etcd, for real: the binaries scripts/setup builds from etcd's Go modules
(newest 3.5, 3.6, 3.7) and Debian's, each running the core flow; the upgrade chain from
the guide's 3.5.16 to 3.7 under a writer; a downgrade through etcd's API; and the version
mistakes a user makes, each refused with a fix."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from dcsctl import render, spec
from dcsctl.errors import ExitCode
from dcsctl.etcd.versions import NEWEST, RECOMMENDED, Version
from dcsctl.wait import wait_until
from tests.faults.scenarios import MIN_ACKED_DURING, upgrade_chain
from tests.support import cluster_of, pack_release
from tests.support.lab import (
    VENV_BIN,
    LabCluster,
    debian_etcd,
    etcd_bin_dir,
    etcd_builds,
    risks_of,
)
from tests.support.mirror import release_mirror

GUIDE = Version(3, 5, 16)
LINES = sorted(NEWEST)


def _versions(lab: LabCluster) -> set[str]:
    members = json.loads(lab.ok("status", "--json").out)["members"]
    return {m["status"]["version"] for m in members}


def test_setup_built_every_supported_release_and_links_the_recommended_one() -> None:
    builds = etcd_builds()
    assert set(NEWEST.values()) | {GUIDE} <= set(builds)
    for version, bin_dir in builds.items():
        for tool, argv in (("etcd", ["--version"]), ("etcdctl", ["version"]),
                           ("etcdutl", ["version"])):
            out = subprocess.run([str(bin_dir / tool), *argv], capture_output=True, text=True,
                                 check=True, timeout=20).stdout
            assert f"ersion: {version}\n" in out, (tool, version, out)
    for tool in ("etcd", "etcdctl", "etcdutl"):  # what dcsctl finds next to itself
        assert (VENV_BIN / tool).resolve() == (builds[RECOMMENDED] / tool).resolve()


@pytest.mark.parametrize("version", sorted(etcd_builds()), ids=str)
def test_every_rendered_flag_is_one_that_etcd_knows(version: Version) -> None:
    """The settings dcsctl writes for a version are flags that very binary accepts (an
    unknown ETCD_* variable is only logged by etcd, so nothing else would notice)."""
    helped = subprocess.run([str(etcd_bin_dir(version) / "etcd"), "--help"],
                            capture_output=True, text=True, timeout=20, check=False)
    text = helped.stdout + helped.stderr
    cluster = spec.lab_spec(3)
    member = cluster.members[0]
    settings = render.etcd_settings(cluster, member, render.remote_layout(cluster, member),
                                    version=version, state=render.ClusterState.NEW,
                                    token="t", jwt_sign_method="ES256")
    unknown = [flag for flag in settings if f"--{flag}" not in text]
    assert unknown == [], f"etcd {version} does not know {unknown}"


@pytest.mark.parametrize("line", LINES)
def test_core_flow_on_each_release_line(
    lab_factory: Callable[..., LabCluster], tmp_path: Path, line: str
) -> None:
    version = NEWEST[line]
    lab = lab_factory(etcd=version)
    lab.ok("up")
    assert _versions(lab) == {str(version)}
    status = json.loads(lab.ok("status", "--json").out)
    assert status["healthy"] and status["advisories"] == []

    def storage() -> set[str | None]:
        members = json.loads(lab.ok("status", "--json").out)["members"]
        return {m["status"]["storage_version"] for m in members}

    # A new 3.6+ cluster writes 3.5's format until the leader has decided the cluster
    # version (a few seconds), then migrates.
    wanted = {None} if line == "3.5" else {f"{line}.0"}
    wait_until(lambda: storage() == wanted, timeout=30, what=f"storage version {wanted}",
               last_error=lambda: str(storage()))

    # The guide's own commands, with that version's etcdctl and dcsctl's environment.
    environ = dict(lab.environ)
    for export in lab.ok("env").out.splitlines():
        name, _, value = export.removeprefix("export ").partition("=")
        environ[name] = value.strip("'\"")
    etcdctl = str(etcd_bin_dir(version) / "etcdctl")
    for argv in (["put", "foo", "bar"], ["endpoint", "status", "-w", "table"],
                 ["endpoint", "health"], ["member", "list", "-w", "table"]):
        done = subprocess.run([etcdctl, *argv], capture_output=True, text=True, env=environ,
                              timeout=30, check=False)
        assert done.returncode == 0, (argv, done.stderr)
        # `dcsctl env` exports only what this etcdctl knows (3.6+ warn on ETCDCTL_API)
        assert "unrecognized environment variable" not in done.stderr, done.stderr
    assert ("ETCDCTL_API" in environ) is (line == "3.5")
    assert lab.ok("get", "foo").out == "bar\n"

    backup = lab.ok("backup", "--dir", str(tmp_path / "backups"))
    snapshot = next((tmp_path / "backups").glob("*.db"))
    lab.ok("put", "foo", "changed after the backup")
    lab.ok("restore", str(snapshot), "--yes")
    assert lab.ok("get", "foo").out == "bar\n", backup.out

    prefix = lab.addresses()[0].rsplit(".", 1)[0]
    lab.ok("member", "add", f"{lab.name}-3", "--address", f"{prefix}.13")
    assert len(json.loads(lab.ok("status", "--json").out)["members"]) == 4
    lab.ok("member", "remove", f"{lab.name}-3", "--yes")
    assert lab.ok("get", "foo").out == "bar\n"


def test_upgrade_chain_from_the_guides_etcd_to_3_7_is_linearizable(
    lab_factory: Callable[..., LabCluster], tmp_path: Path
) -> None:
    """3.5.16 -> newest 3.5 -> 3.6 -> 3.7 under the recorded workload, then back to 3.6."""
    lab = lab_factory(etcd=GUIDE)
    lab.ok("up")
    lab.ok("patroni", "add", "demo", "--accept-risk", "CVE-2026-73499")
    lab.ok("put", "/service/demo/leader", "pg0")
    skipped = lab.dcsctl("upgrade", "--to", str(NEWEST["3.6"]),
                         "--bin-dir", str(etcd_bin_dir(NEWEST["3.6"])))
    assert skipped.code == ExitCode.FAILED
    assert f"`dcsctl upgrade --to {NEWEST['3.5']}` then" in skipped.err
    assert _versions(lab) == {str(GUIDE)}  # refused before anything changed

    chain = [NEWEST["3.5"], NEWEST["3.6"], NEWEST["3.7"]]
    upgraded = upgrade_chain(lab, [(str(v), etcd_bin_dir(v)) for v in chain], tmp_path)
    assert _versions(lab) == {str(NEWEST["3.7"])}
    # Members restart one at a time: writes go on with the other two at every step.
    assert all(count >= MIN_ACKED_DURING for count in upgraded.acked_during), upgraded
    assert upgraded.history.linearizable, upgraded.history.checker
    cluster = cluster_of(lab)
    with cluster.admin_client() as client:
        users = client.user_roles()
    assert users == {"root": {"root"}, "patroni-demo": {"patroni-demo"}}
    assert lab.ok("get", "/service/demo/leader").out == "pg0\n"
    backups = sorted((lab.state / "backups").glob("*.db"))
    assert len(backups) == len(chain), "a snapshot before every step"

    down = lab.ok("downgrade", "--to", "3.6", "--bin-dir", str(etcd_bin_dir(NEWEST["3.6"])),
                  "--yes")
    assert "cluster version 3.6.0" in down.out, down.out
    assert _versions(lab) == {str(NEWEST["3.6"])}
    assert lab.ok("get", "/service/demo/leader").out == "pg0\n"
    assert json.loads(lab.ok("status", "--json").out)["healthy"] is True
    two_back = lab.dcsctl("downgrade", "--to", "3.4", "--yes",
                          "--bin-dir", str(etcd_bin_dir(GUIDE)))
    assert two_back.code == ExitCode.FAILED and "more than one minor" in two_back.err


def test_version_mistakes_are_refused_with_a_fix(
    lab_factory: Callable[..., LabCluster], tmp_path: Path
) -> None:
    lab = lab_factory(members=1, etcd=NEWEST["3.5"])
    lab.ok("up")
    # A folder whose binary is not the version the command names.
    wrong = lab.dcsctl("upgrade", "--to", str(NEWEST["3.6"]),
                       "--bin-dir", str(etcd_bin_dir(NEWEST["3.7"])))
    assert wrong.code == ExitCode.ENVIRONMENT and "fix:" in wrong.err
    # Not a version at all.
    nonsense = lab.dcsctl("upgrade", "--to", "latest", "--bin-dir", str(tmp_path))
    assert nonsense.code == ExitCode.USAGE and "fix:" in nonsense.err
    # A downgrade before etcd had the API, and one of two minors.
    refused = lab.dcsctl("downgrade", "--to", "3.4", "--yes",
                         "--bin-dir", str(etcd_bin_dir(GUIDE)))
    assert refused.code == ExitCode.FAILED and "no downgrade support" in refused.err
    # A folder named for one version holding another.
    fake = tmp_path / "etcd-3.6.16" / "bin"
    fake.mkdir(parents=True)
    for tool in ("etcd", "etcdctl", "etcdutl"):
        shutil.copy(etcd_bin_dir(NEWEST["3.7"]) / tool, fake / tool)
    document = lab.document()
    document["etcd"] = {"bin_dir": str(fake)}
    lab.spec_file.write_text(yaml.safe_dump(document))
    mislabeled = lab.dcsctl("up")
    assert mislabeled.code == ExitCode.ENVIRONMENT
    assert str(NEWEST["3.7"]) in mislabeled.err and "3.6.16" in mislabeled.err
    assert "fix:" in mislabeled.err


def test_status_shows_a_mixed_version_cluster(lab_factory: Callable[..., LabCluster]) -> None:
    lab = lab_factory(etcd=NEWEST["3.5"])
    lab.ok("up")
    cluster = cluster_of(lab)
    member = cluster.spec.members[0]
    newer = etcd_bin_dir(NEWEST["3.6"]) / "etcd"
    config = render.parse_env_file(cluster.dir.layout(member.name).config.read_bytes())
    cluster.service(member.name).stop()
    cluster.service(member.name).start(newer, config)
    mixed = lab.dcsctl("status", "--json")
    view = json.loads(mixed.out)
    assert any("different etcd versions" in p for p in view["problems"]), view["problems"]
    assert {m["status"]["version"] for m in view["members"] if m["status"]} == {
        str(NEWEST["3.5"]), str(NEWEST["3.6"])}


def test_a_lab_member_runs_a_release_tarball_like_an_ssh_host(
    lab_factory: Callable[..., LabCluster], tmp_path: Path
) -> None:
    version = NEWEST["3.6"]
    tarball, sha256 = pack_release(etcd_bin_dir(version), tmp_path)
    lab = lab_factory(members=1)  # DCSCTL_ETCD_BIN_DIR points at another version
    document = lab.document()
    document["install"] = {"method": "release", "tarball": str(tarball), "sha256": "0" * 64}
    lab.spec_file.write_text(yaml.safe_dump(document))
    wrong_sum = lab.dcsctl("up")
    assert wrong_sum.code == ExitCode.ENVIRONMENT and "sha256" in wrong_sum.err

    document["install"] = {"method": "release", "tarball": str(tarball), "sha256": sha256,
                           "version": str(NEWEST["3.7"])}
    lab.spec_file.write_text(yaml.safe_dump(document))
    mislabeled = lab.dcsctl("up")
    assert mislabeled.code == ExitCode.ENVIRONMENT, mislabeled.err
    assert f"holds etcd {version}" in mislabeled.err and "fix:" in mislabeled.err

    del document["install"]["version"]
    lab.spec_file.write_text(yaml.safe_dump(document))
    lab.ok("up")
    assert _versions(lab) == {str(version)}


def test_a_lab_up_on_debians_etcd_is_refused_until_the_spec_accepts_each_risk(
    lab_factory: Callable[..., LabCluster],
) -> None:
    """Debian trixie's 3.5.16 has advisories that break dcsctl's security model: `up`
    names every one and both ways out, writes nothing, and deploys once the spec accepts
    each by name; `status` then keeps naming the risk as a problem."""
    lab = lab_factory(members=1, etcd=GUIDE, accept_risks=False)
    refused = lab.dcsctl("up")
    assert refused.code == ExitCode.ENVIRONMENT, refused.err
    for name in ("CVE-2026-33413", "CVE-2026-73499", "CVE-2026-59818"):
        assert name in refused.err
    assert "3.5.28, 3.6.9" in refused.err  # CVE-2026-33413's fixed releases
    assert f"version: {RECOMMENDED}" in refused.err and "accept_risks: [" in refused.err
    assert not lab.state.exists(), "refused before anything was written"

    named = refused.err.split("security model", 1)[1].split("\n", 1)[0]
    accepted = [word.strip(",") for word in named.split(": ", 1)[1].split()]
    assert set(accepted) == set(risks_of(GUIDE))
    partly = lab.document()
    partly["etcd"] = {"accept_risks": accepted[1:]}  # one left out: still refused
    lab.spec_file.write_text(yaml.safe_dump(partly))
    still = lab.dcsctl("up")
    assert still.code == ExitCode.ENVIRONMENT and accepted[0] in still.err

    partly["etcd"] = {"accept_risks": accepted}
    lab.spec_file.write_text(yaml.safe_dump(partly))
    lab.ok("up")
    assert _versions(lab) == {str(GUIDE)}
    view = json.loads(lab.dcsctl("status", "--json").out)
    running = [p for p in view["problems"] if p.startswith(f"running etcd {GUIDE}")]
    assert running and "CVE-2026-33413" in running[0] and "fix:" in running[0], view


def test_an_upgrade_to_a_version_with_an_unaccepted_advisory_is_refused_before_any_change(
    lab_factory: Callable[..., LabCluster],
) -> None:
    lab = lab_factory(members=1, etcd=GUIDE)
    lab.ok("up")
    target = debian_etcd(affected_by="CVE-2026-73499")  # Debian's newest 3.5 (3.5.30)
    document = lab.document()
    document["etcd"] = {"accept_risks": [r for r in risks_of(GUIDE) if r != "CVE-2026-73499"]}
    lab.spec_file.write_text(yaml.safe_dump(document))
    refused = lab.dcsctl("upgrade", "--to", str(target), "--bin-dir", str(etcd_bin_dir(target)))
    assert refused.code == ExitCode.ENVIRONMENT, refused.err
    assert "CVE-2026-73499" in refused.err and "3.5.33" in refused.err
    assert _versions(lab) == {str(GUIDE)}
    assert not list((lab.state / "backups").glob("*.db")), "refused before the snapshot"


def test_a_release_by_version_alone_comes_from_a_mirror_and_is_checked(
    lab_factory: Callable[..., LabCluster], tmp_path: Path
) -> None:
    """install: {method: release, version: X, mirror: URL}: the tarball from an internal
    mirror over HTTPS, checked against the release data's sha256."""
    version = NEWEST["3.6"]
    with release_mirror([version], tmp_path) as mirror:
        lab = lab_factory(members=1)
        document = lab.document()
        document["install"] = mirror.install(version)
        lab.spec_file.write_text(yaml.safe_dump(document))
        # The packaged data has no published digest for builds of this machine: refused,
        # naming the two ways to pin one.
        unpinned = lab.dcsctl("up")
        assert unpinned.code == ExitCode.ENVIRONMENT, unpinned.err
        assert "install.sha256" in unpinned.err and "fix:" in unpinned.err
        assert not lab.state.exists()

        lab.environ.update(mirror.environ())  # the site's own release data
        tarball = mirror.root / f"v{version}" / f"etcd-v{version}-linux-amd64.tar.gz"
        good = tarball.read_bytes()
        tarball.write_bytes(good[:-100])  # a mirror serving a damaged file
        damaged = lab.dcsctl("up")
        assert damaged.code == ExitCode.ENVIRONMENT and "sha256" in damaged.err, damaged.err
        tarball.write_bytes(good)

        untrusted = dict(document, install={**mirror.install(version), "ca_file": None})
        lab.spec_file.write_text(yaml.safe_dump(untrusted))
        refused = lab.dcsctl("up")  # the mirror's certificate chains to no CA it knows
        assert refused.code == ExitCode.ENVIRONMENT and "certificate" in refused.err

        lab.spec_file.write_text(yaml.safe_dump(document))
        lab.ok("up")
    assert _versions(lab) == {str(version)}
