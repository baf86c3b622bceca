"""The testbed's pure pieces: the delay relay's nat rules and table, and how the reliability
report swaps its testbed section in and out of docs/reliability.md."""

from __future__ import annotations

import pytest

from tests.testbed.delay import Delay, parse_table, relay_rules
from tests.testbed.report import HEADING, existing_section, replace_section

SECTION = [HEADING, "", "| figure | value |", ""]


@pytest.mark.parametrize(("document", "expected"), [
    ("# R\n\n## Lab\n\nx\n", "# R\n\n## Lab\n\nx\n\n" + "\n".join(SECTION)),
    ("# R\n\n" + HEADING + "\n\nold\n", "# R\n\n" + "\n".join(SECTION)),
    ("# R\n\n" + HEADING + "\n\nold\n\n## After\n\ny\n",
     "# R\n\n" + "\n".join(SECTION) + "\n## After\n\ny\n"),
])
def test_the_testbed_section_is_replaced_or_appended_and_nothing_else_changes(
        document: str, expected: str) -> None:
    assert replace_section(document, SECTION) == expected
    assert replace_section(expected, SECTION) == expected  # idempotent
    assert existing_section(expected) == SECTION  # what a lab-only run carries over


def test_a_document_without_a_testbed_section_carries_none_over() -> None:
    assert existing_section("# R\n\n## Lab\n") == []


def test_the_delay_table_round_trips_through_the_relays_argv() -> None:
    table = {"192.168.56.10": Delay(100), "192.168.56.11": Delay(50, 10)}
    assert parse_table([f"{a}={d}" for a, d in table.items()]) == table


def test_a_delayed_namespace_redirects_all_its_etcd_connections_others_only_to_delayed() -> None:
    table = {"10.0.0.2": Delay(50)}
    own = relay_rules("t", "10.0.0.2", table, (2379, 2380), "eth0")
    other = relay_rules("t", "10.0.0.3", table, (2379, 2380), "eth0")
    assert 'oifname "eth0" tcp dport { 2379, 2380 } redirect' in own
    assert "ip daddr { 10.0.0.2 } tcp dport { 2379, 2380 } redirect" in other
    for rules in (own, other):  # the relay's own connections pass, before any redirect
        assert rules.index("meta mark") < rules.index("redirect")
