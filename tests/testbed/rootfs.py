"""What the testbed's hosts are made of: a Debian root filesystem per suite, and a local apt
repository (the air-gapped mirror) holding Debian's etcd packages.

Both are built once and cached outside the checkout (~/.cache/dcsctl/testbed, or
$DCSCTL_TESTBED_CACHE), keyed by everything that goes into them; a build lands in a
temporary folder and is renamed into place, so a cache entry is always whole.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SUITES = ("bookworm", "trixie")
# A minimal Debian server: real systemd and sshd, sudo for the admin user, adduser for
# Debian's etcd-server postinst. No python3: dcsctl must do without it on a host.
PACKAGES = ("systemd", "systemd-sysv", "dbus", "openssh-server", "sudo", "iproute2",
            "ca-certificates", "adduser", "libfaketime")
USER = "admin"
REPO_MOUNT = "/srv/dcsctl-repo"  # where each host sees the local apt repository
# The guide's etcd: trixie's 3.5.16 package.
ETCD_PACKAGES = ("etcd-server", "etcd-client")
ETCD_VERSION = "3.5.16"

# mmdebstrap customize hooks, run with the new tree as $1. Everything per host (host keys,
# machine-id, hostname, authorized key) is written at `up` into the host's own layer.
HOOKS = (
    # Each host gets its own host key at up; none is shared through the cached tree.
    'rm -f "$1"/etc/ssh/ssh_host_*',
    'printf "HostKey /etc/ssh/ssh_host_ed25519_key\\nPasswordAuthentication no\\n"'
    ' > "$1"/etc/ssh/sshd_config.d/testbed.conf',
    # Air-gapped: the only package source is the local repository.
    'rm -f "$1"/etc/apt/sources.list "$1"/etc/apt/sources.list.d/*',
    f'echo "deb [trusted=yes] file:{REPO_MOUNT} ./"'
    ' > "$1"/etc/apt/sources.list.d/dcsctl-testbed.list',
    f'chroot "$1" useradd --create-home --shell /bin/bash --groups sudo {USER}',
    f'echo "{USER} ALL=(ALL) NOPASSWD:ALL" > "$1"/etc/sudoers.d/{USER}',
    f'chmod 0440 "$1"/etc/sudoers.d/{USER}',
    'rm -f "$1"/etc/hostname "$1"/etc/machine-id "$1"/etc/resolv.conf',
    'touch "$1"/etc/machine-id',
    # No background apt runs on the hosts while tests time things.
    'ln -sf /dev/null "$1"/etc/systemd/system/apt-daily.timer',
    'ln -sf /dev/null "$1"/etc/systemd/system/apt-daily-upgrade.timer',
)


class BuildError(RuntimeError):
    pass


def cache_dir() -> Path:
    return Path(os.environ.get("DCSCTL_TESTBED_CACHE",
                               Path.home() / ".cache" / "dcsctl" / "testbed"))


def _key(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:12]


def _run(argv: list[str], timeout: float, **kw: object) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                            check=False, **kw)  # type: ignore[call-overload]
    if result.returncode != 0:
        raise BuildError(f"{' '.join(argv[:3])}... failed ({result.returncode}): "
                         f"{(result.stderr or result.stdout)[-2000:]}")
    return str(result.stdout)


def _publish(tmp: Path, final: Path) -> Path:
    try:
        tmp.rename(final)
    except OSError:  # built at the same time by someone else: theirs is as good
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def rootfs(suite: str) -> Path:
    """The cached root filesystem of `suite` (built with mmdebstrap the first time)."""
    if suite not in SUITES:
        raise BuildError(f"suite {suite!r}: choose one of {', '.join(SUITES)}")
    final = cache_dir() / f"rootfs-{suite}-{_key(suite, PACKAGES, HOOKS)}"
    if final.is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    argv = ["mmdebstrap", "--quiet", "--mode=root", "--variant=minbase",
            "--include=" + ",".join(PACKAGES),
            *(f"--customize-hook={hook}" for hook in HOOKS), suite, str(tmp)]
    try:
        _run(argv, timeout=600)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return _publish(tmp, final)


def _apt_options() -> list[str]:
    """scripts/setup's private apt configuration (Debian's sid + trixie lists for etcd)."""
    apt = REPO / ".tools" / "apt"
    if not (apt / "lists").is_dir():
        raise BuildError(f"{apt}/lists is missing: run scripts/setup first")
    return ["-o", f"Dir::Etc::SourceList={apt}/sources.list",
            "-o", "Dir::Etc::SourceParts=/dev/null", "-o", f"Dir::State::Lists={apt}/lists",
            "-o", f"Dir::Cache={apt}/cache", "-o", "APT::Sandbox::User=root",
            "-o", "Debug::NoLocking=1"]


def _package_version(name: str, prefix: str) -> str:
    out = _run(["apt-cache", *_apt_options(), "madison", name], timeout=60)
    versions = [line.split("|")[1].strip() for line in out.splitlines() if "|" in line]
    matching = [v for v in versions if v.startswith(prefix + "-")]
    if not matching:
        raise BuildError(f"no {name} {prefix} in Debian's lists ({', '.join(versions)})")
    return matching[0]


def apt_repository() -> Path:
    """A flat apt repository with Debian's etcd-server/etcd-client (the guide's version),
    downloaded on this machine: the hosts install from it with no network of their own."""
    final = cache_dir() / f"apt-repo-etcd-{ETCD_VERSION}"
    if (final / "Release").is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        wanted = [f"{name}={_package_version(name, ETCD_VERSION)}" for name in ETCD_PACKAGES]
        _run(["apt-get", *_apt_options(), "download", "-qq", *wanted], timeout=300, cwd=tmp)
        stanzas = [_stanza(deb) for deb in sorted(tmp.glob("*.deb"))]
        packages = ("\n".join(stanzas)).encode()
        (tmp / "Packages").write_bytes(packages)
        digest = hashlib.sha256(packages).hexdigest()
        (tmp / "Release").write_text(
            "Origin: dcsctl-testbed\nLabel: dcsctl-testbed\nSuite: testbed\n"
            f"SHA256:\n {digest} {len(packages)} Packages\n")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():
        shutil.rmtree(final)
    return _publish(tmp, final)


def _stanza(deb: Path) -> str:
    control = _run(["dpkg-deb", "-f", str(deb)], timeout=60).rstrip("\n")
    data = deb.read_bytes()
    return (f"{control}\nFilename: ./{deb.name}\nSize: {len(data)}\n"
            f"SHA256: {hashlib.sha256(data).hexdigest()}\n")
