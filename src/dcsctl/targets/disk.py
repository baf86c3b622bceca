"""Room on a member's data filesystem, wherever the member runs.

etcd preallocates each WAL segment at 64 MB: with less free, a running member cannot cut
its next segment (it stops) and a new one cannot write its first (it never starts). Asked
through the target's own Host, with `df`, which every host has.
"""

from __future__ import annotations

from pathlib import PurePath

from dcsctl.hosts.protocol import Host
from dcsctl.targets.protocol import Check, Target, Verdict

MIN_DATA_FREE_BYTES = 64 * 1024 * 1024
# `df` of the filesystem that holds (or will hold) the data dir: its nearest existing
# parent before the first `up`. Prints df's one POSIX line for it.
DISK_PROBE = r"""
p=$1
while [ ! -d "$p" ]; do p=$(dirname "$p"); done
df -Pk "$p" | tail -n 1
"""


def disk_check(member: str, data_dir: str, df_line: str) -> Check:
    """Room for etcd's WAL on the data dir's filesystem, from `df -Pk`'s line for it."""
    fields = df_line.split()
    try:
        total_kib, free_kib, mounted = int(fields[1]), int(fields[3]), fields[5]
    except (IndexError, ValueError):
        return Check(member, "disk", Verdict.WARN,
                     f"free space of {data_dir} not measured ({df_line.strip() or 'no df'})")
    free = free_kib * 1024
    detail = (f"{_mib(free)} free of {_mib(total_kib * 1024)} on {mounted} "
              f"({fields[0]}), which holds {data_dir}")
    if free < MIN_DATA_FREE_BYTES:
        return Check(member, "disk", Verdict.FAIL,
                     f"the data filesystem is full: {detail}; etcd needs "
                     f"{_mib(MIN_DATA_FREE_BYTES)} free for each WAL segment",
                     fix=f"free space on {mounted} on {member} (or give {data_dir} a larger "
                     "disk), then run again")
    return Check(member, "disk", Verdict.OK, detail)


def data_disk(host: Host, member: str, data_dir: PurePath) -> Check:
    result = host.run(["sh", "-c", DISK_PROBE, "sh", str(data_dir)])
    return disk_check(member, str(data_dir), result.stdout)


def member_disk(target: Target, member: str) -> Check:
    """The disk check of one member's data dir, on whatever host the target runs it."""
    where = target.placement
    return data_disk(where.host(member), member, where.layout(member).data_dir)


def _mib(size: int) -> str:
    return f"{size / 1024 / 1024:.0f} MiB"
