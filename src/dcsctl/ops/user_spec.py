"""The user's spec file: written once by `dcsctl init`, the user's from then on. After a
change of the cluster (members added or removed, a lab cluster's etcd binaries) only the
changed values are written into it, in place, keeping its comments, layout and mode
(dcsctl.spec_file decides the new text)."""

from __future__ import annotations

import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from dcsctl import releases, spec, spec_file, tuning
from dcsctl.errors import DcsctlError
from dcsctl.files import atomic_write
from dcsctl.ops.cluster import Cluster


@dataclass(frozen=True)
class NewSpec:
    text: str  # the annotated spec
    written: Path | None  # where it was written (None: the caller shows it)
    warnings: tuple[str, ...]  # what the spec itself warns of


def create(environ: Mapping[str, str], *, members: int, name: str, kind: spec.Target,
           rtt_ms: float | None, output: Path | None) -> NewSpec:
    """`dcsctl init`: an annotated spec for a lab or SSH cluster; with the round trip
    between members, etcd's timings by its tuning rule (and why, in the comments). Written
    to `output` only if nothing is there yet."""
    made = spec.lab_spec(members, name) if kind is spec.Target.LAB else spec.ssh_spec(
        members, name, release=str(releases.default_release(environ)))
    notes: dict[str, list[str]] = {}
    if rtt_ms is not None:
        timings = tuning.suggest(rtt_ms)
        made = tuning.with_timings(made, timings)
        notes["etcd"] = timings.why()
    text = spec.render_annotated(made, notes)
    if output is not None:
        if output.exists():
            raise DcsctlError(f"{output} already exists",
                              fix="choose another -o FILE or remove it")
        atomic_write(output, text.encode())
    return NewSpec(text, output, tuple(made.warnings()))


def refresh(cluster: Cluster, path: Path | None) -> spec_file.SpecFileChange | None:
    """After an upgrade or downgrade (the state dir now holds the spec the command was given
    with the new version): bring the spec file up to it; the change (None: no file given,
    or nothing changed) with its diff."""
    if path is None:
        return None
    saved = cluster.dir.load_spec()
    return rewrite(path, lambda text: spec_file.updated(text, saved, name=str(path)))


def follow_member(before: Cluster, path: Path | None, member: str
                  ) -> spec_file.SpecFileChange | None:
    """After `member add/remove/replace` of `member` on `before` (the cluster as its state
    dir held it before the command): only that member changes in the spec file."""
    if path is None:
        return None
    after = before.dir.load_spec()
    return rewrite(path, lambda text: spec_file.member_changed(text, member, before.spec, after,
                                                               name=str(path)))


def rewrite(path: Path, change_of: Callable[[str], spec_file.SpecFileChange]
            ) -> spec_file.SpecFileChange | None:
    """Write the change to the file in place (atomically, its mode kept); None if none."""
    change = change_of(path.read_text())
    if not change.changed:
        return None
    atomic_write(path, change.text.encode(), stat.S_IMODE(path.stat().st_mode))
    return change
