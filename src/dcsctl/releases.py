"""etcd release tarballs on the control machine: fetched once into a cache, checked
against the sha256 the spec pins, and (for lab members) unpacked next to it.

SSH hosts get the checked tarball pushed over SSH, so they need no internet; a lab member
runs the unpacked binaries in place.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tarfile
import tempfile
import urllib.request
from pathlib import Path

from dcsctl.errors import EnvironmentProblem

TOOLS = ("etcd", "etcdctl", "etcdutl")


def named_version(source: str) -> str | None:
    """The version an official tarball's name carries (etcd-v3.6.16-linux-amd64.tar.gz)."""
    match = re.search(r"etcd-v(\d+\.\d+\.\d+)", source)
    return match.group(1) if match else None


def fetch(source: str, sha256: str, cache: Path) -> Path:
    """The tarball `source` (a path or an http(s) URL) in `cache`, with the pinned digest."""
    cache.mkdir(parents=True, exist_ok=True)
    cached = cache / f"{sha256}-{Path(source.split('?', maxsplit=1)[0]).name}"
    if cached.exists():
        return cached
    partial = cached.with_suffix(".partial")
    try:
        if re.match(r"^https?://", source):
            with urllib.request.urlopen(source, timeout=60) as response, \
                    partial.open("wb") as out:  # noqa: S310 - http(s) only, checked above
                shutil.copyfileobj(response, out)
        else:
            shutil.copyfile(Path(source).expanduser(), partial)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise EnvironmentProblem(
            f"cannot fetch the etcd release {source} ({exc})",
            fix="download it yourself and set install.tarball to the local file",
        ) from exc
    digest = hashlib.sha256(partial.read_bytes()).hexdigest()
    if digest != sha256:
        partial.unlink()
        raise EnvironmentProblem(
            f"{source} has sha256 {digest}, not the {sha256} the spec pins",
            fix="check the tarball against etcd's SHA256SUMS and correct install.sha256 "
            "or install.tarball",
        )
    if not set(TOOLS) <= set(_members(partial)):
        partial.unlink()
        raise EnvironmentProblem(f"{source} holds no etcd, etcdctl and etcdutl",
                                 fix="point install.tarball at an etcd release tarball")
    partial.rename(cached)
    return cached


def _members(tarball: Path) -> dict[str, tarfile.TarInfo]:
    """The tools in the tarball by name (etcd-vX.Y.Z-linux-amd64/etcd, ...): regular files
    only, so a link or a device cannot be unpacked in their place."""
    try:
        with tarfile.open(tarball) as archive:
            return {Path(info.name).name: info for info in archive.getmembers()
                    if info.isfile() and Path(info.name).name in TOOLS}
    except (tarfile.TarError, EOFError, OSError):
        return {}


def unpacked(tarball: Path) -> Path:
    """A bin dir holding the tarball's etcd, etcdctl and etcdutl, unpacked once beside it
    (atomically: a folder appears complete or not at all)."""
    bin_dir = tarball.with_suffix("").with_suffix("") / "bin"
    if all((bin_dir / tool).exists() for tool in TOOLS):
        return bin_dir
    found = _members(tarball)
    work = Path(tempfile.mkdtemp(prefix=".unpack-", dir=tarball.parent))
    try:
        with tarfile.open(tarball) as archive:
            for tool in TOOLS:
                source = archive.extractfile(found[tool])
                if source is None:
                    raise EnvironmentProblem(f"{tarball} has no readable {tool}",
                                             fix="point install.tarball at an etcd release")
                with source, (work / tool).open("wb") as out:
                    shutil.copyfileobj(source, out)
                os.chmod(work / tool, 0o755)  # noqa: S103 - programs, not secrets
        bin_dir.parent.mkdir(parents=True, exist_ok=True)
        os.replace(work, bin_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return bin_dir
