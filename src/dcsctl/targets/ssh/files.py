"""What an SSH member host must hold — directories, configuration, certificates, a unit,
a managed /etc/hosts block — observed in one round trip and changed only where it
differs; and taken back again (destroy, member remove).

What a host receives is built on the control machine as bytes (`DesiredFile`) and
written by the Host adapter atomically, with owner and mode set before the rename. The
CA key is never among them.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePath

from dcsctl import render
from dcsctl.errors import DcsctlError, EnvironmentProblem
from dcsctl.hosts.protocol import UNCHANGED_EXIT, Host
from dcsctl.state import PRIVATE, PUBLIC
from dcsctl.targets.data_dir import DATA_DIR_MODE, ensure_dir, raise_unless_ok
from dcsctl.targets.protocol import FileChange, Written
from dcsctl.targets.ssh.init_systems import InitSystem
from dcsctl.targets.ssh.place import DesiredFile, Place

CERT_DIR_MODE = 0o750

LINK_SCRIPT = r"""
set -eu
[ "$(readlink "$2" 2>/dev/null)" = "$1" ] && exit 3
mkdir -p "$(dirname "$2")"
ln -sfn "$1" "$2"
"""


# -- what a host must hold --

@dataclass(frozen=True)
class DesiredDir:
    path: PurePath
    mode: int
    owner: str


def desired_dirs(place: Place) -> list[DesiredDir]:
    user = place.spec.service.user
    return [
        DesiredDir(place.layout.ca_cert.parent, CERT_DIR_MODE, f"root:{user}"),
        DesiredDir(place.layout.data_dir, DATA_DIR_MODE, place.owner),
    ]


def _issued(path: PurePath) -> bytes | None:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        return None


def member_files(place: Place, settings: bytes) -> list[DesiredFile]:
    """etcd's own files on the member's host, built on the control machine."""
    staged, on_host = place.staged, place.layout
    private, public = place.owner, "root:root"
    return [
        DesiredFile(on_host.config, settings, PUBLIC, public, read_at_start=True),
        DesiredFile(on_host.ca_cert, _issued(staged.ca_cert), PUBLIC, public),
        DesiredFile(on_host.crl, _issued(staged.crl), PUBLIC, public),
        DesiredFile(on_host.cert, _issued(staged.cert), PUBLIC, public),
        DesiredFile(on_host.key, _issued(staged.key), PRIVATE, private, secret=True),
        DesiredFile(on_host.jwt_public, _issued(staged.jwt_public), PUBLIC, public),
        DesiredFile(on_host.jwt_private, _issued(staged.jwt_private), PRIVATE, private,
                    secret=True),
    ]


def desired_files(place: Place, init: InitSystem, settings: bytes) -> list[DesiredFile]:
    """Everything dcsctl writes on the member's host: etcd's files and its init system's."""
    return member_files(place, settings) + init.files()


def hosts_file(place: Place) -> DesiredFile | None:
    if not place.spec.manage_etc_hosts:
        return None
    path = place.paths.hosts_file
    current = (place.host.read(path) or b"").decode()
    wanted = render.with_hosts_block(current, place.spec.name, render.hosts_block(place.spec))
    return DesiredFile(path, wanted.encode(), PUBLIC, "root:root")


# -- observing --

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
        if wanted.content is None:
            return False
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


# -- writing --

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


RMDIR_SCRIPT = r"""
for dir; do [ -d "$dir" ] && rmdir --ignore-fail-on-non-empty -- "$dir"; done
exit 0
"""


def founding_marker(place: Place) -> PurePath:
    """Beside the data dir: the token of the cluster whose bootstrap created its data."""
    return PurePath(f"{place.layout.data_dir}.dcsctl-token")


def push(place: Place, init: InitSystem, settings: bytes, *,
         founding_token: str | None = None) -> Written:
    """Bring the host's directories, files and links to the spec.

    One round trip observes everything; only what differs is written, so a re-run on an
    unchanged host costs that one command. `founding_token` (a cluster not bootstrapped
    yet) also guards the data dir: data that an earlier bootstrap of *this* cluster did
    not create — the guide's cluster, Debian's package instance — would win over the new
    cluster's settings, since etcd ignores initial-cluster once a data dir holds a member.
    """
    host, member = place.host, place.member
    dirs = desired_dirs(place)
    files = desired_files(place, init, settings)
    if (etc_hosts := hosts_file(place)) is not None:
        files.append(etc_hosts)
    marker = None
    if founding_token is not None:
        marker = DesiredFile(founding_marker(place), founding_token.encode(), PUBLIC,
                             "root:root")
        files.append(marker)
    link = place.paths.env_link
    config = place.layout.config
    seen = observe(host, [*(d.path for d in dirs), *(f.path for f in files),
                          link or config, place.layout.data_dir / "member"])
    seen_dirs, seen_files = seen[:len(dirs)], seen[len(dirs):len(dirs) + len(files)]
    seen_link, seen_data = seen[-2], seen[-1]
    if marker is not None and seen_data.kind == "D" and not seen_files[-1].is_file(marker):
        data_dir = place.layout.data_dir
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
            ensure_dir(host, directory.path, directory.mode, directory.owner)
            changed.append(str(directory.path))
    written, previous_config = _write_differing(host, files, seen_files, keep_previous=config)
    changed += written
    if link is not None and not seen_link.links_to(config):
        result = host.run(["sh", "-c", LINK_SCRIPT, "sh", str(config), str(link)])
        raise_unless_ok(host, result.ok or result.returncode == UNCHANGED_EXIT,
                        f"linking {link}", result.stderr)
        changed.append(str(link))
    # What else etcd reads at start-up only (a unit) asks for a restart; whether the
    # configuration's change does depends on what in it changed (ops/provision.py).
    restart = any(f.read_at_start and f.path != config and str(f.path) in written
                  for f in files)
    return Written(tuple(changed), previous_config, restart)


def sync_tls(place: Place) -> list[str]:
    """Copy the member's certificates as issued on the control machine to its host."""
    layout = place.layout
    tls = {layout.ca_cert, layout.crl, layout.cert, layout.key, layout.jwt_private,
           layout.jwt_public}
    wanted = [f for f in member_files(place, b"") if f.path in tls and f.content is not None]
    return _write_differing(place.host, wanted, observe(place.host, [f.path for f in wanted]))[0]


def remove(place: Place, init: InitSystem) -> None:
    """Take back what `push` put on the host (destroy): keys, config, unit, data."""
    layout, paths, host = place.layout, place.paths, place.host
    doomed = [layout.key, layout.jwt_private, layout.cert, layout.jwt_public, layout.ca_cert,
              layout.crl, layout.config, founding_marker(place),
              *init.teardown()]
    if paths.env_link is not None:
        doomed.append(paths.env_link)
    result = host.run(["rm", "-rf", "--", *map(str, doomed), str(layout.data_dir)])
    raise_unless_ok(host, result.ok, "removing the member's files", result.stderr)
    # The folders dcsctl made for them go too, but only when empty (/etc/dcs/cert stayed
    # behind, root:etcd 0750, found on the testbed).
    folders = sorted({str(layout.cert.parent), str(layout.config.parent)}, reverse=True)
    host.run(["sh", "-c", RMDIR_SCRIPT, "sh", *folders])
    if place.spec.manage_etc_hosts:
        current = host.read(paths.hosts_file)
        if current is not None:
            kept = render.without_hosts_block(current.decode(), place.spec.name)
            host.write(paths.hosts_file, kept.encode(), PUBLIC, "root:root")


# -- planning (`up --plan`) --

def file_change(host: Host, wanted: DesiredFile, now: Observed) -> FileChange:
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


def planned_files(place: Place, wanted: Sequence[DesiredFile],
                  reissued: Sequence[PurePath]) -> list[FileChange]:
    """What `push` would change to bring `wanted` (`desired_files`) to the host;
    `reissued`: files the pki phase will issue anew, whose content is not known yet."""
    desired = [replace(f, content=None) if f.path in reissued else f for f in wanted]
    if (etc_hosts := hosts_file(place)) is not None:
        desired.append(etc_hosts)
    seen = observe(place.host, [f.path for f in desired])
    return [file_change(place.host, f, now) for f, now in zip(desired, seen, strict=True)]
