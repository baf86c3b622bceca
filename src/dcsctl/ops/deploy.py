"""SSH clusters: what each member host must hold — etcd installed, a service user,
directories, configuration, certificates, a unit — observed before it is changed, and
planned (`dcsctl up --plan`) without touching anything.

What a host receives is built on the control machine as bytes (`DesiredFile`) and
written by the Host adapter atomically, with owner and mode set before the rename. The
CA key is never among them.
"""

from __future__ import annotations

import concurrent.futures
import difflib
import hashlib
import re
import shutil
import tarfile
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePath
from typing import TypeVar

from dcsctl import render, spec
from dcsctl.errors import DcsctlError, EnvironmentProblem
from dcsctl.etcd.versions import RECOMMENDED, Severity, Version, advisories
from dcsctl.hosts.protocol import Host
from dcsctl.ops import certs
from dcsctl.ops.context import Cluster
from dcsctl.pki import jwt_sign_method
from dcsctl.spec import InstallMethod, ServiceManager
from dcsctl.state import PRIVATE, PUBLIC, ClusterRecord

T = TypeVar("T")
CERT_DIR_MODE = 0o750
DATA_DIR_MODE = 0o700

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

# etcd's version line (or nothing), then whether the service user exists: one round trip.
INSTALL_PROBE = r"""
"$1" --version 2>/dev/null | head -n 1
echo --
id -u "$2" >/dev/null 2>&1 && echo user || echo no-user
"""

USER_SCRIPT = r"""
set -eu
user=$1 home=$2
id -u "$user" >/dev/null 2>&1 && exit 3
useradd --system --user-group --home-dir "$home" --no-create-home \
  --shell /usr/sbin/nologin --comment "etcd (dcsctl)" "$user"
"""

DIR_SCRIPT = r"""
set -eu
path=$1 mode=$2 owner=$3
if [ -d "$path" ] && [ "$(stat -c '%a %U:%G' "$path")" = "$mode $owner" ]; then exit 3; fi
mkdir -p "$path"
chown "$owner" "$path"
chmod "$mode" "$path"
"""

LINK_SCRIPT = r"""
set -eu
[ "$(readlink "$2" 2>/dev/null)" = "$1" ] && exit 3
mkdir -p "$(dirname "$2")"
ln -sfn "$1" "$2"
"""
UNCHANGED_EXIT = 3

# Rebuilds the member's data dir from a snapshot pushed next to it. The old data dir is
# kept aside (*.pre-restore) until the restored cluster is verified; a half-finished
# earlier attempt is simply redone.
RESTORE_SCRIPT = r"""
set -eu
etcdutl=$1 snapshot=$2 data=$3 owner=$4
shift 4
old="$data.pre-restore"
temp="$data.restoring"
if [ -e "$data/member" ] && [ ! -e "$old" ]; then
  mv "$data" "$old"
else
  rm -rf "$data"
fi
rm -rf "$temp"
"$etcdutl" snapshot restore "$snapshot" --data-dir "$temp" "$@" >/dev/null
chown -R "$owner" "$temp"
chmod 0700 "$temp"
mv "$temp" "$data"
rm -f "$snapshot"
"""


def in_parallel(members: Sequence[spec.Member], work: Callable[[spec.Member], T]) -> list[T]:
    """Every host at once; the first failure is raised after all have finished."""
    if not members:
        return []
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(members)) as pool:
        futures = [pool.submit(work, m) for m in members]
        concurrent.futures.wait(futures)
    return [f.result() for f in futures]


def member_settings(cluster: Cluster, member: spec.Member, record: ClusterRecord) -> bytes:
    """The member's etcd environment file, for whichever host runs it."""
    state = render.ClusterState.EXISTING if record.bootstrapped else render.ClusterState.NEW
    settings = render.etcd_settings(
        cluster.spec,
        member,
        cluster.layout(member.name),
        state=state,
        token=record.token,
        jwt_sign_method=jwt_sign_method(cluster.spec.tls.key_type),
    )
    header = f"etcd member {member.name} of cluster {cluster.spec.name}; written by dcsctl"
    return render.env_file(settings, header=header)


# -- what a host must hold --

@dataclass(frozen=True)
class DesiredFile:
    path: PurePath
    content: bytes | None  # None: not issued yet (a plan before the first `up`)
    mode: int
    owner: str | None
    secret: bool = False  # a plan never shows its content


@dataclass(frozen=True)
class DesiredDir:
    path: PurePath
    mode: int
    owner: str


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def desired_dirs(cluster: Cluster, member: spec.Member) -> list[DesiredDir]:
    user = cluster.spec.service.user
    layout = cluster.layout(member.name)
    return [
        DesiredDir(layout.ca_cert.parent, CERT_DIR_MODE, f"root:{user}"),
        DesiredDir(layout.data_dir, DATA_DIR_MODE, f"{user}:{user}"),
    ]


def desired_files(cluster: Cluster, member: spec.Member, settings: bytes) -> list[DesiredFile]:
    """Everything dcsctl writes on the member's host, built on the control machine."""
    user = cluster.spec.service.user
    staged = cluster.dir.layout(member.name)  # where the control machine issued them
    on_host = cluster.layout(member.name)
    private = f"{user}:{user}"
    public = "root:root"
    files = [
        DesiredFile(on_host.config, settings, PUBLIC, public),
        DesiredFile(on_host.ca_cert, _read(Path(staged.ca_cert)), PUBLIC, public),
        DesiredFile(on_host.cert, _read(Path(staged.cert)), PUBLIC, public),
        DesiredFile(on_host.key, _read(Path(staged.key)), PRIVATE, private, secret=True),
        DesiredFile(on_host.jwt_public, _read(Path(staged.jwt_public)), PUBLIC, public),
        DesiredFile(on_host.jwt_private, _read(Path(staged.jwt_private)), PRIVATE, private,
                    secret=True),
    ]
    if cluster.spec.service.manager is ServiceManager.SYSTEMD:
        paths = cluster.host_paths(member.name)
        unit = render.systemd_unit(cluster.spec, on_host, paths.etcd)
        files.append(DesiredFile(paths.unit, unit, PUBLIC, public))
    return files


def _hosts_file(cluster: Cluster, host: Host, member: spec.Member) -> DesiredFile | None:
    if not cluster.spec.manage_etc_hosts:
        return None
    path = cluster.host_paths(member.name).hosts_file
    current = (host.read(path) or b"").decode()
    wanted = render.with_hosts_block(current, cluster.spec.name, render.hosts_block(cluster.spec))
    return DesiredFile(path, wanted.encode(), PUBLIC, "root:root")


# -- install --

@dataclass(frozen=True)
class Installed:
    version: Version | None
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class InstallState:
    version: Version | None
    user_exists: bool


def install_state(cluster: Cluster, member: spec.Member) -> InstallState:
    etcd = cluster.host_paths(member.name).etcd
    result = cluster.host_of(member.name).run(
        ["sh", "-c", INSTALL_PROBE, "sh", str(etcd), cluster.spec.service.user])
    version_line, _, user = result.stdout.partition("--\n")
    try:
        version: Version | None = Version.parse(version_line)
    except ValueError:
        version = None
    return InstallState(version, user.strip() == "user")


@dataclass(frozen=True)
class InstallOutcome:
    note: str
    version: Version
    replaced: bool  # etcd's binary changed: a running member must restart to use it


def release_version(settings: spec.InstallSettings) -> Version:
    if settings.version:
        return Version.parse(settings.version)
    match = re.search(r"etcd-v(\d+\.\d+\.\d+)", settings.tarball or "")
    if not match:
        raise DcsctlError(
            f"cannot tell the etcd version of {settings.tarball}",
            fix="set install.version in the spec (e.g. 3.5.30)",
        )
    return Version.parse(match.group(1))


def wanted_version(cluster: Cluster) -> Version | None:
    if cluster.spec.install.method is InstallMethod.RELEASE:
        return release_version(cluster.spec.install)
    return None


def release_tarball(cluster: Cluster) -> Path:
    """The release tarball in the control machine's cache, checked against its sha256.

    Downloaded once here, pushed to the hosts over SSH: the hosts need no internet.
    """
    settings = cluster.spec.install
    assert settings.tarball is not None and settings.sha256 is not None  # spec validated
    source = settings.tarball
    cache = cluster.context.home / ".cache" / "releases"
    cache.mkdir(parents=True, exist_ok=True)
    cached = cache / f"{settings.sha256}-{Path(source.split('?')[0]).name}"
    if not cached.exists():
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
        if digest != settings.sha256:
            partial.unlink()
            raise EnvironmentProblem(
                f"{source} has sha256 {digest}, not the {settings.sha256} the spec pins",
                fix="check the tarball against etcd's SHA256SUMS and correct install.sha256 "
                "or install.tarball",
            )
        try:
            with tarfile.open(partial) as archive:
                names = {Path(n).name for n in archive.getnames()}
        except (tarfile.TarError, EOFError):
            names = set()
        if not {"etcd", "etcdctl", "etcdutl"} <= names:
            partial.unlink()
            raise EnvironmentProblem(f"{source} holds no etcd, etcdctl and etcdutl",
                                     fix="point install.tarball at an etcd release tarball")
        partial.rename(cached)
    return cached


def ensure_installed(cluster: Cluster, member: spec.Member,
                     state: InstallState | None = None) -> InstallOutcome:
    """etcd present (per install method) and the service user existing."""
    host = cluster.host_of(member.name)
    method = cluster.spec.install.method
    notes = []
    state = state or install_state(cluster, member)
    wanted = wanted_version(cluster)
    if method is InstallMethod.APT and state.version is None:
        _check(host, ["sh", "-c", APT_SCRIPT, "sh", "etcd-server", "etcd-client"])
        notes.append("apt etcd-server etcd-client")
    elif method is InstallMethod.RELEASE and state.version != wanted:
        tarball = release_tarball(cluster)
        remote = cluster.host_paths(member.name).tarball_cache / tarball.name
        host.write(remote, tarball.read_bytes(), PUBLIC, "root:root")
        bin_dir = cluster.host_paths(member.name).etcd.parent
        _check(host, ["sh", "-c", RELEASE_SCRIPT, "sh", str(remote), str(bin_dir)])
        notes.append(f"etcd {wanted} from {tarball.name}")
    version = install_state(cluster, member).version if notes else state.version
    if version is None:
        raise EnvironmentProblem(
            f"{member.name}: no working etcd at {cluster.host_paths(member.name).etcd}",
            fix="install etcd there, or choose install.method apt or release in the spec",
        )
    for advisory in advisories(version):
        if advisory.severity is Severity.REFUSE:
            raise EnvironmentProblem(f"{member.name}: etcd {version} {advisory.problem}",
                                     fix=f"install etcd {RECOMMENDED} or newer")
    user = cluster.spec.service.user
    if not state.user_exists:
        result = host.run(["sh", "-c", USER_SCRIPT, "sh", user,
                           str(cluster.layout(member.name).data_dir)])
        if result.returncode != UNCHANGED_EXIT:
            _raise_unless_ok(host, result.ok, f"creating user {user}", result.stderr)
            notes.append(f"user {user}")
    note = f"{member.name}: " + ", ".join(notes) if notes else ""
    return InstallOutcome(note, version, version != state.version)


def version_warnings(versions: dict[str, Version]) -> list[str]:
    found = []
    for name, version in sorted(versions.items()):
        found += [f"{name}: etcd {version} {a.problem}; upgrade to {RECOMMENDED}"
                  for a in advisories(version)]
    return found


# -- configuration --

# One line per path, in order: "F <sha256> <mode> <owner>", "D <mode> <owner>",
# "L <target>" or "-" (missing). Private keys are hashed on the host, never read back.
OBSERVE_SCRIPT = r"""
for path in "$@"; do
  if [ -L "$path" ]; then
    printf 'L %s\n' "$(readlink "$path")"
  elif [ -f "$path" ]; then
    printf 'F %s %s\n' "$(sha256sum < "$path" | cut -d' ' -f1)" "$(stat -c '%a %U:%G' "$path")"
  elif [ -d "$path" ]; then
    printf 'D %s\n' "$(stat -c '%a %U:%G' "$path")"
  else
    echo -
  fi
done
"""


@dataclass(frozen=True)
class Observed:
    kind: str  # F file, D directory, L link, - missing
    fields: tuple[str, ...]

    def is_file(self, wanted: DesiredFile) -> bool:
        assert wanted.content is not None
        return self.kind == "F" and self.fields == (
            hashlib.sha256(wanted.content).hexdigest(), format(wanted.mode, "o"),
            wanted.owner or self.fields[2])

    def is_dir(self, wanted: DesiredDir) -> bool:
        return self.kind == "D" and self.fields == (format(wanted.mode, "o"), wanted.owner)

    def links_to(self, target: PurePath) -> bool:
        return self.kind == "L" and self.fields == (str(target),)


def observe(host: Host, paths: Sequence[PurePath]) -> list[Observed]:
    """What is at each path on the host, in one round trip."""
    result = host.run(["sh", "-c", OBSERVE_SCRIPT, "sh", *map(str, paths)])
    lines = result.stdout.splitlines()
    if not result.ok or len(lines) != len(paths):
        raise DcsctlError(f"{host.name}: could not inspect its files ({result.stderr.strip()})",
                          fix="check that the SSH user can run sha256sum and stat there")
    found = []
    for line in lines:
        kind, _, rest = line.partition(" ")
        found.append(Observed(kind, tuple(rest.split(" ", 2)) if kind != "L" else (rest,)))
    return found


@dataclass(frozen=True)
class Pushed:
    changed: tuple[str, ...]
    previous_config: bytes | None  # the replaced configuration, when it changed


def push(cluster: Cluster, member: spec.Member, settings: bytes) -> Pushed:
    """Bring the host's directories, files and links to the spec.

    One round trip observes everything; only what differs is written, so a re-run on an
    unchanged host costs that one command.
    """
    host = cluster.host_of(member.name)
    dirs = desired_dirs(cluster, member)
    files = desired_files(cluster, member, settings)
    if (hosts_file := _hosts_file(cluster, host, member)) is not None:
        files.append(hosts_file)
    link = cluster.host_paths(member.name).env_link
    config = cluster.layout(member.name).config
    seen = observe(host, [*(d.path for d in dirs), *(f.path for f in files),
                          *([link] if link else [])])
    changed: list[str] = []
    for directory, now in zip(dirs, seen, strict=False):
        if not now.is_dir(directory):
            argv = ["sh", "-c", DIR_SCRIPT, "sh", str(directory.path),
                    format(directory.mode, "o"), directory.owner]
            result = host.run(argv)
            _raise_unless_ok(host, result.ok or result.returncode == UNCHANGED_EXIT,
                             f"creating {directory.path}", result.stderr)
            changed.append(str(directory.path))
    previous_config = None
    for wanted, now in zip(files, seen[len(dirs):], strict=False):
        if wanted.content is None:
            raise DcsctlError(f"{wanted.path} has not been issued",
                              fix="run `dcsctl up` (its pki phase issues it)")
        if now.is_file(wanted):
            continue
        if wanted.path == config and now.kind == "F":
            previous_config = host.read(config)
        host.write(wanted.path, wanted.content, wanted.mode, wanted.owner)
        changed.append(str(wanted.path))
    if link is not None and not seen[-1].links_to(config):
        result = host.run(["sh", "-c", LINK_SCRIPT, "sh", str(config), str(link)])
        _raise_unless_ok(host, result.ok or result.returncode == UNCHANGED_EXIT,
                         f"linking {link}", result.stderr)
        changed.append(str(link))
    return Pushed(tuple(changed), previous_config)


def _raise_unless_ok(host: Host, ok: bool, what: str, stderr: str) -> None:
    if not ok:
        raise DcsctlError(f"{host.name}: {what} failed ({stderr.strip() or 'no output'})",
                          fix="correct the cause on that host, then run `dcsctl up` again "
                          "(it resumes)")


def _check(host: Host, argv: list[str]) -> None:
    result = host.run(argv, timeout=900)
    _raise_unless_ok(host, result.ok, f"`{' '.join(argv[:2])} …`", result.stderr)


def sync_tls(cluster: Cluster, member: spec.Member) -> list[str]:
    """Copy the member's certificates as issued on the control machine to its host.

    In the lab the control machine's copy is the one etcd reads: nothing to do.
    """
    if not cluster.remote:
        return []
    layout = cluster.layout(member.name)
    tls = {layout.ca_cert, layout.cert, layout.key, layout.jwt_private, layout.jwt_public}
    host = cluster.host_of(member.name)
    wanted = [f for f in desired_files(cluster, member, b"")
              if f.path in tls and f.content is not None]
    changed = []
    for file, now in zip(wanted, observe(host, [f.path for f in wanted]), strict=True):
        if not now.is_file(file):
            assert file.content is not None
            host.write(file.path, file.content, file.mode, file.owner)
            changed.append(str(file.path))
    return changed


def wipe_data_dir(cluster: Cluster, member: spec.Member) -> None:
    """Empty the member's data dir (a member that must join afresh)."""
    data = cluster.layout(member.name).data_dir
    if not cluster.remote:
        shutil.rmtree(data, ignore_errors=True)
        return
    host = cluster.host_of(member.name)
    result = host.run(["rm", "-rf", "--", str(data)])
    _raise_unless_ok(host, result.ok, f"removing {data}", result.stderr)
    user = cluster.spec.service.user
    result = host.run(["sh", "-c", DIR_SCRIPT, "sh", str(data), format(DATA_DIR_MODE, "o"),
                       f"{user}:{user}"])
    _raise_unless_ok(host, result.ok or result.returncode == UNCHANGED_EXIT,
                     f"creating {data}", result.stderr)


def data_dir_holds_data(cluster: Cluster, member: spec.Member) -> bool:
    data = cluster.layout(member.name).data_dir
    if not cluster.remote:
        return Path(data).exists()
    return cluster.host_of(member.name).run(["test", "-e", str(data / "member")]).ok


def restore_data_dir(cluster: Cluster, member: spec.Member, snapshot: Path,
                     options: Sequence[str]) -> None:
    """`etcdutl snapshot restore` on the member's host, with the snapshot pushed there."""
    host = cluster.host_of(member.name)
    layout = cluster.layout(member.name)
    remote_snapshot = layout.data_dir.parent / ".dcsctl-restore.db"
    host.write(remote_snapshot, snapshot.read_bytes(), PRIVATE, "root:root")
    user = cluster.spec.service.user
    etcdutl = cluster.host_paths(member.name).etcd.parent / "etcdutl"
    result = host.run(["sh", "-c", RESTORE_SCRIPT, "sh", str(etcdutl), str(remote_snapshot),
                       str(layout.data_dir), f"{user}:{user}", *options], timeout=600)
    if not result.ok:
        raise DcsctlError(
            f"{member.name}: etcdutl could not restore ({result.stderr.strip()[-400:]})",
            fix="correct the cause and run the same `dcsctl restore` again (it resumes)",
        )


def drop_pre_restore(cluster: Cluster, member: spec.Member) -> bool:
    """Remove the data dir kept aside by a restore; True if there was one."""
    old = str(cluster.layout(member.name).data_dir) + ".pre-restore"
    host = cluster.host_of(member.name)
    if not host.run(["test", "-e", old]).ok:
        return False
    result = host.run(["rm", "-rf", "--", old])
    _raise_unless_ok(host, result.ok, f"removing {old}", result.stderr)
    return True


def remove(cluster: Cluster, member: spec.Member) -> None:
    """Take back what `push` put on the host (destroy): keys, config, unit, data."""
    layout = cluster.layout(member.name)
    paths = cluster.host_paths(member.name)
    doomed = [layout.key, layout.jwt_private, layout.cert, layout.jwt_public, layout.ca_cert,
              layout.config, paths.pidfile]
    if paths.env_link is not None:
        doomed.append(paths.env_link)
    if cluster.spec.service.manager is ServiceManager.SYSTEMD:
        cluster.host_of(member.name).run(["systemctl", "disable", "etcd.service"])
        doomed.append(paths.unit)
    host = cluster.host_of(member.name)
    result = host.run(["rm", "-rf", "--", *map(str, doomed), str(layout.data_dir)])
    _raise_unless_ok(host, result.ok, "removing the member's files", result.stderr)
    if cluster.spec.manage_etc_hosts:
        current = host.read(paths.hosts_file)
        if current is not None:
            kept = render.without_hosts_block(current.decode(), cluster.spec.name)
            host.write(paths.hosts_file, kept.encode(), PUBLIC, "root:root")


# -- plan --

@dataclass(frozen=True)
class FileChange:
    path: str
    action: str  # create | update | unchanged
    diff: tuple[str, ...] = ()


@dataclass(frozen=True)
class HostPlan:
    member: str
    destination: str
    install: str
    files: tuple[FileChange, ...]
    service: str

    @property
    def changes(self) -> bool:
        return (not self.install.startswith("=") or not self.service.startswith("=")
                or any(f.action != "unchanged" for f in self.files))


def _file_change(host: Host, wanted: DesiredFile, now: Observed) -> FileChange:
    path = str(wanted.path)
    if wanted.content is None:
        return FileChange(path, "create" if now.kind == "-" else "update",
                          ("(issued by the pki phase)",))
    if now.kind == "-":
        return FileChange(path, "create",
                          ("(secret: content not shown)",) if wanted.secret else ())
    if now.is_file(wanted):
        return FileChange(path, "unchanged")
    if wanted.secret:  # never read back: the hash already told it differs
        return FileChange(path, "update", ("(secret: content not shown)",))
    current = host.read(wanted.path) or b""
    if current == wanted.content:
        return FileChange(path, "update", (f"mode/owner -> {format(wanted.mode, 'o')} "
                                           f"{wanted.owner}",))
    diff = difflib.unified_diff(
        current.decode(errors="replace").splitlines(),
        wanted.content.decode(errors="replace").splitlines(),
        "on host", "dcsctl", lineterm="", n=1,
    )
    return FileChange(path, "update", tuple(diff))


def plan_host(cluster: Cluster, member: spec.Member, settings: bytes, *,
              reissued: bool) -> HostPlan:
    host = cluster.ssh_host(member.name)
    version = install_state(cluster, member).version
    wanted = wanted_version(cluster)
    method = cluster.spec.install.method
    if version is None or (method is InstallMethod.RELEASE and version != wanted):
        install = (f"+ install etcd via {method}" + (f" ({wanted})" if wanted else "")
                   + (f", replacing {version}" if version else ""))
    else:
        install = f"= etcd {version} present"
    desired = desired_files(cluster, member, settings)
    if reissued:  # the pki phase will issue new ones: their content is not known yet
        layout = cluster.layout(member.name)
        desired = [replace(f, content=None) if f.path in (layout.cert, layout.key) else f
                   for f in desired]
    if (hosts_file := _hosts_file(cluster, host, member)) is not None:
        desired.append(hosts_file)
    seen = observe(host, [f.path for f in desired])
    files = [_file_change(host, f, now) for f, now in zip(desired, seen, strict=True)]
    service = cluster.service(member.name)
    active = version is not None and service.is_active()
    reconfigured = any(f.action == "update" for f in files[:1]) or (
        cluster.spec.service.manager is ServiceManager.SYSTEMD and files[6].action == "update")
    if not active:
        service_note = "+ start etcd"
    elif reconfigured:
        service_note = "~ restart etcd (configuration changed)"
    else:
        service_note = "= etcd running"
    return HostPlan(member.name, str(host.destination), install, tuple(files), service_note)


@dataclass(frozen=True)
class Plan:
    cluster: str
    pki: tuple[str, ...]  # what the pki phase would issue
    hosts: tuple[HostPlan, ...]

    @property
    def changes(self) -> bool:
        return bool(self.pki) or any(h.changes for h in self.hosts)


def plan(cluster: Cluster) -> Plan:
    """What `up` would change on every host; reads, never writes (not even the state dir)."""
    cluster.require_remote("up --plan")
    name = cluster.spec.name
    record = (cluster.dir.record() if cluster.dir.exists()
              else ClusterRecord(name=name, token=f"{name}-new", members=()))
    missing = certs.plan_pki(cluster, cluster.context.clock()).missing
    hosts = in_parallel(list(cluster.spec.members), lambda m: plan_host(
        cluster, m, member_settings(cluster, m, record), reissued=m.name in missing))
    return Plan(name, tuple(missing), tuple(hosts))
