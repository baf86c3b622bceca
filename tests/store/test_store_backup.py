"""Backups in a real S3 store (versitygw on loopback, TLS): sealed, listed, verified,
pruned and restored; this cluster's objects only; destroy leaves the store alone."""

from __future__ import annotations

import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from tests.store.versitygw import Gateway
from tests.support.lab import REPO, LabCluster

BUCKET = "dcs-backups"


def with_store(lab: LabCluster, gateway: Gateway, **extra: object) -> LabCluster:
    document = lab.document()
    document["backup"] = gateway.store_section(**{"bucket": BUCKET, **extra})
    lab.spec_file.write_text(yaml.safe_dump(document))
    return lab


def objects(gateway: Gateway, cluster: str, prefix: str = "prod/") -> dict[str, bytes]:
    """What the store holds for `cluster` (read from the posix backend's directory)."""
    folder = gateway.root / BUCKET / prefix / cluster
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*")) if p.is_file()}


@pytest.fixture
def stored(lab: LabCluster, gateway: Gateway) -> Iterator[LabCluster]:
    with_store(lab, gateway)
    lab.ok("up")
    for index in range(10):
        lab.ok("put", f"/service/demo/members/db-{index:02d}", f"member-{index}")
    yield lab


def test_backup_goes_sealed_to_the_store_and_restores_latest(
    stored: LabCluster, gateway: Gateway
) -> None:
    result = stored.ok("backup", "--json").json()
    assert str(result["url"]).startswith(f"{gateway.endpoint}/{BUCKET}/prod/{stored.name}/")
    held = objects(gateway, stored.name)
    assert sorted(held) == sorted([f"{result['object']}",
                                   str(result["object"]).replace(".db.sealed",
                                                                 ".manifest.sealed")])
    # Sealed: neither the data nor the users' names are readable in the store.
    for content in held.values():
        assert b"member-3" not in content and b"/service/demo" not in content
        assert b"root" not in content and content.startswith(b"DCSSEAL1")
    assert not list(stored.state.glob("store-upload-*"))  # the scratch copy is gone
    assert gateway.secret_key not in result.__repr__()

    listed = stored.ok("backup", "list", "--json").json_list()
    assert [b["object"] for b in listed] == [result["object"]]
    name = str(result["object"]).removesuffix(".sealed")
    assert stored.ok("backup", "verify", name).out.startswith("OK")

    stored.ok("put", "/service/demo/members/db-03", "changed-after-backup")
    stored.ok("restore", "--latest", "--yes")
    assert stored.ok("get", "/service/demo/members/db-03").out == "member-3\n"
    assert not list((stored.state / "from-store").glob("*.db"))  # fetched copy removed


def test_retention_and_listing_touch_this_clusters_complete_backups_only(
    stored: LabCluster, gateway: Gateway, lab_factory: Callable[..., LabCluster]
) -> None:
    other = with_store(lab_factory(members=1), gateway)
    other.ok("up")
    other.ok("backup")
    first = stored.ok("backup", "--json").json()["object"]
    # A planted object that is not a backup of ours.
    folder = gateway.root / BUCKET / "prod" / stored.name
    (folder / "stray.db.sealed").write_bytes(b"DCSSEAL1" + b"\0" * 60)
    stored.ok("backup")
    third = stored.ok("backup", "--keep", "2", "--json").json()
    assert third["pruned"] == [str(first).removesuffix(".sealed")]
    listing = stored.dcsctl("backup", "list")
    assert listing.code == 0 and "1 other object(s)" in listing.err
    assert len(stored.ok("backup", "list", "--json").json_list()) == 2
    assert (folder / "stray.db.sealed").exists()
    assert len(objects(gateway, other.name)) == 2  # the other cluster's are untouched
    assert len(other.ok("backup", "list", "--json").json_list()) == 1

    stored.ok("destroy", "--yes")
    assert len(objects(gateway, stored.name)) == 5  # destroy never deletes from the store


def test_backup_does_not_load_the_s3_client_for_other_commands() -> None:
    code = ("import sys\nfrom dcsctl.cli import main\nmain(['backup', '--help'], {})\n"
            "main(['status', '--help'], {})\nprint(' '.join(sorted(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=60, cwd=REPO)
    loaded = done.stdout.splitlines()[-1].split()
    for heavy in ("boto3", "botocore", "dcsctl.store", "dcsctl.sealed", "dcsctl.ops.offsite"):
        assert heavy not in loaded


def s3_client(gateway: Gateway):  # type: ignore[no-untyped-def]
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=gateway.endpoint, region_name="us-east-1",
                        aws_access_key_id=gateway.access_key,
                        aws_secret_access_key=gateway.secret_key, verify=str(gateway.ca_file),
                        config=Config(s3={"addressing_style": "path"}))


def test_tampered_or_cut_objects_are_refused_before_the_cluster_is_touched(
    stored: LabCluster, gateway: Gateway
) -> None:
    first = stored.ok("backup", "--json").json()
    second = stored.ok("backup", "--json").json()
    folder = gateway.root / BUCKET / "prod" / stored.name
    stored.ok("put", "/service/demo/leader", "written-after-backups")
    before = stored.ok("status", "--json").json()["cluster_id"]

    tampered = folder / str(second["object"])
    data = bytearray(tampered.read_bytes())
    data[len(data) // 2] ^= 0x01
    tampered.write_bytes(bytes(data))
    refused = stored.dcsctl("restore", "--latest", "--yes")
    assert refused.code == 1 and "fails authentication" in refused.err and "fix:" in refused.err
    assert stored.dcsctl("backup", "verify", str(second["object"])).code == 1

    cut = folder / str(first["object"])
    cut.write_bytes(cut.read_bytes()[:-100])
    refused = stored.dcsctl("restore", str(first["object"]), "--yes")
    assert refused.code == 1 and "is damaged" in refused.err, refused.err
    assert "damaged: " in stored.dcsctl("backup", "list").err

    # Untouched: same cluster, the write after the backups still there, nothing fetched.
    assert stored.ok("status", "--json").json()["cluster_id"] == before
    assert stored.ok("get", "/service/demo/leader").out == "written-after-backups\n"
    assert not [p for p in (stored.state / "from-store").iterdir()]


def test_an_unfinished_upload_is_never_listed_and_the_next_backup_aborts_it(
    stored: LabCluster, gateway: Gateway
) -> None:
    client = s3_client(gateway)
    key = f"prod/{stored.name}/{stored.name}-20261205T000000.000Z.db.sealed"
    upload = client.create_multipart_upload(Bucket=BUCKET, Key=key)
    client.upload_part(Bucket=BUCKET, Key=key, UploadId=upload["UploadId"], PartNumber=1,
                       Body=b"\0" * (5 << 20))
    assert stored.ok("backup", "list", "--json").json_list() == []
    again = stored.ok("backup")
    assert "aborted 1 unfinished upload" in again.err
    assert client.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []
    assert len(stored.ok("backup", "list", "--json").json_list()) == 1


def test_the_scheduled_backup_goes_to_the_store_with_retention(
    stored: LabCluster, gateway: Gateway, tmp_path: Path
) -> None:
    units = tmp_path / "units"
    stored.ok("backup", "schedule", "--keep", "1", "--unit-dir", str(units))
    entries = {}
    for line in (units / f"dcsctl-backup-{stored.name}.service").read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            entries[key] = value
    environment = dict(word.split("=", 1) for word in shlex.split(entries["Environment"]))
    for _ in range(2):  # exactly what the timer's service runs, with its environment
        ran = subprocess.run(shlex.split(entries["ExecStart"]), env=environment,
                             capture_output=True, text=True, timeout=120, check=False)
        assert ran.returncode == 0, ran.stderr
        assert gateway.secret_key not in ran.stdout + ran.stderr
    assert len(stored.ok("backup", "list", "--json").json_list()) == 1
    assert not list((stored.state / "backups").glob("*.db"))  # nothing kept locally
