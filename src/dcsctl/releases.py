"""etcd release tarballs on the control machine: located (the spec's tarball, or the
official download or a mirror by version), fetched once into a cache, checked against the
sha256 the spec pins or dcsctl's release data holds, and (for lab members) unpacked.

SSH hosts get the checked tarball pushed over SSH, so they need no internet; a lab member
runs the unpacked binaries in place.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import ssl
import tarfile
import tempfile
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from dcsctl import spec
from dcsctl.errors import EnvironmentProblem, SpecError
from dcsctl.etcd.versions import RECOMMENDED, Version, unaccepted_risks

TOOLS = ("etcd", "etcdctl", "etcdutl")
OFFICIAL_DOWNLOADS = "https://github.com/etcd-io/etcd/releases/download"
PENDING = "pending"  # a release whose published digest is not recorded yet
# A file of rows like the packaged data's; its rows win (a site's own builds, the tests'
# mirror of the etcd built from Go modules).
DATA_ENV = "DCSCTL_RELEASE_DATA"
ARCHES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def tarball_name(version: str, arch: str) -> str:
    return f"etcd-v{version}-linux-{arch}.tar.gz"


def parse_data(text: str) -> dict[tuple[str, str], str]:
    """(version, arch) -> sha256 (or `pending`) from rows of version, arch, sha256."""
    rows: dict[tuple[str, str], str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split()
        if len(fields) != 3 or not re.fullmatch(r"\d+\.\d+\.\d+", fields[0]) or not (
                fields[2] == PENDING or re.fullmatch(r"[0-9a-f]{64}", fields[2])):
            raise ValueError(f"line {number}: expected VERSION ARCH SHA256, got {line!r}")
        rows[(fields[0], fields[1])] = fields[2]
    return rows


def release_data(environ: Mapping[str, str]) -> dict[tuple[str, str], str]:
    """The packaged release data, with the rows of $DCSCTL_RELEASE_DATA over it."""
    packaged = resources.files("dcsctl").joinpath("data/etcd-releases.tsv").read_text()
    rows = parse_data(packaged)
    if extra := environ.get(DATA_ENV):
        try:
            rows |= parse_data(Path(extra).read_text())
        except (OSError, ValueError) as exc:
            raise EnvironmentProblem(f"{DATA_ENV}={extra} cannot be used ({exc})",
                                     fix="point it at a file of VERSION ARCH SHA256 rows, "
                                     "or unset it") from exc
    return rows


def default_release(environ: Mapping[str, str], arch: str = "amd64") -> Version:
    """What `init --target ssh` writes: the recommended release when its digest is
    recorded, else the newest recorded release no advisory rules out."""
    recorded = sorted((Version.parse(v) for (v, a), digest in release_data(environ).items()
                       if a == arch and digest != PENDING), reverse=True)
    if RECOMMENDED in recorded:
        return RECOMMENDED
    clean = [v for v in recorded if not unaccepted_risks(v, ())]
    return clean[0] if clean else RECOMMENDED


@dataclass(frozen=True)
class Located:
    """Where one host's release comes from, and the digest it must have."""

    source: str  # a path or an http(s) URL
    sha256: str
    ca_file: str | None = None


def locate(settings: spec.InstallSettings, arch: str,
           environ: Mapping[str, str]) -> Located:
    """The tarball `install: release` names for a host of `arch`: the spec's own tarball
    and sha256, or the version's official download (or its place on install.mirror) with
    the digest from dcsctl's release data."""
    if settings.tarball and settings.sha256:  # the spec's validator pins every tarball
        return Located(settings.tarball, settings.sha256, settings.ca_file)
    version = settings.version
    if version is None:
        raise SpecError("install: method release needs a version",
                        fix="set install.version (e.g. 3.6.17)")
    name = tarball_name(version, arch)
    base = settings.mirror or OFFICIAL_DOWNLOADS
    source = f"{base}/v{version}/{name}"
    if settings.sha256:
        return Located(source, settings.sha256, settings.ca_file)
    data = release_data(environ)
    digest = data.get((version, arch))
    if digest is None or digest == PENDING:
        recorded = sorted({v for (v, a), d in data.items()
                           if a == arch and d != PENDING}, key=Version.parse)
        why = ("its published digest is not recorded yet" if digest == PENDING
               else "dcsctl's release data has no such release")
        raise EnvironmentProblem(
            f"cannot install etcd {version} for {arch} by version alone: {why}",
            fix=f"set install.sha256 to the {name} line of etcd {version}'s SHA256SUMS, "
            f"or choose a recorded release ({', '.join(recorded) or 'none'}); "
            "scripts/etcd-releases --checksums prints the missing rows")
    return Located(source, digest, settings.ca_file)


def arch_of(machine: str) -> str:
    """etcd's name for a `uname -m` answer."""
    try:
        return ARCHES[machine.strip()]
    except KeyError:
        raise EnvironmentProblem(f"etcd publishes no release for the {machine.strip()!r} "
                                 "architecture", fix="install etcd yourself and choose "
                                 "install.method none, or use an amd64 or arm64 host") from None


def named_version(source: str) -> str | None:
    """The version an official tarball's name carries (etcd-v3.6.16-linux-amd64.tar.gz)."""
    match = re.search(r"etcd-v(\d+\.\d+\.\d+)", source)
    return match.group(1) if match else None


def fetch(source: str, sha256: str, cache: Path, ca_file: str | None = None) -> Path:
    """The tarball `source` (a path or an http(s) URL) in `cache`, with the pinned digest;
    `ca_file`: the CA an https source's certificate chains to, if not a public one."""
    cache.mkdir(parents=True, exist_ok=True)
    cached = cache / f"{sha256}-{Path(source.split('?', maxsplit=1)[0]).name}"
    if cached.exists():
        return cached
    partial = cached.with_suffix(".partial")
    try:
        if re.match(r"^https?://", source):
            context = ssl.create_default_context(
                cafile=str(Path(ca_file).expanduser()) if ca_file else None)
            with urllib.request.urlopen(source, timeout=60, context=context) as response, \
                    partial.open("wb") as out:  # noqa: S310 - http(s) only, checked above
                shutil.copyfileobj(response, out)
        else:
            shutil.copyfile(Path(source).expanduser(), partial)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise EnvironmentProblem(
            f"cannot fetch the etcd release {source} ({exc})",
            fix="check the network path to it (install.mirror names an internal mirror; "
            "install.ca_file its CA), or download it yourself and set install.tarball to "
            "the local file",
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
