"""The quick paths of `get`/`put` (cli/quick.py): what they parse, what they import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dcsctl import spec
from dcsctl.cli import quick
from dcsctl.etcd.etcdctl import EtcdctlProfile
from dcsctl.ops import quick as quick_ops
from tests.support.lab import REPO

# Each of these costs `get` tens of milliseconds or megabytes (python -X importtime in
# benchmarks/RESULTS.md); none may come back into the quick path's import graph.
HEAVY = ("typer", "click", "rich", "pydantic", "pydantic_core", "yaml", "grpc", "etcd3aio",
         "google.protobuf", "cryptography", "matplotlib", "asyncio", "dcsctl.spec",
         "dcsctl.ops", "dcsctl.state", "subprocess", "dataclasses", "typing", "pathlib",
         "json", "tempfile", "threading")
# ...except the quick path's own use-case module (and the `ops` package it lives in, a
# docstring): every other module of dcsctl.ops pulls in the spec, the client, or both.
LIGHT = frozenset({"dcsctl.ops", "dcsctl.ops.quick"})


def heavy_among(loaded: set[str], heavy: tuple[str, ...] = HEAVY) -> list[str]:
    return sorted(m for m in loaded if m not in LIGHT
                  and any(m == h or m.startswith(h + ".") for h in heavy))


def test_get_imports_nothing_heavy(tmp_path: Path) -> None:
    """What `dcsctl get KEY -f SPEC` imports up to the point it runs etcdctl (the profile
    it finds is one of a cluster whose files are gone, so it stops right there)."""
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text("name: x\n")
    environ = {"DCSCTL_HOME": str(tmp_path / "home"), "PATH": "/usr/bin"}
    profile = EtcdctlProfile("/nonexistent/etcdctl", ("https://127.0.0.1:2379",),
                             ("/nonexistent/ca.crt",), "/nonexistent/a.crt", "/nonexistent/a.key")
    quick_ops.remember(environ, spec_file.read_bytes(), profile)
    code = (
        "import sys\n"
        "import dcsctl.cli\n"
        f"result = dcsctl.cli.quick.run(['get', '/k', '-f', {str(spec_file)!r}], {environ!r})\n"
        "assert result is None, result\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    loaded = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                check=True, cwd=REPO, timeout=60).stdout.split())
    assert "dcsctl.etcd.etcdctl" in loaded  # control: the quick path was taken that far
    back = heavy_among(loaded)
    assert back == [], f"heavy modules back in get's import graph: {back}"


def test_the_built_in_lab_name_is_the_specs() -> None:
    assert spec.lab_spec().name == quick_ops.LAB_NAME


@pytest.mark.parametrize(("argv", "expected"), [
    (["/k"], (("/k",), None, None, False)),
    (["/k", "-f", "s.yaml"], (("/k",), "s.yaml", None, False)),
    (["-f", "s.yaml", "/k", "--json"], (("/k",), "s.yaml", None, True)),
    (["/k", "--spec=s.yaml"], (("/k",), "s.yaml", None, False)),
    (["/k", "--cluster", "pg"], (("/k",), None, "pg", False)),
    (["/k", "-c", "pg", "-f", "s.yaml"], None),  # both: the full CLI's error
    (["/k", "--help"], None),
    (["/k", "--debug"], None),
    (["/k", "-fs.yaml"], None),
    (["/k", "-f"], None),
    (["--", "/k"], None),
    ([], None),
    (["/k", "/j"], None),
])
def test_get_takes_only_the_argv_it_knows(
        argv: list[str], expected: tuple[tuple[str, ...], str | None, str | None, bool] | None,
) -> None:
    parsed = quick.parse(argv, 1, json_flag=True)
    got = None if parsed is None else (parsed.positionals, parsed.spec_file, parsed.cluster,
                                       parsed.json_output)
    assert got == expected


def test_put_has_no_json_and_two_words() -> None:
    assert quick.parse(["/k", "v", "--json"], 2, json_flag=False) is None
    parsed = quick.parse(["/k", "v w"], 2, json_flag=False)
    assert parsed is not None and parsed.positionals == ("/k", "v w")
    assert quick.parse(["/k", "-v"], 2, json_flag=False) is None  # click: no such option


def test_profile_survives_a_round_trip_and_needs_its_files(tmp_path: Path) -> None:
    (tmp_path / "ca.crt").write_text("ca")
    for name in ("a.crt", "a.key"):
        (tmp_path / name).write_text(name)
    profile = EtcdctlProfile("/bin/true", ("https://127.0.0.1:2379", "https://127.0.0.2:2379"),
                             (str(tmp_path / "trust.crt"), str(tmp_path / "ca.crt")),
                             str(tmp_path / "a.crt"), str(tmp_path / "a.key"))
    assert EtcdctlProfile.load(profile.dump()) == profile
    assert profile.usable() and profile.cacert() == str(tmp_path / "ca.crt")
    (tmp_path / "trust.crt").write_text("bundle")  # a CA rotation's bundle wins
    assert profile.cacert() == str(tmp_path / "trust.crt")
    (tmp_path / "a.key").unlink()
    assert not profile.usable()
    with pytest.raises(ValueError):
        EtcdctlProfile.load(b"something else")


def test_profiles_are_keyed_by_spec_bytes_and_binary_environment(tmp_path: Path) -> None:
    environ = {"DCSCTL_HOME": str(tmp_path), "PATH": "/usr/bin"}
    first = quick_ops.profile_path(environ, b"name: a\n")
    assert first == quick_ops.profile_path(dict(environ), b"name: a\n")
    assert first != quick_ops.profile_path(environ, b"name: a\n# edited\n")
    assert first != quick_ops.profile_path({**environ, "DCSCTL_ETCD_BIN_DIR": "/x"}, b"name: a\n")
    assert first != quick_ops.profile_path({**environ, "PATH": "/bin"}, b"name: a\n")
