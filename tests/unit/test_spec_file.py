"""The user's spec file after a change of membership: only the member the command changed
changes, in place; comments, key order, quoting, edits not yet applied with `up` and the
file's mode stay as the user made them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dcsctl import spec, spec_file
from dcsctl.ops import user_spec

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

# `dcsctl init`'s own file, as a user leaves it: one edit not yet applied with `up` (the
# saved spec, which the command changed, still has etcd's default `warn`).
PENDING_EDIT = "  log_level: info\n"


def _init_file() -> str:
    text = user_spec.create({}, members=3, name="dcs", kind=spec.Target.LAB, rtt_ms=None,
                            output=None).text
    assert "  log_level: warn\n" in text
    return text.replace("  log_level: warn\n", PENDING_EDIT)


def _init_saved() -> spec.ClusterSpec:
    """What the state dir holds for the init file before the edit: dcsctl's lab spec."""
    return spec.lab_spec(3, "dcs")


def _with_members(saved: spec.ClusterSpec, *names_and_addresses: tuple[str, str]
                  ) -> spec.ClusterSpec:
    document = spec.digest_source(saved)
    document["members"] = [{"name": n, "address": a} for n, a in names_and_addresses]
    return spec.from_mapping(document, source="test")


def _changed_lines(change: spec_file.SpecFileChange) -> list[str]:
    return [line for line in change.diff.splitlines()
            if line[:1] in "+-" and not line.startswith(("+++", "---"))]


LAB = (("dcs-00", "127.0.0.10"), ("dcs-01", "127.0.0.11"), ("dcs-02", "127.0.0.12"))


def test_a_pending_edit_survives_add_remove_and_replace_and_the_diff_names_only_members(
) -> None:
    three = _init_saved()
    four = _with_members(three, *LAB, ("dcs-03", "127.0.0.13"))
    text = _init_file()

    added = spec_file.member_changed(text, "dcs-03", three, four)
    assert _changed_lines(added) == ["+- name: dcs-03", "+  address: 127.0.0.13"]
    assert PENDING_EDIT in added.text

    without = _with_members(three, LAB[0], LAB[2], ("dcs-03", "127.0.0.13"))
    removed = spec_file.member_changed(added.text, "dcs-01", four, without)
    assert _changed_lines(removed) == ["-- name: dcs-01", "-  address: 127.0.0.11"]
    assert PENDING_EDIT in removed.text

    # replace: the member leaves and joins again with the same entry; nothing to write
    replaced = spec_file.member_changed(removed.text, "dcs-02", without, without)
    assert not replaced.changed and replaced.text == ""
    # ... unless the file did not list it (e.g. added earlier without -f): then it is added
    unlisted = removed.text.replace("- name: dcs-02\n  address: 127.0.0.12\n", "")
    relisted = spec_file.member_changed(unlisted, "dcs-02", without, without)
    assert _changed_lines(relisted) == ["+- name: dcs-02", "+  address: 127.0.0.12"]
    assert relisted.text == removed.text

    # Positive control: the whole-file merge an upgrade uses does write the saved value.
    assert "  log_level: warn\n" in spec_file.updated(text, three).text


def test_the_next_sections_comment_stays_directly_above_its_key_after_an_add() -> None:
    three = _init_saved()
    change = spec_file.member_changed(
        _init_file(), "dcs-03", three, _with_members(three, *LAB, ("dcs-03", "127.0.0.13")))
    lines = change.text.splitlines()
    comment = next(i for i, line in enumerate(lines) if line.startswith("# default ports"))
    assert lines[comment + 1] == "ports:"
    # the new member is the last item, in the items' own style, then the blank line
    assert lines[comment - 3:comment] == ["- name: dcs-03", "  address: 127.0.0.13", ""]
    four = _with_members(three, *LAB, ("dcs-03", "127.0.0.13"))
    assert spec.parse(change.text).members == four.members
    # and removing it again gives back the file as it was, the comment above `ports:`
    assert spec_file.member_changed(change.text, "dcs-03", four, three).text == _init_file()


def test_a_member_added_between_others_goes_below_their_comments_not_above() -> None:
    text = USERS_FILE.replace("address: 127.0.0.11\n", "address: 127.0.0.11  # spare\n")
    saved = spec.parse(text)
    grown = _with_members(saved, ("dcs-0", "127.0.0.10"), ("dcs-1", "127.0.0.11"),
                          ("dcs-5", "127.0.0.15"), ("dcs-2", "127.0.0.12"))
    change = spec_file.member_changed(text, "dcs-5", saved, grown)
    assert _changed_lines(change) == ["+  - name: dcs-5", "+    address: 127.0.0.15"]
    # "# rack B" was written above dcs-2: it still is, and dcs-5 is above it; dcs-1 keeps
    # its own inline comment
    assert re.search(r"    address: 127.0.0.11  # spare\n  - name: dcs-5\n"
                     r"    address: 127.0.0.15\n  # rack B: do not move\n  - name: dcs-2\n",
                     change.text)
    assert [m.name for m in spec.parse(change.text).members] == [
        m.name for m in grown.members]


def test_an_added_member_is_the_only_change_and_every_comment_stays() -> None:
    saved = spec.parse(USERS_FILE)
    cluster = _with_members(saved, ("dcs-0", "127.0.0.10"), ("dcs-1", "127.0.0.11"),
                            ("dcs-2", "127.0.0.12"), ("dcs-3", "127.0.0.13"))
    change = spec_file.member_changed(USERS_FILE, "dcs-3", saved, cluster)
    assert _changed_lines(change) == ["+  - name: dcs-3", "+    address: 127.0.0.13"]
    for kept in ("# Our DCS for the billing", "# rack A", "# the old box", "# rack B",
                 "'127.0.0.12'", "# measured, see ticket 42"):
        assert kept in change.text
    assert spec.parse(change.text) == cluster


def test_a_removed_member_takes_only_its_own_lines_with_it() -> None:
    saved = spec.parse(USERS_FILE)
    cluster = _with_members(saved, ("dcs-0", "127.0.0.10"), ("dcs-2", "127.0.0.12"))
    change = spec_file.member_changed(USERS_FILE, "dcs-1", saved, cluster)
    assert _changed_lines(change) == ["-  - name: dcs-1", "-    address: 127.0.0.11"]
    assert "# rack B: do not move" in change.text and "# the old box" in change.text
    assert spec.parse(change.text) == cluster


def test_only_the_fields_the_operation_changed_are_written_into_a_members_entry() -> None:
    saved = spec.parse(USERS_FILE)
    document = spec.digest_source(saved)
    document["members"][1]["client_port"] = 3379
    moved = spec.from_mapping(document, source="test")
    # the user's own pending edit of that member (its address) stays
    text = USERS_FILE.replace("address: 127.0.0.11", "address: 127.0.0.21")
    change = spec_file.member_changed(text, "dcs-1", saved, moved)
    assert _changed_lines(change) == ["+    client_port: 3379"]
    assert "address: 127.0.0.21" in change.text


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


@pytest.mark.parametrize("mode", [0o600, 0o640])
def test_the_file_is_rewritten_in_place_with_its_mode_kept(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "cluster.yaml"
    path.write_text(_init_file())
    path.chmod(mode)
    three = _init_saved()
    four = _with_members(three, *LAB, ("dcs-03", "127.0.0.13"))
    change = user_spec.rewrite(
        path, lambda text: spec_file.member_changed(text, "dcs-03", three, four))
    assert change is not None
    assert path.stat().st_mode & 0o777 == mode
    assert path.read_text() == change.text
    assert [p.name for p in tmp_path.iterdir()] == ["cluster.yaml"]  # no temporary left
    # nothing to change: the file is not touched at all
    before = path.stat().st_mtime_ns
    assert user_spec.rewrite(
        path, lambda text: spec_file.member_changed(text, "dcs-03", three, four)) is None
    assert path.stat().st_mtime_ns == before
