"""SSH clusters: what each member host must hold — directories, configuration,
certificates, a unit, a managed /etc/hosts block — observed in one round trip and changed
only where it differs; and taken back again (destroy, member remove, restore).

What a host receives is built on the control machine as bytes (`DesiredFile`) and
written by the Host adapter atomically, with owner and mode set before the rename. The
CA key is never among them.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath

from dcsctl import render, spec
from dcsctl.errors import DcsctlError, EnvironmentProblem
from dcsctl.hosts.protocol import UNCHANGED_EXIT, Host
from dcsctl.ops.context import Cluster
from dcsctl.ops.on_hosts import raise_unless_ok
from dcsctl.pki import jwt_sign_method
from dcsctl.spec import InstallMethod, ServiceManager
from dcsctl.state import PRIVATE, PUBLIC, ClusterRecord

CERT_DIR_MODE = 0o750
DATA_DIR_MODE = 0o700
# A restore keeps the old data dir aside until the restored cluster is verified.
PRE_RESTORE_SUFFIX = ".pre-restore"
RESTORING_SUFFIX = ".restoring"

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

# Rebuilds the member's data dir from a snapshot pushed next to it. The old data dir is
# kept aside (*.pre-restore) until the restored cluster is verified; a half-finished
# earlier attempt is simply redone.
RESTORE_SCRIPT = r"""
set -eu
etcdutl=$1 snapshot=$2 data=$3 old=$4 temp=$5 owner=$6
shift 6
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



def member_settings(cluster: Cluster, member: spec.Member, record: ClusterRecord,
                    extra: Mapping[str, str] | None = None) -> bytes:
    """The member's etcd environment file, for whichever host runs it (`extra`: flags for
    one special start, such as an upgrade's)."""
    state = render.ClusterState.EXISTING if record.bootstrapped else render.ClusterState.NEW
    settings = render.etcd_settings(
        cluster.spec,
        member,
        cluster.layout(member.name),
        version=cluster.etcd_version(member.name),
        state=state,
        token=record.token,
        jwt_sign_method=jwt_sign_method(cluster.spec.tls.key_type),
    ) | render.revocation_settings(cluster.layout(member.name)) | dict(extra or {})
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
    issued = cluster.host.read
    private = f"{user}:{user}"
    public = "root:root"
    files = [
        DesiredFile(on_host.config, settings, PUBLIC, public),
        DesiredFile(on_host.ca_cert, issued(staged.ca_cert), PUBLIC, public),
        DesiredFile(on_host.crl, issued(staged.crl), PUBLIC, public),
        DesiredFile(on_host.cert, issued(staged.cert), PUBLIC, public),
        DesiredFile(on_host.key, issued(staged.key), PRIVATE, private, secret=True),
        DesiredFile(on_host.jwt_public, issued(staged.jwt_public), PUBLIC, public),
        DesiredFile(on_host.jwt_private, issued(staged.jwt_private), PRIVATE, private,
                    secret=True),
    ]
    if cluster.spec.service.manager is ServiceManager.SYSTEMD:
        paths = cluster.host_paths(member.name)
        unit = render.systemd_unit(cluster.spec, on_host, paths.etcd)
        files.append(DesiredFile(paths.unit, unit, PUBLIC, public))
    return files


def hosts_file(cluster: Cluster, host: Host, member: spec.Member) -> DesiredFile | None:
    if not cluster.spec.manage_etc_hosts:
        return None
    path = cluster.host_paths(member.name).hosts_file
    current = (host.read(path) or b"").decode()
    wanted = render.with_hosts_block(current, cluster.spec.name, render.hosts_block(cluster.spec))
    return DesiredFile(path, wanted.encode(), PUBLIC, "root:root")


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


def _write_differing(
    host: Host, files: Sequence[DesiredFile], seen: Sequence[Observed], *,
    keep_previous: PurePath | None = None,
) -> tuple[list[str], bytes | None]:
    """Write each file whose observation differs from what is wanted: the paths written,
    and what `keep_previous` held before it was replaced."""
    written: list[str] = []
    previous = None
    for wanted, now in zip(files, seen, strict=True):
        if wanted.content is None:
            raise DcsctlError(f"{wanted.path} has not been issued",
                              fix="run `dcsctl up` (its pki phase issues it)")
        if now.is_file(wanted):
            continue
        if wanted.path == keep_previous and now.kind == "F":
            previous = host.read(wanted.path)
        host.write(wanted.path, wanted.content, wanted.mode, wanted.owner)
        written.append(str(wanted.path))
    return written, previous


def founding_marker(cluster: Cluster, member: spec.Member) -> PurePath:
    """Beside the data dir: the token of the cluster whose bootstrap created its data."""
    return PurePath(f"{cluster.layout(member.name).data_dir}.dcsctl-token")


def push(cluster: Cluster, member: spec.Member, settings: bytes, *,
         founding_token: str | None = None) -> Pushed:
    """Bring the host's directories, files and links to the spec.

    One round trip observes everything; only what differs is written, so a re-run on an
    unchanged host costs that one command. `founding_token` (a cluster not bootstrapped
    yet) also guards the data dir: data that an earlier bootstrap of *this* cluster did
    not create — the guide's cluster, Debian's package instance — would win over the new
    cluster's settings, since etcd ignores initial-cluster once a data dir holds a member.
    """
    host = cluster.host_of(member.name)
    dirs = desired_dirs(cluster, member)
    files = desired_files(cluster, member, settings)
    if (etc_hosts := hosts_file(cluster, host, member)) is not None:
        files.append(etc_hosts)
    marker = None
    if founding_token is not None:
        marker = DesiredFile(founding_marker(cluster, member), founding_token.encode(),
                             PUBLIC, "root:root")
        files.append(marker)
    link = cluster.host_paths(member.name).env_link
    config = cluster.layout(member.name).config
    existing_data = cluster.layout(member.name).data_dir / "member"
    seen = observe(host, [*(d.path for d in dirs), *(f.path for f in files),
                          link or config, existing_data])
    seen_dirs, seen_files = seen[:len(dirs)], seen[len(dirs):len(dirs) + len(files)]
    seen_link, seen_data = seen[-2], seen[-1]
    if marker is not None and seen_data.kind == "D" and not seen_files[-1].is_file(marker):
        data_dir = cluster.layout(member.name).data_dir
        raise EnvironmentProblem(
            f"{member.name}: {data_dir} on {host.name} holds etcd data this new cluster did "
            "not create (the guide's cluster, or Debian's package instance?); etcd would "
            "start that old member instead of joining the new cluster",
            fix=f"move it away on that host (e.g. `mv {data_dir} {data_dir}.old`) or set "
            "paths.data_dir in the spec, then run `dcsctl up` again",
        )
    changed: list[str] = []
    for directory, now in zip(dirs, seen_dirs, strict=True):
        if not now.is_dir(directory):
            argv = ["sh", "-c", DIR_SCRIPT, "sh", str(directory.path),
                    format(directory.mode, "o"), directory.owner]
            result = host.run(argv)
            raise_unless_ok(host, result.ok or result.returncode == UNCHANGED_EXIT,
                            f"creating {directory.path}", result.stderr)
            changed.append(str(directory.path))
    written, previous_config = _write_differing(host, files, seen_files, keep_previous=config)
    changed += written
    if link is not None and not seen_link.links_to(config):
        result = host.run(["sh", "-c", LINK_SCRIPT, "sh", str(config), str(link)])
        raise_unless_ok(host, result.ok or result.returncode == UNCHANGED_EXIT,
                        f"linking {link}", result.stderr)
        changed.append(str(link))
    return Pushed(tuple(changed), previous_config)


def sync_tls(cluster: Cluster, member: spec.Member) -> list[str]:
    """Copy the member's certificates as issued on the control machine to its host.

    In the lab the control machine's copy is the one etcd reads: nothing to do.
    """
    if not cluster.remote:
        return []
    layout = cluster.layout(member.name)
    tls = {layout.ca_cert, layout.crl, layout.cert, layout.key, layout.jwt_private,
           layout.jwt_public}
    host = cluster.host_of(member.name)
    wanted = [f for f in desired_files(cluster, member, b"")
              if f.path in tls and f.content is not None]
    return _write_differing(host, wanted, observe(host, [f.path for f in wanted]))[0]


def wipe_data_dir(cluster: Cluster, member: spec.Member) -> None:
    """Empty the member's data dir (a member that must join afresh)."""
    data = cluster.layout(member.name).data_dir
    if not cluster.remote:
        shutil.rmtree(data, ignore_errors=True)
        return
    host = cluster.host_of(member.name)
    result = host.run(["rm", "-rf", "--", str(data)])
    raise_unless_ok(host, result.ok, f"removing {data}", result.stderr)
    user = cluster.spec.service.user
    result = host.run(["sh", "-c", DIR_SCRIPT, "sh", str(data), format(DATA_DIR_MODE, "o"),
                       f"{user}:{user}"])
    raise_unless_ok(host, result.ok or result.returncode == UNCHANGED_EXIT,
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
    data = str(layout.data_dir)
    result = host.run(["sh", "-c", RESTORE_SCRIPT, "sh", str(etcdutl), str(remote_snapshot),
                       data, data + PRE_RESTORE_SUFFIX, data + RESTORING_SUFFIX,
                       f"{user}:{user}", *options], timeout=600)
    if not result.ok:
        raise DcsctlError(
            f"{member.name}: etcdutl could not restore ({result.stderr.strip()[-400:]})",
            fix="correct the cause and run the same `dcsctl restore` again (it resumes)",
        )


def drop_pre_restore(cluster: Cluster, member: spec.Member) -> bool:
    """Remove the data dir kept aside by a restore; True if there was one."""
    old = str(cluster.layout(member.name).data_dir) + PRE_RESTORE_SUFFIX
    host = cluster.host_of(member.name)
    if not host.run(["test", "-e", old]).ok:
        return False
    result = host.run(["rm", "-rf", "--", old])
    raise_unless_ok(host, result.ok, f"removing {old}", result.stderr)
    return True


RMDIR_SCRIPT = r"""
for dir; do [ -d "$dir" ] && rmdir --ignore-fail-on-non-empty -- "$dir"; done
exit 0
"""


def left_behind(cluster: Cluster) -> str:
    """What `destroy` leaves on the hosts on purpose: what dcsctl installed but did not
    create for this cluster alone (other software may use the package and the user)."""
    if not cluster.remote:
        return ""
    kept = [f"the `{cluster.spec.service.user}` user"]
    if cluster.spec.install.method is InstallMethod.APT:
        kept.insert(0, "Debian's etcd-server and etcd-client packages")
    elif cluster.spec.install.method is InstallMethod.RELEASE:
        kept.insert(0, f"the etcd binaries in {cluster.spec.remote_bin_dir()}")
    return "left on each host: " + " and ".join(kept)


def remove(cluster: Cluster, member: spec.Member) -> None:
    """Take back what `push` put on the host (destroy): keys, config, unit, data."""
    layout = cluster.layout(member.name)
    paths = cluster.host_paths(member.name)
    doomed = [layout.key, layout.jwt_private, layout.cert, layout.jwt_public, layout.ca_cert,
              layout.crl, layout.config, paths.pidfile, founding_marker(cluster, member)]
    if paths.env_link is not None:
        doomed.append(paths.env_link)
    if cluster.spec.service.manager is ServiceManager.SYSTEMD:
        cluster.host_of(member.name).run(["systemctl", "disable", "etcd.service"])
        doomed.append(paths.unit)
    host = cluster.host_of(member.name)
    result = host.run(["rm", "-rf", "--", *map(str, doomed), str(layout.data_dir)])
    raise_unless_ok(host, result.ok, "removing the member's files", result.stderr)
    # The folders dcsctl made for them go too, but only when empty (/etc/dcs/cert stayed
    # behind, root:etcd 0750, found on the testbed).
    folders = sorted({str(layout.cert.parent), str(layout.config.parent)}, reverse=True)
    host.run(["sh", "-c", RMDIR_SCRIPT, "sh", *folders])
    if cluster.spec.manage_etc_hosts:
        current = host.read(paths.hosts_file)
        if current is not None:
            kept = render.without_hosts_block(current.decode(), cluster.spec.name)
            host.write(paths.hosts_file, kept.encode(), PUBLIC, "root:root")
