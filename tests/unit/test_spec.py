"""The spec: a table of broken documents and the problems (with YAML paths) each must name."""

from __future__ import annotations

from typing import Any

import pytest

from dcsctl import spec
from dcsctl.errors import SpecError

GOOD_MEMBERS = [{"name": f"dcs-0{i}", "address": f"127.0.0.{10 + i}"} for i in range(3)]
SHA = "a" * 64


def _problems(document: dict[str, Any]) -> list[str]:
    with pytest.raises(SpecError) as caught:
        spec.from_mapping(document)
    return list(caught.value.details)


BROKEN: list[tuple[str, dict[str, Any], list[str]]] = [
    ("no members", {}, ["members: required key is missing"]),
    ("empty members", {"members": []}, ["members: List should have at least 1 item"]),
    ("unknown top-level key", {"members": GOOD_MEMBERS, "colour": "red"},
     ["colour: unknown key"]),
    ("unknown member key", {"members": [{**GOOD_MEMBERS[0], "role": "x"}]},
     ["members[0].role: unknown key"]),
    ("duplicate names", {"members": [GOOD_MEMBERS[0], {**GOOD_MEMBERS[1], "name": "dcs-00"}]},
     ["members[0].name: duplicate name", "members[1].name: duplicate name"]),
    ("duplicate address and port", {"members": [GOOD_MEMBERS[0],
                                                {**GOOD_MEMBERS[1], "address": "127.0.0.10"}]},
     ["members[0].address: duplicate address and port",
      "members[1].address: duplicate address and port"]),
    ("bad IP", {"members": [{"name": "a", "address": "127.0.0.300"}]},
     ["members[0].address: Input is not a valid IPv4 address"]),
    ("address as a number", {"members": [{"name": "a", "address": 0}]},
     ["members[0].address: must be an IPv4 address written as text"]),
    ("name not DNS-safe", {"members": [{"name": "Dcs_00", "address": "127.0.0.10"}]},
     ["members[0].name: must be a DNS label"]),
    ("lab member off loopback", {"members": [{"name": "a", "address": "10.0.0.1"}]},
     ["members[0].address: 10.0.0.1 is not a loopback address"]),
    ("client port equals peer port", {"members": [{**GOOD_MEMBERS[0], "client_port": 2380}]},
     ["members[0]: client and peer port are both 2380"]),
    ("port below 1024", {"members": GOOD_MEMBERS, "ports": {"client": 80}},
     ["ports.client: Input should be greater than or equal to 1024"]),
    ("bad key type", {"members": GOOD_MEMBERS, "tls": {"key_type": "ed25519"}},
     ["tls.key_type: Input should be 'ecdsa-p256', 'rsa-2048' or 'rsa-4096'"]),
    ("bad retention", {"members": GOOD_MEMBERS,
                       "etcd": {"auto_compaction_retention": "soon"}},
     ["etcd.auto_compaction_retention: must be a duration"]),
    ("bad ssh destination", {"target": "ssh", "members": [{**GOOD_MEMBERS[0],
                                                           "ssh": "root@host name"}]},
     ["members[0].ssh: must be [user@]host[:port]"]),
    ("relative remote root", {"target": "ssh", "members": [{**GOOD_MEMBERS[0],
                                                            "remote_root": "srv/dcs"}]},
     ["members[0].remote_root: must be an absolute path"]),
    ("release without a checksum", {"target": "ssh", "members": GOOD_MEMBERS,
                                    "install": {"method": "release", "tarball": "/x.tgz"}},
     ["(top level): install: a release tarball needs its sha256"]),
    ("release naming nothing", {"target": "ssh", "members": GOOD_MEMBERS,
                                "install": {"method": "release"}},
     ["(top level): install: method release needs a version"]),
    ("release version not a number", {"target": "ssh", "members": GOOD_MEMBERS,
                                      "install": {"method": "release", "version": "latest"}},
     ["install.version: must be a release number such as 3.6.17"]),
    ("mirror not a URL", {"target": "ssh", "members": GOOD_MEMBERS,
                          "install": {"method": "release", "version": "3.6.17",
                                      "mirror": "mirror.internal"}},
     ["install.mirror: must be an http(s):// URL or an absolute folder"]),
    ("accepting an advisory dcsctl does not know", {
        "members": GOOD_MEMBERS, "etcd": {"accept_risks": ["CVE-2026-33413", "CVE-1999-1"]}},
     ["etcd.accept_risks: unknown advisory CVE-1999-1; dcsctl knows"]),
    ("sha256 not hex", {"target": "ssh", "members": GOOD_MEMBERS,
                        "install": {"method": "release", "tarball": "/x", "sha256": "abc"}},
     ["install.sha256: must be 64 lowercase hex digits"]),
    # which init systems exist is the SSH target's to say (test_bad_input_checks.py)
    ("service manager not a name", {"target": "ssh", "members": GOOD_MEMBERS,
                                    "service": {"manager": "Up Start"}},
     ["service.manager: must name an init system, such as systemd or process"]),
    ("quoted path", {"target": "ssh", "members": GOOD_MEMBERS,
                     "paths": {"data_dir": "/var/lib/'etcd'"}},
     ["paths.data_dir: must be an absolute path"]),
    *[(f"{key} {value}", {"target": "ssh", "members": GOOD_MEMBERS, "paths": {key: value}},
       [f"paths.{key}: {value} is a system directory"])
      for key, value in [("data_dir", "/"), ("cert_dir", "/etc"), ("data_dir", "/var/lib"),
                         ("log_file", "/var/log"), ("env_link", "/etc/default"),
                         ("config_file", "/usr"), ("bin_dir", "/etc")]],
    *[(f"unnormalized {value}", {"target": "ssh", "members": GOOD_MEMBERS,
                                 "paths": {"data_dir": value}},
       ["paths.data_dir: must be a normalized absolute path"])
      for value in ["/var/lib/../lib/etcd", "/var/lib/./etcd", "/var//lib/etcd",
                    "/var/lib/etcd/", "//var/lib/etcd", "/.."]],
    ("unnormalized remote root", {"target": "ssh", "members": [
        {**GOOD_MEMBERS[0], "remote_root": "/srv/h0/.."}]},
     ["members[0].remote_root: must be a normalized absolute path"]),
    ("data dir holds the certificates and config", {
        "target": "ssh", "members": GOOD_MEMBERS, "paths": {"data_dir": "/etc/dcs"}},
     ["paths.data_dir: /etc/dcs contains paths.config_file (/etc/dcs/etcd)",
      "paths.data_dir: /etc/dcs contains paths.cert_dir (/etc/dcs/cert)"]),
    ("cert dir is the data dir", {
        "target": "ssh", "members": GOOD_MEMBERS,
        "paths": {"data_dir": "/srv/etcd", "cert_dir": "/srv/etcd"}},
     ["paths.cert_dir: /srv/etcd is the same place as paths.data_dir (/srv/etcd)"]),
    ("log inside the cert dir", {
        "target": "ssh", "members": GOOD_MEMBERS, "paths": {"log_file": "/etc/dcs/cert/x.log"}},
     ["paths.cert_dir: /etc/dcs/cert contains paths.log_file"]),
    ("data dir is dcsctl's tarball cache", {
        "target": "ssh", "members": GOOD_MEMBERS, "paths": {"data_dir": "/var/cache/dcsctl"}},
     ["paths.data_dir: /var/cache/dcsctl is the same place as dcsctl's tarball cache"]),
    ("remote root turns a path into a system directory", {
        "target": "ssh", "members": [{**GOOD_MEMBERS[0], "remote_root": "/usr"}],
        "paths": {"data_dir": "/local"}},
     ["members[0].remote_root: with paths.data_dir it makes /usr/local, a system directory"]),
    *[(f"ssh destination {value}", {"target": "ssh", "members": [
        {**GOOD_MEMBERS[0], "ssh": value}]}, ["members[0].ssh: must be [user@]host[:port]"])
      for value in ["-Fx", "-oProxyCommand", "admin@-p2222", "-"]],
    *[(f"reserved member name {value}", {"members": [{**GOOD_MEMBERS[0], "name": value}]},
       [f"members[0].name: {value!r} is reserved"])
      for value in ["root", "patroni-prod"]],
]


@pytest.mark.parametrize(("document", "expected"), [(d, e) for _, d, e in BROKEN],
                         ids=[name for name, _, _ in BROKEN])
def test_broken_spec_names_every_problem_with_its_path(
    document: dict[str, Any], expected: list[str]
) -> None:
    problems = _problems(document)
    for wanted in expected:
        assert any(p.startswith(wanted) for p in problems), (wanted, problems)


def test_all_problems_are_reported_at_once() -> None:
    problems = _problems({
        "name": "Bad Name",
        "members": [{"name": "x", "address": "1.2.3"}, {"name": "x", "address": "127.0.0.1"}],
        "tls": {"leaf_days": 0},
    })
    paths = {p.split(":")[0] for p in problems}
    assert {"name", "members[0].address", "members[0].name", "members[1].name",
            "tls.leaf_days"} <= paths


def test_ssh_members_may_live_anywhere_and_release_is_pinned() -> None:
    cluster = spec.from_mapping({
        "target": "ssh",
        "install": {"method": "release", "tarball": "https://example.invalid/etcd-v3.5.30-"
                    "linux-amd64.tar.gz", "sha256": SHA},
        "members": [{"name": "dcs-00", "address": "192.168.56.10", "ssh": "admin@dcs-00:2222"}],
    })
    assert cluster.remote_bin_dir() == "/usr/local/bin"
    assert cluster.members[0].remote_root == "/"


def test_usual_places_are_accepted() -> None:
    # The guide's defaults, binaries in a system bin dir, a host tree under remote_root.
    cluster = spec.from_mapping({
        "target": "ssh", "paths": {"bin_dir": "/usr/bin", "data_dir": "/srv/etcd/data",
                                   "cert_dir": "/srv/etcd/cert", "log_file": "/srv/etcd.log"},
        "members": [{"name": "dcs-00", "address": "192.168.56.10", "ssh": "_alias",
                     "remote_root": "/tmp/hosts/dcs-00"}],
    })
    assert cluster.paths.data_dir == "/srv/etcd/data"
    assert spec.ssh_spec(3, release="3.7.4").paths == spec.RemotePaths()


@pytest.mark.parametrize("members", [1, 3, 5, 7])
def test_built_in_specs_round_trip_through_their_annotated_yaml(members: int) -> None:
    for built in (spec.lab_spec(members), spec.ssh_spec(members, release="3.7.4")):
        text = spec.render_annotated(built)
        assert spec.parse(text) == built
        assert ("ssh:" in text) is (built.target is spec.Target.SSH)


def test_even_and_large_member_counts_warn() -> None:
    assert any("odd count" in w for w in spec.lab_spec(4).warnings())
    assert any("at most 7" in w for w in spec.lab_spec(9).warnings())
    assert spec.lab_spec(3).warnings() == []


def test_invalid_yaml_says_where() -> None:
    with pytest.raises(SpecError, match=r"not valid YAML at line \d+, column \d+"):
        spec.parse("members:\n  - name: [unclosed\n")


def test_the_fixed_places_checked_here_are_where_render_puts_them() -> None:
    from dcsctl import render

    cluster = spec.ssh_spec(1, release="3.7.4")
    places = render.HostPaths.of(cluster, cluster.members[0])
    assert (str(places.hosts_file), str(places.tarball_cache)) == (spec.HOSTS_FILE,
                                                                   spec.TARBALL_CACHE)
