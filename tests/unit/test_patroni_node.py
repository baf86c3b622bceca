"""The node side as values: ss output, Patroni's own process, the kill argv, GET /patroni."""

from __future__ import annotations

import pytest

from dcsctl.patroni_node import (
    Endpoint,
    etcd_connections,
    http_date,
    kill_argv,
    parse_sockets,
    parse_state,
    rest_api_owner,
    version_tuple,
)

# `ss -H -t -a -n -p` on a database host (iproute2 6.1), columns squeezed.
SS = """\
LISTEN 0  5  127.0.0.50:8008  0.0.0.0:*  users:(("patroni",pid=4242,fd=7))
LISTEN 0  244  127.0.0.50:5432  0.0.0.0:*  users:(("postgres",pid=4300,fd=6))
ESTAB  0  0  127.0.0.1:51000  127.0.0.10:2379  users:(("patroni",pid=4242,fd=9))
ESTAB  0  0  127.0.0.1:51002  127.0.0.11:2379  users:(("patroni",pid=4242,fd=11))
ESTAB  0  0  127.0.0.1:51004  127.0.0.10:2379  users:(("python3",pid=999,fd=3))
TIME-WAIT 0  0  127.0.0.1:50990  127.0.0.12:2379
ESTAB  0  0  127.0.0.50:8008  127.0.0.1:40000  users:(("patroni",pid=4242,fd=12))
LISTEN 0  128  [::]:8009  [::]:*  users:(("patroni",pid=5000,fd=7))
"""
ETCD = [Endpoint("127.0.0.10", 2379), Endpoint("127.0.0.11", 2379),
        Endpoint("127.0.0.12", 2379)]


def test_the_rest_api_listener_names_patronis_pid() -> None:
    sockets = parse_sockets(SS)
    assert rest_api_owner(sockets, "127.0.0.50", 8008) == 4242
    assert rest_api_owner(sockets, "192.168.56.71", 8009) == 5000  # a wildcard listener
    assert rest_api_owner(sockets, "127.0.0.50", 8010) is None


def test_only_patronis_established_connections_to_etcd_are_chosen() -> None:
    chosen = etcd_connections(parse_sockets(SS), 4242, ETCD)
    assert [(str(s.local), str(s.peer)) for s in chosen] == [
        ("127.0.0.1:51000", "127.0.0.10:2379"), ("127.0.0.1:51002", "127.0.0.11:2379")]


def test_the_kill_argv_names_each_connection_by_its_four_tuple() -> None:
    chosen = etcd_connections(parse_sockets(SS), 4242, ETCD)
    assert kill_argv(chosen) == [
        "ss", "-K", "-t", "-n",
        "(", "src", "127.0.0.1:51000", "and", "dst", "127.0.0.10:2379", ")", "or",
        "(", "src", "127.0.0.1:51002", "and", "dst", "127.0.0.11:2379", ")"]


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1:2379", Endpoint("127.0.0.1", 2379)),
    ("[::1]:8008", Endpoint("::1", 8008)),
    ("*:8008", Endpoint("*", 8008)),
    ("[fe80::1%eth0]:2379", Endpoint("fe80::1", 2379)),
])
def test_endpoints_parse(text: str, expected: Endpoint) -> None:
    assert Endpoint.parse(text) == expected


def test_get_patroni_is_read_into_a_state() -> None:
    state = parse_state({"state": "running", "role": "primary", "timeline": 1,
                         "dcs_last_seen": 1764950000, "patroni": {"version": "4.1.5"},
                         "postmaster_start_time": "2026-12-05 18:00:00+00:00"})
    assert (state.role, state.dcs_last_seen, state.version_tuple) == (
        "primary", 1764950000, (4, 1, 5))
    empty = parse_state({})
    assert (empty.role, empty.dcs_last_seen, empty.version_tuple) == ("", None, ())


@pytest.mark.parametrize(("text", "expected"), [
    ("4.1.5", (4, 1, 5)), ("4.1.0", (4, 1, 0)), ("3.3", (3, 3)), ("4.1.1rc1", (4, 1, 1)),
    ("", ()),
])
def test_patroni_versions_compare_as_numbers(text: str, expected: tuple[int, ...]) -> None:
    assert version_tuple(text) == expected


def test_http_dates_are_the_nodes_clock() -> None:
    assert http_date("Sat, 05 Dec 2026 18:00:00 GMT") == 1796493600
    assert http_date("yesterday") is None and http_date(None) is None
