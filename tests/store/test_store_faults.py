"""Faults of the store, each a clear error with nothing half-listed and the cluster
untouched: the store killed mid-upload, wrong credentials, a missing bucket, a store
slower than the timeout, a full disk under the store."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.store.proxy import relay
from tests.store.test_store_backup import BUCKET, with_store
from tests.store.versitygw import Gateway, versitygw, write_credentials
from tests.support import cluster_of
from tests.support.lab import LabCluster

MIB = 1 << 20
DATA_MIB = 20  # above the 16 MiB multipart threshold: two parts


@pytest.fixture
def big(lab_factory: Callable[..., LabCluster], gateway: Gateway) -> LabCluster:
    lab = with_store(lab_factory(members=1), gateway)
    lab.ok("up")
    with cluster_of(lab).admin_client() as client:
        for index in range(DATA_MIB):
            client.put(f"/bulk/{index:02d}", os.urandom(MIB))
    lab.ok("backup")  # one good backup, which every fault must leave as the only one
    return lab


def _untouched(lab: LabCluster) -> None:
    """The cluster serves, its data is whole, no scratch snapshot is left behind."""
    assert lab.ok("status", "--json").json()["healthy"] is True
    with cluster_of(lab).admin_client() as client:
        last = client.get(f"/bulk/{DATA_MIB - 1:02d}")
        assert last is not None and len(last.value) == MIB
    assert not list(lab.state.glob("store-upload-*"))


def _refused(lab: LabCluster, *fragments: str) -> str:
    result = lab.dcsctl("backup")
    assert result.code != 0, result.out
    for fragment in (*fragments, "fix:"):
        assert fragment in result.err, result.err
    return result.err


def test_store_killed_mid_upload(big: LabCluster, gateway: Gateway) -> None:
    with relay(gateway.port, after_bytes=8 * MIB, hook=gateway.kill) as front:
        # A bounded wait for answers: a request caught mid-flight by the kill must not
        # hang the test for the default minute.
        with_store(big, gateway, endpoint=front.endpoint, timeout_s=10)
        started = time.monotonic()
        printed = _refused(big, "lost the store at")
        took = time.monotonic() - started
        assert front.fired.is_set()
    print(f"\nstore killed mid-upload ({took:.1f} s): {printed}")
    gateway.start()  # same directory, same port: what survived the crash
    with_store(big, gateway)
    assert len(big.ok("backup", "list", "--json").json_list()) == 1  # nothing half-listed
    _untouched(big)
    again = big.ok("backup")  # the next backup cleans up the crashed upload
    assert "aborted 1 unfinished upload" in again.err
    assert len(big.ok("backup", "list", "--json").json_list()) == 2


def test_wrong_credentials(big: LabCluster, gateway: Gateway) -> None:
    write_credentials(gateway.credentials_file, gateway.access_key, "not-the-secret-key")
    printed = _refused(big, "refused the secret key in", str(gateway.credentials_file))
    assert "not-the-secret-key" not in printed
    write_credentials(gateway.credentials_file, "nobody", gateway.secret_key)
    printed_too = _refused(big, "does not know the access key")
    assert gateway.secret_key not in printed_too
    print(f"\nwrong credentials: {printed}{printed_too}")
    write_credentials(gateway.credentials_file, gateway.access_key, gateway.secret_key)
    assert len(big.ok("backup", "list", "--json").json_list()) == 1
    _untouched(big)


def test_missing_bucket(big: LabCluster, gateway: Gateway) -> None:
    with_store(big, gateway, bucket="no-such-bucket")
    printed = _refused(big, "bucket 'no-such-bucket' does not exist", "never creates buckets")
    print(f"\nmissing bucket: {printed}")
    assert not (gateway.root / "no-such-bucket").exists()
    _untouched(big)


def test_store_slower_than_the_timeout(big: LabCluster, gateway: Gateway) -> None:
    with relay(gateway.port, hold_answers=True) as front:
        with_store(big, gateway, endpoint=front.endpoint, timeout_s=2)
        printed = _refused(big, "did not answer within 2 s", "timeout_s")
    print(f"\nslow store: {printed}")
    with_store(big, gateway)
    assert len(big.ok("backup", "list", "--json").json_list()) == 1
    _untouched(big)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs: room for the store's bookkeeping, not for a 20 MiB snapshot."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m,mode=0755", "tmpfs", str(mount)],
                   check=True, timeout=30)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "--lazy", str(mount)], check=False, timeout=30)


def test_full_disk_under_the_store(
    lab_factory: Callable[..., LabCluster], small_disk: Path, tmp_path: Path
) -> None:
    with versitygw(tmp_path / "full", root=small_disk, buckets=(BUCKET,)) as gateway:
        lab = with_store(lab_factory(members=1), gateway)
        lab.ok("up")
        lab.ok("backup")  # positive control: a small backup fits
        with cluster_of(lab).admin_client() as client:
            for index in range(DATA_MIB):
                client.put(f"/bulk/{index:02d}", os.urandom(MIB))
        printed = _refused(lab, "is out of space", "free space on the store")
        print(f"\nfull disk: {printed}")
        assert len(lab.ok("backup", "list", "--json").json_list()) == 1
        assert "damaged" not in lab.dcsctl("backup", "list").err
        _untouched(lab)


def test_a_store_certificate_from_an_unknown_ca_is_refused(
    lab_factory: Callable[..., LabCluster], gateway: Gateway
) -> None:
    lab = with_store(lab_factory(members=1), gateway, ca_file=None)  # the system's CAs
    lab.ok("up")
    printed = _refused(lab, "is not trusted", "backup.store.s3.ca_file")
    print(f"\nunknown CA: {printed}")
    assert not list(lab.state.glob("store-upload-*"))  # refused before any snapshot
