"""SSH hosts: etcd on every host — Debian's packages, an official release tarball
checked by sha256, or what is already there — and the service user it runs as.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from dcsctl import releases, spec
from dcsctl.errors import DcsctlError, EnvironmentProblem
from dcsctl.etcd.versions import RECOMMENDED, Version, refusal, warnings
from dcsctl.hosts.protocol import UNCHANGED_EXIT, Host
from dcsctl.spec import InstallMethod
from dcsctl.state import PUBLIC
from dcsctl.targets.data_dir import raise_unless_ok
from dcsctl.targets.protocol import Installed
from dcsctl.targets.ssh.place import Place

# Debian starts a package's service on install; policy-rc.d answering 101 forbids it, so
# the package's own etcd (with its own data dir) never runs next to ours. Debian also
# enables its unit for the next boot: that is the host's init's doing, whatever runs
# dcsctl's member (service.manager process on a systemd host too), so the script asks the
# host whether systemd runs, not the spec's init system.
APT_SCRIPT = r"""
set -eu
export DEBIAN_FRONTEND=noninteractive
created=
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod 0755 /usr/sbin/policy-rc.d
  created=1
fi
trap '[ -z "$created" ] || rm -f /usr/sbin/policy-rc.d' EXIT
apt-get update -qq
apt-get install -y -qq --no-install-recommends "$@" >/dev/null
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  systemctl disable --now etcd.service >/dev/null 2>&1 || true
fi
"""

# Unpacks etcd, etcdctl and etcdutl from a release tarball into the bin dir; each binary
# is installed under a temporary name and renamed, so a running etcd is never half-written.
RELEASE_SCRIPT = r"""
set -eu
tarball=$1 bin_dir=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tar -xzf "$tarball" -C "$work" --strip-components=1 --wildcards '*/etcd' '*/etcdctl' '*/etcdutl'
mkdir -p "$bin_dir"
for tool in etcd etcdctl etcdutl; do
  install -m 0755 "$work/$tool" "$bin_dir/.$tool.dcsctl-new"
  mv -f "$bin_dir/.$tool.dcsctl-new" "$bin_dir/$tool"
done
"""

# etcd's version line (or nothing), whether the service user exists, the version of
# Debian's etcd-server package if one is installed, and the machine's architecture: one
# round trip.
INSTALL_PROBE = r"""
"$1" --version 2>/dev/null | head -n 1
echo --
id -u "$2" >/dev/null 2>&1 && echo user || echo no-user
echo --
dpkg-query -W -f='${Status} ${Version}\n' etcd-server 2>/dev/null \
  | sed -n 's/^install ok installed //p'
echo --
uname -m
"""

USER_SCRIPT = r"""
set -eu
user=$1 home=$2
id -u "$user" >/dev/null 2>&1 && exit 3
useradd --system --user-group --home-dir "$home" --no-create-home \
  --shell /usr/sbin/nologin --comment "etcd (dcsctl)" "$user"
"""


@dataclass(frozen=True)
class InstallState:
    version: Version | None
    user_exists: bool
    package: str = ""  # the version of Debian's etcd-server package, if installed
    machine: str = "x86_64"  # `uname -m`


def superseded_package(place: Place, state: InstallState) -> str:
    """A warning when Debian's etcd package lingers on a host that runs a release tarball
    (an upgrade from `install: apt`): two etcd binaries, and `etcdctl` on PATH is the old."""
    if place.spec.install.method is not InstallMethod.RELEASE or not state.package:
        return ""
    return (f"{place.member.name}: Debian's etcd-server {state.package} is still installed "
            f"(/usr/bin/etcd, /usr/bin/etcdctl) beside the release in "
            f"{place.spec.remote_bin_dir()}; the unit runs the release: remove the package "
            "with `apt-get remove etcd-server etcd-client` on that host")


def install_state(place: Place) -> InstallState:
    result = place.host.run(
        ["sh", "-c", INSTALL_PROBE, "sh", str(place.paths.etcd), place.spec.service.user])
    version_line, user, package, machine = [*result.stdout.split("--\n"), "", "", ""][:4]
    try:
        version: Version | None = Version.parse(version_line)
    except ValueError:
        version = None
    return InstallState(version, user.strip() == "user", package.strip(),
                        machine.strip() or "x86_64")


def release_version(settings: spec.InstallSettings) -> Version:
    named = settings.version or releases.named_version(settings.tarball or "")
    if not named:
        raise DcsctlError(
            f"cannot tell the etcd version of {settings.tarball}",
            fix="set install.version in the spec (e.g. 3.6.16)",
        )
    return Version.parse(named)


def wanted_version(cluster_spec: spec.ClusterSpec) -> Version | None:
    if cluster_spec.install.method is InstallMethod.RELEASE:
        return release_version(cluster_spec.install)
    return None


def release_tarball(settings: spec.InstallSettings, machine: str,
                    environ: Mapping[str, str], cache: Path) -> Path:
    """The release tarball for a host of this `uname -m` in the control machine's cache,
    checked against its sha256."""
    located = releases.locate(settings, releases.arch_of(machine), environ)
    return releases.fetch(located.source, located.sha256, cache, located.ca_file)


def _check(host: Host, argv: list[str]) -> None:
    """Run a long host command (installs), raising when it fails."""
    result = host.run(argv, timeout=900)
    raise_unless_ok(host, result.ok, f"`{' '.join(argv[:2])} …`", result.stderr)


def ensure_installed(place: Place, cache: Path, environ: Mapping[str, str],
                     state: InstallState) -> Installed:
    """etcd present (per install method) and the service user existing, from `state`
    (what the host had)."""
    host, member = place.host, place.member
    method = place.spec.install.method
    notes = []
    wanted = wanted_version(place.spec)
    if method is InstallMethod.APT and state.version is None:
        _check(host, ["sh", "-c", APT_SCRIPT, "sh", "etcd-server", "etcd-client"])
        notes.append("apt etcd-server etcd-client")
    elif method is InstallMethod.RELEASE and state.version != wanted:
        tarball = release_tarball(place.spec.install, state.machine, environ, cache)
        remote = place.paths.tarball_cache / tarball.name
        host.write(remote, tarball.read_bytes(), PUBLIC, "root:root")
        _check(host, ["sh", "-c", RELEASE_SCRIPT, "sh", str(remote), str(place.paths.etcd.parent)])
        notes.append(f"etcd {wanted} from {tarball.name}")
    final = install_state(place) if notes else state
    version = final.version
    if version is None:
        raise EnvironmentProblem(
            f"{member.name}: no working etcd at {place.paths.etcd}",
            fix="install etcd there, or choose install.method apt or release in the spec",
        )
    if (ruled_out := refusal(version)) is not None:
        raise EnvironmentProblem(f"{member.name}: etcd {version} {ruled_out.problem}",
                                 fix=f"install etcd {RECOMMENDED} or newer")
    user = place.spec.service.user
    if not state.user_exists:
        result = host.run(["sh", "-c", USER_SCRIPT, "sh", user, str(place.layout.data_dir)])
        if result.returncode != UNCHANGED_EXIT:
            raise_unless_ok(host, result.ok, f"creating user {user}", result.stderr)
            notes.append(f"user {user}")
        final = replace(final, user_exists=True)
    note = f"{member.name}: " + ", ".join(notes) if notes else ""
    found = [f"{member.name}: {warning}" for warning in warnings(version)]
    if superseded := superseded_package(place, final):
        found.append(superseded)
    return Installed(note, version, version != state.version, tuple(found))
