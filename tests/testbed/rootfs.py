"""What the testbed's hosts are made of: a Debian root filesystem per suite (and a database
variant of it: PostgreSQL and Patroni), and a local apt repository (the air-gapped mirror)
holding Debian's etcd packages.

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


# The database hosts (db-00..): Debian's PostgreSQL, and Python for Patroni's venv.
DB_PACKAGES = ("postgresql", "python3", "python3-venv")
PATRONI_VENV = "/opt/patroni"
# Debian's postgresql-common would create and start a "main" cluster on install; Patroni
# makes its own data directory, and nothing else may run PostgreSQL on these hosts.
DB_ESSENTIAL_HOOKS = (
    'mkdir -p "$1"/etc/postgresql-common',
    'echo "create_main_cluster = false" > "$1"/etc/postgresql-common/createcluster.conf',
)
DB_HOOKS = ('ln -sf /dev/null "$1"/etc/systemd/system/postgresql.service',)
# WHEELS is replaced by the wheel folder (patroni_wheels), copied in and removed again.
PATRONI_HOOKS = (
    'cp -r WHEELS "$1"/tmp/patroni-wheels',
    f'chroot "$1" python3 -m venv {PATRONI_VENV}',
    f'chroot "$1" {PATRONI_VENV}/bin/pip install --quiet --no-index --disable-pip-version-check'
    ' --find-links /tmp/patroni-wheels patroni[etcd3,psycopg3]',
    'rm -rf "$1"/tmp/patroni-wheels',
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
    return _build_rootfs(f"rootfs-{suite}", suite, PACKAGES, (), HOOKS)


def db_rootfs(suite: str) -> Path:
    """The database hosts' tree: the same server plus Debian's PostgreSQL (no cluster: Patroni
    makes its own) and Patroni in /opt/patroni, installed from wheels this machine fetched
    from PyPI (patroni_wheels): the hosts never reach a package index."""
    if suite != "bookworm":
        raise BuildError(f"database hosts are built on bookworm only (asked: {suite})")
    wheels = patroni_wheels()
    hooks = (*HOOKS, *DB_HOOKS, *(hook.replace("WHEELS", str(wheels)) for hook in PATRONI_HOOKS))
    return _build_rootfs(f"rootfs-db-{suite}", suite, (*PACKAGES, *DB_PACKAGES),
                         DB_ESSENTIAL_HOOKS, hooks)


def _build_rootfs(name: str, suite: str, packages: tuple[str, ...],
                  essential_hooks: tuple[str, ...], hooks: tuple[str, ...]) -> Path:
    if suite not in SUITES:
        raise BuildError(f"suite {suite!r}: choose one of {', '.join(SUITES)}")
    key = _key(suite, packages, hooks) if not essential_hooks else _key(
        suite, packages, essential_hooks, hooks)
    final = cache_dir() / f"{name}-{key}"
    if final.is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    argv = ["mmdebstrap", "--quiet", "--mode=root", "--variant=minbase",
            "--include=" + ",".join(packages),
            *(f"--essential-hook={hook}" for hook in essential_hooks),
            *(f"--customize-hook={hook}" for hook in hooks), suite, str(tmp)]
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


def patroni_pins() -> list[str]:
    """Patroni and every package of scripts/setup's .tools/patroni, at the versions there:
    the hosts run the Patroni the lab's tests run."""
    pip = REPO / ".tools" / "patroni" / "bin" / "pip"
    if not pip.exists():
        raise BuildError(f"{pip} is missing: run scripts/setup first")
    frozen = _run([str(pip), "freeze", "--disable-pip-version-check"], timeout=60)
    pins = sorted(line.strip() for line in frozen.splitlines() if "==" in line)
    if not any(pin.lower().startswith("patroni==") for pin in pins):
        raise BuildError(f"no Patroni in {pip.parent.parent}: run scripts/setup")
    return pins


def patroni_wheels() -> Path:
    """A folder of wheels for Patroni and its dependencies (the pins of .tools/patroni),
    fetched from PyPI by this machine's pip (packages without a wheel are built here:
    python-etcd, ydiff are pure Python). This machine and the hosts are both Debian 12 with
    its Python 3.11, so the wheels pip picks here are the hosts' wheels."""
    pins = patroni_pins()
    final = cache_dir() / f"patroni-wheels-{_key(pins)}"
    if final.is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    pip = REPO / ".tools" / "patroni" / "bin" / "pip"
    try:
        _run([str(pip), "wheel", "--quiet", "--disable-pip-version-check", "--no-deps",
              "--use-pep517",  # python-etcd and ydiff are setup.py sdists
              "--wheel-dir", str(tmp), *pins], timeout=600)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return _publish(tmp, final)
