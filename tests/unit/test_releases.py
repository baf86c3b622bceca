"""Release data: which etcd releases dcsctl installs by version alone, from where, and
with which digest; what `init --target ssh` writes."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dcsctl import releases, spec
from dcsctl.errors import EnvironmentProblem
from dcsctl.etcd.versions import NEWEST, RECOMMENDED, Version, unaccepted_risks
from tests.support.lab import run_cli

SUM = "ab" * 32


def _install(**settings: str) -> spec.InstallSettings:
    return spec.InstallSettings.model_validate({"method": "release", **settings})


def test_the_packaged_data_names_every_supported_release_for_both_architectures() -> None:
    rows = releases.release_data({})
    for version in NEWEST.values():
        for arch in ("amd64", "arm64"):
            assert (str(version), arch) in rows, (version, arch)
    recorded = [Version.parse(v) for (v, _), digest in rows.items() if digest != "pending"]
    assert recorded, "at least one release installs by version alone"
    # nothing recorded that dcsctl would refuse to deploy
    assert all(unaccepted_risks(v, ()) == [] for v in recorded)


def test_a_version_alone_gives_the_official_url_and_the_recorded_digest() -> None:
    version, digest = next((v, d) for (v, a), d in releases.release_data({}).items()
                           if a == "arm64" and d != "pending")
    found = releases.locate(_install(version=version), "arm64", {})
    assert found.source == (f"{releases.OFFICIAL_DOWNLOADS}/v{version}/"
                            f"etcd-v{version}-linux-arm64.tar.gz")
    assert found.sha256 == digest
    mirrored = releases.locate(_install(version=version, mirror="https://m.internal/etcd/"),
                               "arm64", {})
    assert mirrored.source == f"https://m.internal/etcd/v{version}/etcd-v{version}-linux-arm64.tar.gz"
    assert mirrored.sha256 == digest  # the mirror is trusted for nothing


def test_a_sites_own_rows_win_and_a_pending_digest_is_refused_with_a_fix(
        tmp_path: Path) -> None:
    version = str(RECOMMENDED)
    if releases.release_data({})[(version, "amd64")] == "pending":
        with pytest.raises(EnvironmentProblem) as refused:
            releases.locate(_install(version=version), "amd64", {})
        assert "install.sha256" in (refused.value.fix or "")
    own = tmp_path / "rows.tsv"
    own.write_text(f"# ours\n{version}\tamd64\t{SUM}\n")
    found = releases.locate(_install(version=version), "amd64",
                            {releases.DATA_ENV: str(own)})
    assert found.sha256 == SUM
    own.write_text(f"{version} amd64 not-a-digest\n")
    with pytest.raises(EnvironmentProblem, match="DCSCTL_RELEASE_DATA"):
        releases.locate(_install(version=version), "amd64", {releases.DATA_ENV: str(own)})


def test_an_unknown_release_or_architecture_is_refused() -> None:
    with pytest.raises(EnvironmentProblem, match="no such release"):
        releases.locate(_install(version="3.5.999"), "amd64", {})
    with pytest.raises(EnvironmentProblem, match="riscv64"):
        releases.arch_of("riscv64")
    assert releases.arch_of("aarch64\n") == "arm64"


def test_the_spec_pins_sha256_over_the_data() -> None:
    found = releases.locate(_install(version="3.6.17", sha256=SUM), "amd64", {})
    assert found.sha256 == SUM and found.source.endswith("etcd-v3.6.17-linux-amd64.tar.gz")


def test_init_for_real_hosts_writes_a_release_that_dcsctl_deploys(tmp_path: Path) -> None:
    out = tmp_path / "dcs.yaml"
    result = run_cli(["init", "--target", "ssh", "-o", str(out)],
                     {"DCSCTL_HOME": str(tmp_path / "home")})
    assert result.code == 0, result.err
    document = yaml.safe_load(out.read_text())
    install = document["install"]
    assert install["method"] == "release"
    version = Version.parse(install["version"])
    assert version == releases.default_release({})
    assert unaccepted_risks(version, ()) == []
    releases.locate(spec.parse(out.read_text()).install, "amd64", {})  # pinned by the data
    assert "3.5.16 on 13" in out.read_text()  # apt documented, with what it installs
