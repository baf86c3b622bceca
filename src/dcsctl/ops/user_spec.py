"""The user's `-f` spec file after a change of the cluster (members added or removed,
a lab cluster's etcd binaries): only the changed values are written into it, in place,
keeping its comments, layout and mode (dcsctl.spec_file decides the new text)."""

from __future__ import annotations

import stat
from pathlib import Path

from dcsctl import spec_file
from dcsctl.files import atomic_write
from dcsctl.ops.cluster import Cluster


def refresh(cluster: Cluster, path: Path | None) -> spec_file.SpecFileChange | None:
    """Bring the spec file the command was given up to the spec the state dir now holds;
    the change (None: no file given, or nothing changed) with its diff."""
    if path is None:
        return None
    change = spec_file.updated(path.read_text(), cluster.dir.load_spec(), name=str(path))
    if not change.changed:
        return None
    atomic_write(path, change.text.encode(), stat.S_IMODE(path.stat().st_mode))
    return change
