"""Quick paths: `dcsctl get` and `dcsctl put` without typer, rich, pydantic or grpc.

The full CLI imports ~0.3 s of typer, rich, pydantic (the spec) and grpc before it sends
one request, where etcdctl has answered in 0.01 s. `run()` (the console entry point) asks
this module first. A quick path takes only the argv shapes it knows (its command's own
options, nothing else: `--help`, `--debug`, a typo go to the full CLI) and only a
cluster whose client profile was recorded; it sends the request through etcdctl
(etcd/etcdctl.py). Anything else — no profile yet, a missing key, any failure — returns
None and the full CLI runs the same argv, with its checks and its error messages, so a
quick path never words an error of its own.

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

import hashlib
import os
import sys

from dcsctl.etcd import etcdctl
from dcsctl.home import home_dir

TYPE_CHECKING = False  # typing itself costs milliseconds; mypy knows this name
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from pathlib import Path
    from typing import TextIO

# spec.lab_spec()'s name: the cluster a command without -f/--cluster works on
# (tests/unit/test_quick_paths.py keeps the two equal).
LAB_NAME = "dcs"
# Environment variables that change which etcdctl the full CLI finds (etcd/binaries.py).
BINARY_ENVIRON = ("DCSCTL_ETCD_BIN_DIR", "PATH")
PROFILE_VERSION = b"dcsctl client profile 1"


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


def spec_source(environ: Mapping[str, str], spec_file: str | Path | None,
                cluster: str | None) -> bytes | None:
    """The bytes the full CLI resolves the cluster from (cli/common.py: cluster_of)."""
    path = (str(spec_file) if spec_file is not None
            else os.path.join(home_dir(environ), cluster or LAB_NAME, "spec.yaml"))
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return None


def profile_path(environ: Mapping[str, str], source: bytes) -> str:
    digest = hashlib.sha256(PROFILE_VERSION)
    for part in (source, *(environ.get(name, "").encode() for name in BINARY_ENVIRON)):
        digest.update(len(part).to_bytes(8, "big") + part)
    return os.path.join(home_dir(environ), ".cache", "clients", digest.hexdigest())


def remember(environ: Mapping[str, str], source: bytes | None,
             profile: etcdctl.EtcdctlProfile) -> None:
    """Record the profile the full CLI resolved, for the next quick run (0600: it says
    where the admin key is, though not the key)."""
    from pathlib import Path

    from dcsctl.files import atomic_write

    if source is not None:
        atomic_write(Path(profile_path(environ, source)), profile.dump(), mode=0o600)


def _profile(environ: Mapping[str, str], args: QuickArgs) -> etcdctl.EtcdctlProfile | None:
    source = spec_source(environ, args.spec_file, args.cluster)
    if source is None:
        return None
    try:
        with open(profile_path(environ, source), "rb") as handle:
            profile = etcdctl.EtcdctlProfile.load(handle.read())
    except (OSError, ValueError):
        return None
    return profile if profile.usable() else None


def _get(argv: Sequence[str], environ: Mapping[str, str], out: TextIO) -> int | None:
    args = parse(argv, 1, json_flag=True)
    profile = _profile(environ, args) if args is not None else None
    if args is None or profile is None:
        return None
    key = args.positionals[0]
    if args.json_output:
        import json

        found = etcdctl.get_json(profile, key, environ)
        if found is None:
            return None  # the full CLI says "does not exist" in its own words
        # As rich's print_json writes it to a file or pipe (indent 2, no ASCII escapes).
        out.write(json.dumps(found, indent=2, ensure_ascii=False) + "\n")
        return 0
    value = etcdctl.get_value(profile, key, environ)
    if value is None:
        return None
    out.write(value.decode(errors="replace") + "\n")
    return 0


def _put(argv: Sequence[str], environ: Mapping[str, str], out: TextIO) -> int | None:
    args = parse(argv, 2, json_flag=False)
    profile = _profile(environ, args) if args is not None else None
    if args is None or profile is None:
        return None
    key, value = args.positionals
    # A failed put goes to the full client, which writes the same value again: the key
    # ends with that value either way (at worst one more revision).
    etcdctl.put(profile, key, value, environ)
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
    except etcdctl.EtcdctlFailed:
        return None
