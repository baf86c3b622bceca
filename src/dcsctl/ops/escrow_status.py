"""Is the newest escrow of this control machine's state still current? (for `status`)

Apart from ops/escrow.py so that `status` checks it without loading the escrow's
cryptography.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from dcsctl.state import ClusterDir

RECORD = "escrow.json"  # in the cluster's state folder: when the last escrow was written
# What counts as a change of keys or users (rotation, `patroni add`, `member add`, restore).
TRACKED = ("pki", "secrets", "patroni.json", "cluster.json")


def staleness(directory: ClusterDir, *, store_configured: bool) -> str | None:
    """A warning when the newest escrow is older than the last change of keys or users
    (or there is none, for a cluster that keeps its backups off-site)."""
    if not directory.exists():
        return None
    try:
        recorded = json.loads((directory.root / RECORD).read_bytes())
        exported = dt.datetime.fromisoformat(recorded.get("covers") or recorded["exported_at"])
    except FileNotFoundError:
        if store_configured:
            return ("no escrow of this control machine's state exists: without one, losing "
                    "this machine loses the CA, the admin identity and the backup key "
                    "(`dcsctl state export`)")
        return None
    except (ValueError, KeyError):
        return f"{directory.root / RECORD} is unreadable: run `dcsctl state export` again"
    changed: tuple[float, Path] | None = None
    for name in TRACKED:
        top = directory.root / name
        paths = [top] if top.is_file() else [p for p in top.rglob("*") if p.is_file()]
        for path in paths:
            mtime = path.stat().st_mtime
            if changed is None or mtime > changed[0]:
                changed = (mtime, path)
    if changed and dt.datetime.fromtimestamp(changed[0], dt.UTC) > exported:
        when = dt.datetime.fromtimestamp(changed[0], dt.UTC).isoformat(timespec="seconds")
        return (f"the newest escrow ({exported.isoformat(timespec='seconds')}) is older than "
                f"the last change of keys or users ({when}: "
                f"{changed[1].relative_to(directory.root)}): run `dcsctl state export`")
    return None
