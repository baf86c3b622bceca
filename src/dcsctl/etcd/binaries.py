"""Find etcd, etcdctl and etcdutl, read their versions, refuse or warn per the advisories."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dcsctl.errors import EnvironmentProblem
from dcsctl.etcd.versions import RECOMMENDED, Version, refusal, warnings

TOOLS = ("etcd", "etcdctl", "etcdutl")
# Places the user named on purpose: finding nothing there is an error, not a fallback.
EXPLICIT = ("spec etcd.bin_dir", "DCSCTL_ETCD_BIN_DIR")


@dataclass(frozen=True)
class Binaries:
    etcd: Path
    etcdctl: Path
    etcdutl: Path | None
    version: Version
    warnings: tuple[str, ...]

    @property
    def bin_dir(self) -> Path:
        return self.etcd.parent


def _candidates(spec_bin_dir: str | None, environ: Mapping[str, str]) -> list[tuple[str, str]]:
    """(where, directory-or-PATH) in the order they are searched."""
    found: list[tuple[str, str]] = []
    if spec_bin_dir:
        found.append(("spec etcd.bin_dir", str(Path(spec_bin_dir).expanduser())))
    if environ.get("DCSCTL_ETCD_BIN_DIR"):
        found.append(("DCSCTL_ETCD_BIN_DIR", environ["DCSCTL_ETCD_BIN_DIR"]))
    found.append(("PATH", environ.get("PATH", os.defpath)))
    # The project's own set-up installs etcd next to dcsctl's interpreter.
    found.append(("dcsctl's bin dir", str(Path(sys.executable).parent)))
    return found


def version_of(etcd: Path) -> Version:
    """What `etcd --version` says (a binary a lab member was started with, say)."""
    return _read_version(etcd)


def _read_version(etcd: Path) -> Version:
    try:
        out = subprocess.run(
            [str(etcd), "--version"], capture_output=True, timeout=20, check=True
        ).stdout.decode()
        return Version.parse(out.splitlines()[0])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError) as exc:
        raise EnvironmentProblem(
            f"{etcd} does not report a version ({exc})",
            fix="point etcd.bin_dir or DCSCTL_ETCD_BIN_DIR at a working etcd 3.5 install",
        ) from exc


def _check_folder_name(etcd: Path, version: Version) -> None:
    """A folder named for a version (.tools/etcd-3.6.16/bin, /opt/etcd-v3.6.16) must hold
    that version: a mix-up would upgrade or render for the wrong one."""
    for folder in (etcd.parent, etcd.parent.parent):
        match = re.fullmatch(r"etcd-v?(\d+\.\d+\.\d+)", folder.name)
        if match and Version.parse(match.group(1)) != version:
            raise EnvironmentProblem(
                f"{etcd} is etcd {version}, but its folder {folder} says {match.group(1)}",
                fix=f"put etcd {match.group(1)} there, or point etcd.bin_dir / "
                f"DCSCTL_ETCD_BIN_DIR at the folder that really holds {version}",
            )


def find(spec_bin_dir: str | None, environ: Mapping[str, str]) -> Binaries:
    searched = []
    for where, path in _candidates(spec_bin_dir, environ):
        searched.append(f"{where} ({path})")
        etcd = shutil.which("etcd", path=path)
        etcdctl = shutil.which("etcdctl", path=path)
        if etcd and etcdctl:
            break
        if where in EXPLICIT:
            raise EnvironmentProblem(
                f"{where} is {path}, but it holds no etcd and etcdctl",
                fix=f"install etcd {RECOMMENDED} there, or unset {where}",
            )
    else:
        raise EnvironmentProblem(
            "etcd and etcdctl were not found; searched " + ", ".join(searched),
            fix=f"install etcd {RECOMMENDED} (the project's scripts/setup does) and put it on "
            "PATH, or set DCSCTL_ETCD_BIN_DIR / etcd.bin_dir in the spec",
        )
    etcd_path = Path(etcd)
    etcdutl = shutil.which("etcdutl", path=str(etcd_path.parent))
    version = _read_version(etcd_path)
    _check_folder_name(etcd_path, version)
    if (ruled_out := refusal(version)) is not None:
        raise EnvironmentProblem(
            f"etcd {version} at {etcd_path} {ruled_out.problem}",
            fix=f"install etcd {RECOMMENDED} or newer and point DCSCTL_ETCD_BIN_DIR at it",
        )
    return Binaries(
        etcd=etcd_path,
        etcdctl=Path(etcdctl),
        etcdutl=Path(etcdutl) if etcdutl else None,
        version=version,
        warnings=tuple(warnings(version)),
    )
