"""The user's spec file is the user's: after an operation changes the cluster, only what
that operation changed is written back into it, in place — `member add/remove/replace`
change that member's entry and nothing else (edits the user has not applied with `up` yet
stay); an upgrade writes its new etcd version or binaries. Comments, key order, quoting
and the members' own comments stay as the user wrote them (a round-trip YAML parser), and
the change is shown as a diff.
"""

from __future__ import annotations

import difflib
import io
from collections.abc import Callable, Mapping, MutableMapping, MutableSequence, Sequence
from dataclasses import dataclass

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import CommentMark
from ruamel.yaml.tokens import CommentToken
from ruamel.yaml.util import load_yaml_guess_indent

from dcsctl import spec


@dataclass(frozen=True)
class SpecFileChange:
    text: str  # the file's new content ("" when nothing changed)
    diff: str  # unified diff of the change

    @property
    def changed(self) -> bool:
        return bool(self.diff)


def _round_trip(text: str) -> YAML:
    """A round-trip parser (comments, order and quoting kept) that writes lists indented
    the way this file indents them."""
    _, sequence, offset = load_yaml_guess_indent(text)  # "  - name:" -> 4, 2
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 100
    yaml.indent(mapping=2, sequence=sequence or 2, offset=offset or 0)
    return yaml


def updated(text: str, cluster: spec.ClusterSpec, *, name: str = "cluster.yaml"
            ) -> SpecFileChange:
    """`text` (a spec file) with what differs from `cluster` written into it: for a change
    the caller made from the file itself (an upgrade saves the file's spec with the new
    version), so everything that differs is that change. Values the file leaves to their
    defaults stay left out while they keep the default. Members are left alone: only
    `member_changed` changes them."""
    before = spec.digest_source(spec.parse(text, source=name))
    return _edited(text, lambda document: _merge(document, before, spec.digest_source(cluster)),
                   name)


def member_changed(text: str, member: str, before: spec.ClusterSpec, after: spec.ClusterSpec,
                   *, name: str = "cluster.yaml") -> SpecFileChange:
    """`text` (the user's spec file) after `member add/remove/replace` of `member`, which
    took the cluster's saved spec from `before` to `after`. Only that member's entry
    changes: added where `after` places it, dropped, or its fields the operation changed
    rewritten. Every other key and member stays as the file says, edits not yet applied
    with `up` included (the saved spec does not have them, so it must not be copied)."""
    def change(document: MutableMapping[str, object]) -> None:
        items = document.get("members")
        if not isinstance(items, MutableSequence):
            return  # not a spec's shape: parse() refuses the file; leave it to the user
        old = _entry(before, member) or {}
        new = _entry(after, member)
        index = next((i for i, item in enumerate(items)
                      if isinstance(item, MutableMapping) and item.get("name") == member), None)
        item = items[index] if index is not None else None
        if new is None:
            if index is not None:
                _hand_on_comments(items, index)
                del items[index]
        elif not isinstance(item, MutableMapping):
            _insert(items, _position(items, after, member), CommentedMap(_written(new)))
        elif old != new:
            written = _written(new)
            for key in sorted(old.keys() | new.keys()):
                if old.get(key) == new.get(key):
                    continue
                if key in written:
                    item[key] = written[key]
                else:
                    item.pop(key, None)  # back to its default: left unwritten

    return _edited(text, change, name)


def _edited(text: str, change: Callable[[MutableMapping[str, object]], None], name: str
            ) -> SpecFileChange:
    """Parse `text` keeping its comments and layout, apply `change`, write it back out."""
    yaml = _round_trip(text)
    document = yaml.load(text)
    if document is None:
        document = CommentedMap()
    change(document)
    out = io.StringIO()
    yaml.dump(document, out)
    new = out.getvalue()
    diff = "".join(difflib.unified_diff(text.splitlines(keepends=True),
                                        new.splitlines(keepends=True),
                                        fromfile=f"{name} (before)", tofile=name))
    return SpecFileChange(new if diff else "", diff)


def _merge(node: MutableMapping[str, object], before: Mapping[str, object],
           after: Mapping[str, object]) -> None:
    """Bring `node` (the file's mapping) from `before` to `after` (both the validated
    spec's values, defaults filled in), touching only what differs."""
    for key in [k for k in before if k not in after]:
        node.pop(key, None)
    for key, wanted in after.items():
        if before.get(key) == wanted or key == "members":
            continue
        current = node.get(key)
        if isinstance(wanted, dict) and isinstance(current, MutableMapping):
            old = before.get(key)
            _merge(current, old if isinstance(old, dict) else {}, wanted)
        else:
            node[key] = wanted


def _entry(cluster: spec.ClusterSpec, member: str) -> dict[str, object] | None:
    """`member`'s entry in `cluster` as plain data (defaults filled in), if it has one."""
    return next((m for m in spec.digest_source(cluster)["members"] if m["name"] == member),
                None)


def _written(member: Mapping[str, object]) -> dict[str, object]:
    """A member as a user would write it: its name, address and what differs."""
    return spec.Member.model_validate(member).model_dump(mode="json", exclude_defaults=True)


def _position(items: Sequence[object], after: spec.ClusterSpec, member: str) -> int:
    """Where `member` goes in the file's list: right after the nearest member `after`
    lists before it that the file has too (first, if none)."""
    order = [m.name for m in after.members]
    names = [item.get("name") if isinstance(item, Mapping) else None for item in items]
    for earlier in reversed(order[:order.index(member)]):
        if earlier in names:
            return names.index(earlier) + 1
    return 0


def _insert(items: MutableSequence[object], position: int, member: CommentedMap) -> None:
    """Insert `member` at `position`. The parser keeps whole-line comments that follow an
    item (the next member's own comment, or the next section's, e.g. `# default ports`
    above `ports:`) on that item's last value: they move to the new member's last value,
    so they stay directly above what they describe and the new member goes above them."""
    items.insert(position, member)
    if position == 0:
        return
    holder, key = _last_value(items[position - 1])
    if holder is None:
        return
    slot = holder.ca.items.get(key)
    token = slot[2] if slot and len(slot) > 2 else None
    if token is None or "\n" not in token.value.rstrip("\n"):
        return
    own, following = token.value.split("\n", 1)  # its inline comment, the lines after it
    if own.strip():
        token.value = own + "\n"
    else:
        slot[2] = None
    member.ca.items[list(member)[-1]] = [None, None, CommentToken(
        "\n" + following, CommentMark(0), None), None]


def _last_value(node: object) -> tuple[CommentedMap | None, object]:
    """The mapping holding the last value written inside `node`, and that value's key."""
    if not isinstance(node, CommentedMap) or not node:
        return None, None
    key = list(node)[-1]
    deeper = _last_value(node[key])
    return deeper if deeper[0] is not None else (node, key)


def _hand_on_comments(items: MutableSequence[object], index: int) -> None:
    """Whole-line comments written above the next member are kept by the parser on the
    member before it (after its last value): before that member goes, they move to the
    one before it (or above the list), so deleting a member deletes only its own lines."""
    item = items[index]
    if not isinstance(item, CommentedMap) or not item:
        return
    last = list(item)[-1]
    tokens = item.ca.items.get(last)
    token = tokens[2] if tokens and len(tokens) > 2 else None
    if token is None or "\n" not in token.value.rstrip("\n"):
        return
    following = token.value.split("\n", 1)[1]  # the lines after its own inline comment
    previous = items[index - 1] if index > 0 else None
    if isinstance(previous, CommentedMap) and previous:
        key = list(previous)[-1]
        slot = previous.ca.items.setdefault(key, [None, None, None, None])
        if slot[2] is None:
            slot[2] = CommentToken("\n" + following, CommentMark(0), None)
        else:
            slot[2].value = slot[2].value.rstrip("\n") + "\n" + following
    elif isinstance(items, CommentedSeq):
        lines = [line.strip() for line in following.splitlines() if line.strip()]
        items.yaml_set_start_comment("\n".join(line.lstrip("# ") for line in lines))
