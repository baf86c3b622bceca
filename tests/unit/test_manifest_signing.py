"""Backup manifests are signed: this cluster's, another cluster's, unsigned, or altered."""

from __future__ import annotations

import dataclasses

import pytest

from dcsctl import snapshots
from dcsctl.snapshots import Authenticity, Manifest

KEY = b"k" * 32
OTHER_KEY = b"o" * 32


def _manifest(**changes: object) -> Manifest:
    base = Manifest(
        cluster="dcs", cluster_id="aaaa", taken_at="2026-11-24T10:15:00+00:00", member="dcs-00",
        endpoint="https://127.0.0.10:2379", etcd_version="3.5.30", revision=42, key_count=7,
        db_size=20480, sha256="ab" * 32, spec_digest="cd" * 32, users=("patroni-prod", "root"),
        roles=("patroni-prod", "root"), format=1,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_a_signed_manifest_survives_its_json_round_trip() -> None:
    signed = snapshots.sign(_manifest(), KEY)
    again = Manifest.from_json(signed.to_json())
    assert again == signed
    assert snapshots.authenticity(again, KEY) is Authenticity.SIGNED_HERE
    assert snapshots.authenticity(again, OTHER_KEY) is Authenticity.SIGNED_ELSEWHERE
    assert snapshots.authenticity(again, None) is Authenticity.SIGNED_ELSEWHERE
    assert KEY.hex() not in signed.to_json().decode()


@pytest.mark.parametrize("field,value", [
    ("sha256", "ef" * 32), ("key_count", 8), ("cluster", "quota"), ("cluster_id", "bbbb"),
    ("users", ("root",)), ("revision", 41), ("hmac_sha256", ""),
])
def test_any_edit_of_a_signed_manifest_is_tampering(field: str, value: object) -> None:
    edited = dataclasses.replace(snapshots.sign(_manifest(), KEY), **{field: value})
    assert snapshots.authenticity(edited, KEY) is Authenticity.TAMPERED


def test_an_old_unsigned_manifest_is_unsigned_not_tampered() -> None:
    assert snapshots.authenticity(_manifest(), KEY) is Authenticity.UNSIGNED


@pytest.mark.parametrize("manifest,key,ids,expected", [
    (_manifest(), KEY, ("aaaa",), ()),
    (_manifest(cluster_id="old"), KEY, ("old", "aaaa"), ()),  # before an earlier restore
    (_manifest(cluster="quota"), KEY, ("aaaa",), ("cluster 'quota', this is 'dcs'",)),
    (_manifest(cluster_id="bbbb"), KEY, ("aaaa",), ("cluster ID bbbb",)),
    (_manifest(), OTHER_KEY, ("aaaa",), ("another cluster's key",)),
    (_manifest(cluster_id="bbbb"), KEY, (), ()),  # a new cluster has no ID to compare
])
def test_foreign_reasons(
    manifest: Manifest, key: bytes, ids: tuple[str, ...], expected: tuple[str, ...]
) -> None:
    signed = snapshots.sign(manifest, key)
    reasons = snapshots.foreign_reasons(signed, snapshots.authenticity(signed, KEY),
                                        cluster="dcs", cluster_ids=ids)
    assert len(reasons) == len(expected)
    for reason, fragment in zip(reasons, expected, strict=True):
        assert fragment in reason
    assert snapshots.is_ours(signed, snapshots.authenticity(signed, KEY), cluster="dcs") is (
        key == KEY and manifest.cluster == "dcs")
