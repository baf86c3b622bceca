"""The spec's backup.store.s3 section and the credentials file it names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dcsctl import spec
from dcsctl.errors import EnvironmentProblem, NotFound, SpecError
from dcsctl.store import read_credentials

MEMBERS = [{"name": "dcs-00", "address": "127.0.0.10"}]
S3 = {"endpoint": "https://s3.internal:7070", "bucket": "dcs-backups"}


def _parsed(s3: dict[str, Any]) -> spec.S3Store:
    parsed = spec.from_mapping({"members": MEMBERS, "backup": {"store": {"s3": s3}}})
    assert parsed.backup is not None and parsed.backup.store is not None
    return parsed.backup.store.s3


def test_the_issue_example_parses_with_its_defaults() -> None:
    s3 = _parsed({**S3, "prefix": "prod", "region": "eu-west-1", "path_style": True,
                  "ca_file": "/etc/ssl/internal-ca.pem",
                  "credentials_file": "~/.config/dcsctl/s3"})
    assert (s3.endpoint, s3.prefix, s3.region, s3.profile) == (
        "https://s3.internal:7070", "prod/", "eu-west-1", "default")
    assert _parsed(S3).path_style is True and _parsed(S3).prefix == ""


def test_a_spec_without_a_store_keeps_its_digest() -> None:
    """Manifests carry the spec's digest: adding the section must not change old specs'."""
    plain = spec.from_mapping({"members": MEMBERS})
    assert plain.backup is None and "backup" not in spec.digest_source(plain)


@pytest.mark.parametrize(("field", "value", "problem"), [
    ("endpoint", "s3.internal:7070", "must be a URL"),
    ("endpoint", "https://user:pw@s3.internal", "must be a URL"),
    ("bucket", "Dcs_Backups", "must be an S3 bucket name"),
    ("prefix", "/prod/", "relative key prefix"),
    ("prefix", "a/../b", "relative key prefix"),
    ("timeout_s", 0, "greater than or equal to 1"),
    ("access_key", "AKIA...", "unknown key"),  # credentials never in the spec
])
def test_bad_store_settings_are_named(field: str, value: object, problem: str) -> None:
    with pytest.raises(SpecError) as caught:
        _parsed({**S3, field: value})
    assert any(f"backup.store.s3.{field}" in d and problem in d for d in caught.value.details), \
        caught.value.details


def _credentials(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def test_credentials_are_read_from_the_named_profile(tmp_path: Path) -> None:
    path = _credentials(tmp_path / "s3", "[default]\naws_access_key_id = A\n"
                        "aws_secret_access_key = S\n[backup]\naws_access_key_id = B\n"
                        "aws_secret_access_key = T%\n")
    assert read_credentials(path, "backup").access_key == "B"
    assert read_credentials(path, "backup").secret_key == "T%"  # no interpolation
    assert "T%" not in repr(read_credentials(path, "backup"))


def test_credentials_readable_by_others_are_refused(tmp_path: Path) -> None:
    path = _credentials(tmp_path / "s3", "[default]\naws_access_key_id = A\n"
                        "aws_secret_access_key = S\n", mode=0o640)
    with pytest.raises(EnvironmentProblem, match="readable by others") as caught:
        read_credentials(path, "default")
    assert "chmod 600" in caught.value.fix and "S" not in caught.value.message.split()


def test_missing_or_malformed_credentials_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="does not exist"):
        read_credentials(tmp_path / "absent", "default")
    broken = _credentials(tmp_path / "s3", "[default]\naws_access_key_id = A\n")
    with pytest.raises(EnvironmentProblem, match=r"no usable \[default\] section"):
        read_credentials(broken, "default")


def test_a_missing_ca_file_is_named_before_any_request(tmp_path: Path) -> None:
    from dcsctl.store import Store

    credentials = _credentials(tmp_path / "s3", "[default]\naws_access_key_id = A\n"
                               "aws_secret_access_key = S\n")
    s3 = _parsed({**S3, "ca_file": str(tmp_path / "absent.pem"),
                  "credentials_file": str(credentials)})
    with pytest.raises(NotFound, match=r"CA file .*absent\.pem does not exist"):
        Store(s3)
