"""SSH clusters: etcd on every host — Debian's packages, an official release tarball
checked by sha256, or what is already there — and the service user it runs as.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dcsctl import releases, spec
from dcsctl.errors import DcsctlError, EnvironmentProblem
from dcsctl.etcd.versions import RECOMMENDED, Version, refusal, warnings
from dcsctl.hosts.protocol import UNCHANGED_EXIT
from dcsctl.ops.context import Cluster
from dcsctl.ops.on_hosts import check, raise_unless_ok
from dcsctl.spec import InstallMethod
from dcsctl.state import PUBLIC

# Debian starts a package's service on install; policy-rc.d answering 101 forbids it, so
# the package's own etcd (with its own data dir) never runs next to ours.
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

# etcd's version line (or nothing), whether the service user exists, and the version of
# Debian's etcd-server package if one is installed: one round trip.
INSTALL_PROBE = r"""
"$1" --version 2>/dev/null | head -n 1
echo --
id -u "$2" >/dev/null 2>&1 && echo user || echo no-user
echo --
dpkg-query -W -f='${Status} ${Version}\n' etcd-server 2>/dev/null \
  | sed -n 's/^install ok installed //p'
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


def superseded_package(cluster: Cluster, member: spec.Member, state: InstallState) -> str:
    """A warning when Debian's etcd package lingers on a host that runs a release tarball
    (an upgrade from `install: apt`): two etcd binaries, and `etcdctl` on PATH is the old."""
    if cluster.spec.install.method is not InstallMethod.RELEASE or not state.package:
        return ""
    return (f"{member.name}: Debian's etcd-server {state.package} is still installed "
            f"(/usr/bin/etcd, /usr/bin/etcdctl) beside the release in "
            f"{cluster.spec.remote_bin_dir()}; the unit runs the release: remove the package "
            "with `apt-get remove etcd-server etcd-client` on that host")


def install_state(cluster: Cluster, member: spec.Member) -> InstallState:
    etcd = cluster.host_paths(member.name).etcd
    result = cluster.host_of(member.name).run(
        ["sh", "-c", INSTALL_PROBE, "sh", str(etcd), cluster.spec.service.user])
    version_line, _, rest = result.stdout.partition("--\n")
    user, _, package = rest.partition("--\n")
    try:
        version: Version | None = Version.parse(version_line)
    except ValueError:
        version = None
    return InstallState(version, user.strip() == "user", package.strip())


@dataclass(frozen=True)
class InstallOutcome:
    note: str
    version: Version
    replaced: bool  # etcd's binary changed: a running member must restart to use it
    state: InstallState  # the host after the install


def release_version(settings: spec.InstallSettings) -> Version:
    named = settings.version or releases.named_version(settings.tarball or "")
    if not named:
        raise DcsctlError(
            f"cannot tell the etcd version of {settings.tarball}",
            fix="set install.version in the spec (e.g. 3.6.16)",
        )
    return Version.parse(named)


def wanted_version(cluster: Cluster) -> Version | None:
    if cluster.spec.install.method is InstallMethod.RELEASE:
        return release_version(cluster.spec.install)
    return None


def release_tarball(cluster: Cluster) -> Path:
    """The release tarball in the control machine's cache, checked against its sha256."""
    settings = cluster.spec.install
    assert settings.tarball is not None and settings.sha256 is not None  # spec validated
    return releases.fetch(settings.tarball, settings.sha256,
                          cluster.context.home / ".cache" / "releases")


def ensure_installed(cluster: Cluster, member: spec.Member,
                     state: InstallState | None = None) -> InstallOutcome:
    """etcd present (per install method) and the service user existing."""
    host = cluster.host_of(member.name)
    method = cluster.spec.install.method
    notes = []
    state = state or install_state(cluster, member)
    wanted = wanted_version(cluster)
    if method is InstallMethod.APT and state.version is None:
        check(host, ["sh", "-c", APT_SCRIPT, "sh", "etcd-server", "etcd-client"])
        notes.append("apt etcd-server etcd-client")
    elif method is InstallMethod.RELEASE and state.version != wanted:
        tarball = release_tarball(cluster)
        remote = cluster.host_paths(member.name).tarball_cache / tarball.name
        host.write(remote, tarball.read_bytes(), PUBLIC, "root:root")
        bin_dir = cluster.host_paths(member.name).etcd.parent
        check(host, ["sh", "-c", RELEASE_SCRIPT, "sh", str(remote), str(bin_dir)])
        notes.append(f"etcd {wanted} from {tarball.name}")
    final = install_state(cluster, member) if notes else state
    version = final.version
    if version is None:
        raise EnvironmentProblem(
            f"{member.name}: no working etcd at {cluster.host_paths(member.name).etcd}",
            fix="install etcd there, or choose install.method apt or release in the spec",
        )
    if (ruled_out := refusal(version)) is not None:
        raise EnvironmentProblem(f"{member.name}: etcd {version} {ruled_out.problem}",
                                 fix=f"install etcd {RECOMMENDED} or newer")
    user = cluster.spec.service.user
    if not state.user_exists:
        result = host.run(["sh", "-c", USER_SCRIPT, "sh", user,
                           str(cluster.layout(member.name).data_dir)])
        if result.returncode != UNCHANGED_EXIT:
            raise_unless_ok(host, result.ok, f"creating user {user}", result.stderr)
            notes.append(f"user {user}")
    note = f"{member.name}: " + ", ".join(notes) if notes else ""
    return InstallOutcome(note, version, version != state.version, final)


def version_warnings(versions: dict[str, Version]) -> list[str]:
    return [f"{name}: {warning}" for name, version in sorted(versions.items())
            for warning in warnings(version)]
