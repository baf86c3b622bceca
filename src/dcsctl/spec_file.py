"""The user's spec file is the user's: after an operation changes the cluster (members
added, removed or replaced; a lab cluster's etcd.bin_dir after an upgrade) only the values
that changed are written back into it, in place — comments, key order, quoting and the
members' own comments stay as the user wrote them (a round-trip YAML parser), and the
change is shown as a diff.
"""

from __future__ import annotations

import difflib
import io
from collections.abc import Mapping, MutableMapping, MutableSequence
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
    """`text` (a spec file) with what differs from `cluster` written into it. Values the
    file leaves to their defaults stay left out while they keep the default."""
    before = spec.digest_source(spec.parse(text, source=name))
    after = spec.digest_source(cluster)
    yaml = _round_trip(text)
    document = yaml.load(text)
    if document is None:
        document = CommentedMap()
    _merge(document, before, after)
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
        if before.get(key) == wanted:
            continue
        current = node.get(key)
        if isinstance(wanted, dict) and isinstance(current, MutableMapping):
            old = before.get(key)
            _merge(current, old if isinstance(old, dict) else {}, wanted)
        elif key == "members" and isinstance(wanted, list) and isinstance(
                current, MutableSequence):
            _merge_members(current, before.get(key), wanted)
        else:
            node[key] = wanted


def _merge_members(items: MutableSequence[object], before: object,
                   after: list[dict[str, object]]) -> None:
    """Members matched by name: a kept member keeps its comments and its place, a
    removed one goes, a new one takes the place the cluster gives it."""
    old = {m["name"]: m for m in before} if isinstance(before, list) else {}
    wanted_names = [m["name"] for m in after]
    for index in reversed(range(len(items))):
        item = items[index]
        if not isinstance(item, MutableMapping) or item.get("name") not in wanted_names:
            _hand_on_comments(items, index)
            del items[index]
    for position, member in enumerate(after):
        found = next((i for i, item in enumerate(items)
                      if isinstance(item, MutableMapping) and item.get("name") == member["name"]),
                     None)
        item = items[found] if found is not None else None
        if not isinstance(item, MutableMapping):
            items.insert(position, CommentedMap(_without_defaults(member)))
            continue
        _merge(item, old.get(member["name"], {}), member)


def _without_defaults(member: dict[str, object]) -> dict[str, object]:
    """A new member as a user would write it: its name, address and what differs."""
    return spec.Member.model_validate(member).model_dump(mode="json", exclude_defaults=True)


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
