"""A member's data dir on whatever host runs it: the one restore from a snapshot, the
one wipe, and dropping what a restore kept aside. Every target runs these same shell
programs through its Host (this machine's or an SSH host's)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePath

from dcsctl.errors import DcsctlError
from dcsctl.hosts.protocol import UNCHANGED_EXIT, Host

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

# Rebuilds the member's data dir from a snapshot on its host. The old data dir is kept
# aside (*.pre-restore) until the restored cluster is verified; a half-finished earlier
# attempt is simply redone. `drop` removes the snapshot afterwards (a pushed copy).
RESTORE_SCRIPT = r"""
set -eu
etcdutl=$1 snapshot=$2 data=$3 old=$4 temp=$5 owner=$6 drop=$7
shift 7
if [ -e "$data/member" ] && [ ! -e "$old" ]; then
  mv "$data" "$old"
else
  rm -rf "$data"
fi
rm -rf "$temp"
mkdir -p "$(dirname "$data")"
"$etcdutl" snapshot restore "$snapshot" --data-dir "$temp" "$@" >/dev/null
chown -R "$owner" "$temp"
chmod 0700 "$temp"
mv "$temp" "$data"
if [ "$drop" = drop ]; then rm -f "$snapshot"; fi
"""


def raise_unless_ok(host: Host, ok: bool, what: str, stderr: str) -> None:
    if not ok:
        raise DcsctlError(f"{host.name}: {what} failed ({stderr.strip() or 'no output'})",
                          fix="correct the cause on that host, then run `dcsctl up` again "
                          "(it resumes)")


def ensure_dir(host: Host, path: PurePath, mode: int, owner: str) -> bool:
    """The directory exists with `mode` and `owner`; True if it had to change."""
    result = host.run(["sh", "-c", DIR_SCRIPT, "sh", str(path), format(mode, "o"), owner])
    raise_unless_ok(host, result.ok or result.returncode == UNCHANGED_EXIT,
                    f"creating {path}", result.stderr)
    return result.ok


def holds_data(host: Host, data_dir: PurePath) -> bool:
    return host.run(["test", "-e", str(data_dir / "member")]).ok


def wipe(host: Host, data_dir: PurePath, owner: str) -> None:
    """Empty the member's data dir (a member that must join afresh)."""
    result = host.run(["rm", "-rf", "--", str(data_dir)])
    raise_unless_ok(host, result.ok, f"removing {data_dir}", result.stderr)
    ensure_dir(host, data_dir, DATA_DIR_MODE, owner)


def restore(host: Host, member: str, *, etcdutl: PurePath, snapshot: PurePath,
            data_dir: PurePath, owner: str, options: Sequence[str], drop_snapshot: bool) -> None:
    """`etcdutl snapshot restore` into the member's data dir, the old one kept aside."""
    data = str(data_dir)
    result = host.run(["sh", "-c", RESTORE_SCRIPT, "sh", str(etcdutl), str(snapshot),
                       data, data + PRE_RESTORE_SUFFIX, data + RESTORING_SUFFIX, owner,
                       "drop" if drop_snapshot else "keep", *options], timeout=600)
    if not result.ok:
        raise DcsctlError(
            f"{member}: etcdutl could not restore ({result.stderr.strip()[-400:]})",
            fix="correct the cause and run the same `dcsctl restore` again (it resumes)",
        )


def drop_pre_restore(host: Host, data_dir: PurePath) -> bool:
    """Remove the data dir kept aside by a restore; True if there was one."""
    old = str(data_dir) + PRE_RESTORE_SUFFIX
    if not host.run(["test", "-e", old]).ok:
        return False
    result = host.run(["rm", "-rf", "--", old])
    raise_unless_ok(host, result.ok, f"removing {old}", result.stderr)
    return True
