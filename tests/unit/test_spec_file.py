"""The user's spec file after a change of membership: only the members change, in place;
comments, key order, quoting and the file's other choices stay as the user wrote them."""

from __future__ import annotations

from dcsctl import spec, spec_file

USERS_FILE = """\
# Our DCS for the billing Patroni clusters (owner: dba team)
name: billing
members:
  # rack A
  - name: dcs-0
    address: 127.0.0.10   # the old box
  - name: dcs-1
    address: 127.0.0.11
  # rack B: do not move
  - name: dcs-2
    address: '127.0.0.12'
etcd:
  heartbeat_interval_ms: 100  # measured, see ticket 42
"""


def _with_members(*names_and_addresses: tuple[str, str]) -> spec.ClusterSpec:
    document = spec.digest_source(spec.parse(USERS_FILE))
    document["members"] = [{"name": n, "address": a} for n, a in names_and_addresses]
    return spec.from_mapping(document, source="test")


def test_an_added_member_is_the_only_change_and_every_comment_stays() -> None:
    cluster = _with_members(("dcs-0", "127.0.0.10"), ("dcs-1", "127.0.0.11"),
                            ("dcs-2", "127.0.0.12"), ("dcs-3", "127.0.0.13"))
    change = spec_file.updated(USERS_FILE, cluster)
    assert change.changed
    added = [line for line in change.diff.splitlines()
             if line.startswith("+") and not line.startswith("+++")]
    removed = [line for line in change.diff.splitlines()
               if line.startswith("-") and not line.startswith("---")]
    assert removed == []
    assert added == ["+  - name: dcs-3", "+    address: 127.0.0.13"]
    for kept in ("# Our DCS for the billing", "# rack A", "# the old box", "# rack B",
                 "'127.0.0.12'", "# measured, see ticket 42"):
        assert kept in change.text
    assert spec.parse(change.text) == cluster


def test_a_removed_member_takes_only_its_own_lines_with_it() -> None:
    cluster = _with_members(("dcs-0", "127.0.0.10"), ("dcs-2", "127.0.0.12"))
    change = spec_file.updated(USERS_FILE, cluster)
    removed = [line for line in change.diff.splitlines()
               if line.startswith("-") and not line.startswith("---")]
    assert removed == ["-  - name: dcs-1", "-    address: 127.0.0.11"]
    assert "# rack B: do not move" in change.text and "# the old box" in change.text
    assert spec.parse(change.text) == cluster


def test_a_changed_setting_is_written_where_it_belongs_and_defaults_stay_unwritten() -> None:
    document = spec.digest_source(spec.parse(USERS_FILE))
    document["etcd"]["bin_dir"] = "/opt/etcd-3.6.17/bin"
    cluster = spec.from_mapping(document, source="test")
    change = spec_file.updated(USERS_FILE, cluster)
    assert "  bin_dir: /opt/etcd-3.6.17/bin\n" in change.text
    assert "quota_backend_bytes" not in change.text  # still the default: not written out
    assert spec.parse(change.text) == cluster


def test_nothing_to_change_leaves_the_file_alone() -> None:
    change = spec_file.updated(USERS_FILE, spec.parse(USERS_FILE))
    assert not change.changed and change.text == ""
