"""The spec's `patroni:` section: scopes, their database nodes, and what is refused."""

from __future__ import annotations

from typing import Any

import pytest

from dcsctl.errors import SpecError
from dcsctl.spec import ReloadMethod, from_mapping, lab_spec, ssh_spec


def _spec(patroni: dict[str, Any]) -> Any:
    return from_mapping({"members": [{"name": "dcs-00", "address": "127.0.0.10"}],
                         "patroni": patroni})


def test_a_node_gets_the_issues_defaults() -> None:
    spec = _spec({"scopes": [{"name": "demo", "nodes": [
        {"name": "db-00", "address": "192.168.56.70"}]}]})
    assert spec.patroni is not None
    scope = spec.patroni.scopes[0]
    node = scope.nodes[0]
    assert (scope.namespace, scope.prefix) == ("/service/", "/service/demo/")
    assert node.bundle_dir == "/etc/patroni/etcd"
    assert node.file_owner == "postgres:postgres"
    assert node.rest_url == "http://192.168.56.70:8008"
    assert node.reload is ReloadMethod.REST and node.ssh is None


def test_a_bundle_dir_may_end_in_a_slash_and_https_rest_apis_are_kept() -> None:
    spec = _spec({"scopes": [{"name": "demo", "nodes": [
        {"name": "db-00", "address": "10.0.0.5", "bundle_dir": "/etc/patroni/etcd/",
         "rest_api": "https://db-00.example:8443/", "rest_api_ca_file": "/etc/ca.pem",
         "reload": "systemd", "systemd_unit": "patroni@main", "owner": "pg",
         "group": "pgadmin"}]}]})
    assert spec.patroni is not None
    node = spec.patroni.scopes[0].nodes[0]
    assert node.bundle_dir == "/etc/patroni/etcd"
    assert node.rest_url == "https://db-00.example:8443"
    assert node.file_owner == "pg:pgadmin" and node.reload is ReloadMethod.SYSTEMD


def test_scopes_without_nodes_and_specs_without_patroni_are_as_before() -> None:
    assert lab_spec().patroni is None
    spec = _spec({"scopes": [{"name": "a"}, {"name": "b", "namespace": "/db/"}]})
    assert spec.patroni is not None and [s.nodes for s in spec.patroni.scopes] == [[], []]


@pytest.mark.parametrize(("patroni", "words"), [
    ({"scopes": [{"name": "prod"}, {"name": "b", "namespace": "/service/prod/"}]},
     "overlapping prefixes"),
    ({"scopes": [{"name": "a"}, {"name": "a"}]}, "listed 2 times"),
    ({"scopes": [{"name": "a", "nodes": [{"name": "db-00", "address": "10.0.0.1"},
                                         {"name": "db-00", "address": "10.0.0.2"}]}]},
     "node 'db-00' is listed 2 times"),
    ({"scopes": [{"name": "a", "nodes": [{"name": "db-00", "address": "10.0.0.1"}]},
                 {"name": "b", "nodes": [{"name": "db-00", "address": "10.0.0.1"}]}]},
     "own bundle_dir"),
    ({"scopes": [{"name": "a", "nodes": [{"name": "db-00", "address": "10.0.0.1",
                                          "bundle_dir": "/etc"}]}]}, "system directory"),
    ({"scopes": [{"name": "a", "nodes": [{"name": "db-00", "address": "10.0.0.1",
                                          "rest_api": "ftp://x"}]}]}, "http://HOST:PORT"),
    ({"scopes": [{"name": "a", "nodes": [{"name": "db-00", "address": "10.0.0.1",
                                          "ssh": "-oProxyCommand=x"}]}]}, "[user@]host"),
    ({"scopes": [{"name": "a", "nodes": [{"name": "../x", "address": "10.0.0.1"}]}]},
     "short name"),
    ({"scopes": [{"name": "a", "namespace": "service"}]}, "start and end with '/'"),
    ({"scopes": [{"name": "a", "nodes": [{"name": "db-00", "address": "10.0.0.1",
                                          "owner": "Postgres;rm"}]}]}, "POSIX user"),
    ({"scopes": [{"name": "a", "nodes": [{"name": "db-00", "address": "10.0.0.1",
                                          "reload": "restart"}]}]}, "rest"),
])
def test_bad_patroni_sections_are_refused_with_their_path(
    patroni: dict[str, Any], words: str
) -> None:
    with pytest.raises(SpecError) as caught:
        _spec(patroni)
    details = "\n".join(caught.value.details)
    assert details.startswith("patroni") and words in details, details


def test_init_for_ssh_writes_the_guides_database_hosts() -> None:
    spec = ssh_spec(release="3.7.4")
    assert spec.patroni is not None
    (scope,) = spec.patroni.scopes
    assert [(n.name, str(n.address), n.ssh) for n in scope.nodes] == [
        ("db-00", "192.168.56.70", "db-00"), ("db-01", "192.168.56.71", "db-01"),
        ("db-02", "192.168.56.72", "db-02")]
