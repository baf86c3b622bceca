"""Where dcsctl keeps its state (DCSCTL_HOME): a module of its own, light enough for the
quick paths of `get` and `put` (cli/quick.py), which must not import the spec, nor
pathlib or typing (milliseconds each on a busy machine)."""

from __future__ import annotations

import os

TYPE_CHECKING = False  # mypy knows this name
if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path


def home_dir(environ: Mapping[str, str]) -> str:
    if environ.get("DCSCTL_HOME"):
        return os.path.expanduser(environ["DCSCTL_HOME"])
    data_home = environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"),
                                                              ".local", "share")
    return os.path.join(data_home, "dcsctl")


def default_home(environ: Mapping[str, str]) -> Path:
    from pathlib import Path

    return Path(home_dir(environ))
