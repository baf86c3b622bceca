"""`dcsctl get`/`put` as a user runs them (a process of their own): after one full run
they answer through etcdctl without typer, rich, pydantic or grpc, exactly as the full
CLI would; anything they cannot answer goes to the full CLI."""

from __future__ import annotations

import shutil
import subprocess
import sys

from tests.support.lab import REPO, LabCluster
from tests.unit.test_quick_paths import HEAVY, heavy_among


def _dcsctl(lab: LabCluster, *argv: str, environ: dict[str, str] | None = None,
            ) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run `python -X importtime -m dcsctl ARGV -f SPEC`; (the run, the modules it imported)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "dcsctl", *argv, "-f", str(lab.spec_file)],
        env=environ or lab.environ, cwd=REPO, capture_output=True, text=True, timeout=120,
        check=False)
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines()
                if line.startswith("import time:")}
    return done, imported


def _heavy(imported: set[str], *, allowed: tuple[str, ...] = ()) -> list[str]:
    return heavy_among(imported, tuple(h for h in HEAVY if h not in allowed))


def test_get_and_put_are_quick_after_one_full_run(running_lab: LabCluster) -> None:
    shutil.rmtree(running_lab.home / ".cache" / "clients")  # the one `up` recorded
    first, imported = _dcsctl(running_lab, "put", "/quick/k", "first value")
    assert first.returncode == 0 and first.stdout == "OK\n", first.stderr[-2000:]
    assert "typer" in imported  # control: the first run is a full one, and records
    put, imported = _dcsctl(running_lab, "put", "/quick/k", "välue two")
    assert put.returncode == 0 and put.stdout == "OK\n"
    assert "dcsctl.etcd.etcdctl" in imported and _heavy(imported) == []
    get, imported = _dcsctl(running_lab, "get", "/quick/k")
    assert get.returncode == 0 and _heavy(imported) == []
    full = running_lab.ok("get", "/quick/k")  # in-process: the full CLI
    assert get.stdout == full.out == "välue two\n"
    as_json, imported = _dcsctl(running_lab, "get", "/quick/k", "--json")
    assert _heavy(imported, allowed=("json",)) == [] and as_json.stdout == running_lab.ok(
        "get", "/quick/k", "--json").out


def test_a_missing_key_gets_the_full_clis_error(running_lab: LabCluster) -> None:
    _dcsctl(running_lab, "put", "/quick/present", "x")
    missing, imported = _dcsctl(running_lab, "get", "/quick/absent")
    assert missing.returncode == running_lab.dcsctl("get", "/quick/absent").code != 0
    assert "error: key '/quick/absent' does not exist" in missing.stderr
    assert "typer" in imported  # the full CLI answered


def test_an_exported_etcdctl_identity_changes_nothing(running_lab: LabCluster) -> None:
    """`eval "$(dcsctl env)"` or a Patroni user's ETCDCTL_USER must not leak into the
    quick path's etcdctl (it would try a password login as that user)."""
    _dcsctl(running_lab, "put", "/quick/env", "v")
    environ = {**running_lab.environ, "ETCDCTL_USER": "patroni:wrong",
               "ETCDCTL_ENDPOINTS": "https://127.0.0.1:1"}
    got, imported = _dcsctl(running_lab, "get", "/quick/env", environ=environ)
    assert got.stdout == "v\n" and _heavy(imported) == []


def test_an_edited_spec_is_a_full_run_again(running_lab: LabCluster) -> None:
    _dcsctl(running_lab, "put", "/quick/edit", "v")
    original = running_lab.spec_file.read_text()
    try:
        running_lab.spec_file.write_text(original + "# edited\n")
        edited, imported = _dcsctl(running_lab, "get", "/quick/edit")
        assert edited.stdout == "v\n" and "typer" in imported
        again, imported = _dcsctl(running_lab, "get", "/quick/edit")
        assert again.stdout == "v\n" and _heavy(imported) == []
    finally:
        running_lab.spec_file.write_text(original)
