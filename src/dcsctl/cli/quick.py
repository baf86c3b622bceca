"""Quick paths: `dcsctl get` and `dcsctl put` without typer, rich, pydantic or grpc.

The full CLI imports ~0.3 s of typer, rich, pydantic (the spec) and grpc before it sends
one request, where etcdctl has answered in 0.01 s. `run()` (the console entry point) asks
this module first. A quick path takes only the argv shapes it knows (its command's own
options, nothing else: `--help`, `--debug`, a typo go to the full CLI) and only a
cluster whose client profile was recorded; it sends the request through etcdctl
(etcd/etcdctl.py). Anything else — no profile yet, a missing key, any failure — returns
None and the full CLI runs the same argv, with its checks and its error messages, so a
quick path never words an error of its own.

This module parses and prints; the profile and the etcdctl call are `ops/quick.py`'s.
The client profile (endpoints, CA/admin certificate paths, the etcdctl of the cluster's
etcd) is recorded by the full `up`, `get` and `put` under DCSCTL_HOME/.cache/clients/,
keyed by what the full CLI resolves the cluster from: the bytes of the `-f` spec file, or
of the state dir's spec.yaml (`--cluster NAME`, or the built-in lab), and the environment
that picks etcd's binaries. Change any of them and the next run is a full one, which
records the new profile.

To give another command a quick path, add a function to QUICK; it must answer only what
it can answer exactly as the full command does. Imports here are the start-up time of
every quick run (tests/unit/test_quick_paths.py keeps the heavy ones out).
"""

from __future__ import annotations

import sys

from dcsctl.ops import quick as quick_ops

TYPE_CHECKING = False  # typing itself costs milliseconds; mypy knows this name
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import TextIO



class QuickArgs:
    """argv of a quick command, parsed as the full command's typer options would be."""

    __slots__ = ("cluster", "json_output", "positionals", "spec_file")

    def __init__(self, positionals: tuple[str, ...], spec_file: str | None,
                 cluster: str | None, json_output: bool) -> None:
        self.positionals = positionals
        self.spec_file = spec_file
        self.cluster = cluster
        self.json_output = json_output


_VALUED = {"-f": "spec_file", "--spec": "spec_file", "-c": "cluster", "--cluster": "cluster"}


def parse(argv: Sequence[str], positionals: int, *, json_flag: bool) -> QuickArgs | None:
    """The options `get`/`put` take; None for anything else (the full CLI decides)."""
    found: dict[str, str] = {}
    words: list[str] = []
    json_output = False
    items = iter(argv)
    for item in items:
        name, equals, inline = item.partition("=")
        if json_flag and item == "--json":
            json_output = True
        elif name in _VALUED and name.startswith("--") and equals:
            found[_VALUED[name]] = inline
        elif item in _VALUED:
            value = next(items, None)
            if value is None:
                return None
            found[_VALUED[item]] = value
        elif item.startswith("-"):
            return None  # --help, --debug, -fFILE, a typo, "--": the full CLI's business
        else:
            words.append(item)
    if len(words) != positionals or len(found) > 1:
        return None
    return QuickArgs(tuple(words), found.get("spec_file"), found.get("cluster"), json_output)


def _get(argv: Sequence[str], environ: Mapping[str, str], out: TextIO) -> int | None:
    args = parse(argv, 1, json_flag=True)
    profile = quick_ops.profile(environ, args.spec_file, args.cluster) if args else None
    if args is None or profile is None:
        return None
    key = args.positionals[0]
    if args.json_output:
        import json

        found = quick_ops.get_json(profile, key, environ)
        if found is None:
            return None  # the full CLI says "does not exist" in its own words
        # As rich's print_json writes it to a file or pipe (indent 2, no ASCII escapes).
        out.write(json.dumps(found, indent=2, ensure_ascii=False) + "\n")
        return 0
    value = quick_ops.get_value(profile, key, environ)
    if value is None:
        return None
    out.write(value.decode(errors="replace") + "\n")
    return 0


def _put(argv: Sequence[str], environ: Mapping[str, str], out: TextIO) -> int | None:
    args = parse(argv, 2, json_flag=False)
    profile = quick_ops.profile(environ, args.spec_file, args.cluster) if args else None
    if args is None or profile is None:
        return None
    key, value = args.positionals
    # A failed put goes to the full client, which writes the same value again: the key
    # ends with that value either way (at worst one more revision).
    quick_ops.put(profile, key, value, environ)
    out.write("OK\n")
    return 0


QUICK: dict[str, Callable[[Sequence[str], Mapping[str, str], TextIO], int | None]] = {
    "get": _get,
    "put": _put,
}


def run(argv: Sequence[str], environ: Mapping[str, str], out: TextIO | None = None
        ) -> int | None:
    """The command's exit code if a quick path answered it; None: run the full CLI."""
    if not argv or argv[0] not in QUICK:
        return None
    try:
        return QUICK[argv[0]](argv[1:], environ, out or sys.stdout)
    except quick_ops.QuickFailed:
        return None
