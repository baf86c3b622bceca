"""Rendering: etcd settings as data, serialised and read back; units and /etc/hosts blocks."""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest

from dcsctl import render, spec
from dcsctl.etcd.versions import NEWEST, RECOMMENDED, Version
from dcsctl.hosts.ssh import Destination

LAB = spec.lab_spec(3)
SSH = spec.ssh_spec(3, release="3.7.4")


def _settings(cluster: spec.ClusterSpec, state: render.ClusterState,
              version: Version = RECOMMENDED) -> dict[str, str]:
    member = cluster.members[1]
    return render.etcd_settings(cluster, member, render.remote_layout(cluster, member),
                                version=version, state=state, token="dcs-1234",
                                jwt_sign_method="ES256")


@pytest.mark.parametrize("cluster", [LAB, SSH], ids=["lab", "ssh"])
@pytest.mark.parametrize("state", list(render.ClusterState))
def test_env_file_round_trips(cluster: spec.ClusterSpec, state: render.ClusterState) -> None:
    settings = _settings(cluster, state)
    content = render.env_file(settings, header="a header\nover two lines")
    parsed = render.parse_env_file(content)
    assert parsed == {render.env_name(k): v for k, v in settings.items()}


def test_settings_fix_the_guides_defects() -> None:
    settings = _settings(SSH, render.ClusterState.EXISTING)
    assert settings["advertise-client-urls"] == "https://192.168.56.11:2379"
    assert settings["listen-client-urls"] == "https://192.168.56.11:2379"  # not 0.0.0.0
    assert settings["initial-cluster-state"] == "existing"
    assert settings["auto-compaction-mode"] == "periodic"
    assert settings["client-cert-auth"] == settings["peer-client-cert-auth"] == "true"
    assert settings["auth-token"].startswith("jwt,")
    assert settings["peer-cert-allowed-hostname"] == "dcs.patroni.mydomain"
    assert settings["cert-file"] == "/etc/dcs/cert/dcs-01.crt"
    assert settings["data-dir"] == "/var/lib/etcd"


def test_a_value_an_env_file_cannot_hold_is_refused() -> None:
    with pytest.raises(ValueError, match="characters"):
        render.env_file({"name": "it's"}, header="x")


def test_remote_root_prefixes_every_host_path() -> None:
    member = SSH.members[0].model_copy(update={"remote_root": "/srv/host0"})
    layout = render.remote_layout(SSH, member)
    paths = render.HostPaths.of(SSH, member)
    assert layout.config == PurePosixPath("/srv/host0/etc/dcs/etcd")
    assert layout.key == PurePosixPath("/srv/host0/etc/dcs/cert/dcs-00.key")
    assert paths.env_link == PurePosixPath("/srv/host0/etc/default/etcd")
    assert paths.etcd == PurePosixPath("/srv/host0/usr/local/bin/etcd")  # a release


def test_systemd_unit_runs_etcd_as_its_user_from_the_env_file() -> None:
    layout = render.remote_layout(SSH, SSH.members[0])
    unit = render.systemd_unit(SSH, layout, PurePosixPath("/usr/bin/etcd")).decode()
    assert "[Service]\nType=notify\nUser=etcd\nEnvironmentFile=/etc/dcs/etcd\n" in unit
    assert "ExecStart=/usr/bin/etcd\n" in unit
    assert "WantedBy=multi-user.target" in unit


HOSTS_CASES = [
    ("empty file", "", "# BEGIN dcsctl dcs\n"),
    ("system entries kept", "127.0.0.1 localhost\n", "127.0.0.1 localhost\n\n# BEGIN dcsctl dcs\n"),
    ("old block replaced", "127.0.0.1 localhost\n\n# BEGIN dcsctl dcs\n10.9.9.9 old\n"
     "# END dcsctl dcs\n::1 ip6\n", "127.0.0.1 localhost\n::1 ip6\n\n# BEGIN dcsctl dcs\n"),
]


@pytest.mark.parametrize(("existing", "starts"), [(e, s) for _, e, s in HOSTS_CASES],
                         ids=[n for n, _, _ in HOSTS_CASES])
def test_hosts_block_is_replaced_idempotently(existing: str, starts: str) -> None:
    lines = render.hosts_block(SSH)
    once = render.with_hosts_block(existing, "dcs", lines)
    assert once.startswith(starts)
    assert "192.168.56.10 dcs-00.patroni.mydomain dcs-00\n" in once
    assert "10.9.9.9" not in once
    assert render.with_hosts_block(once, "dcs", lines) == once
    assert "dcsctl" not in render.without_hosts_block(once, "dcs")


@pytest.mark.parametrize(("text", "host", "user", "port"), [
    ("dcs-00", "dcs-00", None, None),
    ("admin@dcs-00", "dcs-00", "admin", None),
    ("admin@192.168.56.10:2222", "192.168.56.10", "admin", 2222),
    ("dcs-00:22", "dcs-00", None, 22),
])
def test_ssh_destinations_parse(text: str, host: str, user: str | None,
                                port: int | None) -> None:
    destination = Destination.parse(text)
    assert (destination.host, destination.user, destination.port) == (host, user, port)
    assert str(destination) == text


# Settings whose spelling depends on the etcd release line; every other flag is the same
# for every version.
VERSIONED = {
    "3.5": {"experimental-compact-hash-check-enabled": "true",
            "experimental-enable-lease-checkpoint": "true",
            "experimental-enable-lease-checkpoint-persist": "true"},
    "3.6": {"feature-gates": "CompactHashCheck=true,LeaseCheckpoint=true,"
                             "LeaseCheckpointPersist=true"},
    "3.7": {"feature-gates": "CompactHashCheck=true,LeaseCheckpoint=true,"
                             "LeaseCheckpointPersist=true"},
}
COMMON_FLAGS = {
    "name", "data-dir", "listen-client-urls", "advertise-client-urls", "listen-peer-urls",
    "initial-advertise-peer-urls", "initial-cluster", "initial-cluster-state",
    "initial-cluster-token", "heartbeat-interval", "election-timeout", "auto-compaction-mode",
    "auto-compaction-retention", "quota-backend-bytes", "auth-token", "cert-file", "key-file",
    "trusted-ca-file", "client-cert-auth", "peer-cert-file", "peer-key-file",
    "peer-trusted-ca-file", "peer-client-cert-auth", "peer-cert-allowed-hostname",
    "tls-min-version", "metrics", "logger", "log-outputs", "log-level",
}


@pytest.mark.parametrize("line", sorted(VERSIONED))
@pytest.mark.parametrize("version_of", [lambda line: NEWEST[line],
                                        lambda line: Version.parse(f"{line}.0")],
                         ids=["newest", "first"])
def test_each_release_line_gets_its_own_spelling(line: str, version_of: object) -> None:
    assert callable(version_of)
    settings = _settings(SSH, render.ClusterState.NEW, version_of(line))
    assert set(settings) - set(VERSIONED[line]) == COMMON_FLAGS
    assert {k: settings[k] for k in VERSIONED[line]} == VERSIONED[line]
    if line != "3.5":
        assert not [flag for flag in settings if flag.startswith("experimental-")]


def test_every_supported_line_is_in_the_rendering_table() -> None:
    assert set(NEWEST) == set(VERSIONED)


def test_every_member_checks_the_crl_beside_its_ca_on_both_ports() -> None:
    for cluster in (LAB, SSH):
        member = cluster.members[0]
        layout = render.remote_layout(cluster, member)
        settings = render.revocation_settings(layout)
        assert settings == {"client-crl-file": str(layout.ca_cert.parent / "ca.crl"),
                            "peer-crl-file": str(layout.ca_cert.parent / "ca.crl")}
    assert render.MemberLayout.under(PurePosixPath("/m")).crl == PurePosixPath("/m/tls/ca.crl")
