"""The CLI in-process: parsing, the one error handler, exit codes, no tracebacks."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from dcsctl import spec
from dcsctl.cli import COMMAND_MODULES
from tests.support.lab import REPO, CliResult, run_cli


@pytest.fixture
def environ(tmp_path: Path) -> dict[str, str]:
    return {"DCSCTL_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"}


def cli(environ: dict[str, str], *argv: str) -> CliResult:
    return run_cli(list(argv), environ)


def test_help_lists_every_command(
    environ: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    result = cli(environ, "--help")
    assert result.code == 0
    shown = capsys.readouterr().out
    for command in ("init", "up", "down", "destroy", "status", "env", "put", "get", "logs"):
        assert command in shown


def test_unknown_command_is_a_usage_error(environ: dict[str, str]) -> None:
    result = cli(environ, "frobnicate")
    assert result.code == 2
    assert result.err.startswith("error:") and "fix:" in result.err


def test_init_writes_a_spec_that_parses_and_refuses_to_overwrite(
    environ: dict[str, str], tmp_path: Path
) -> None:
    target = tmp_path / "cluster.yaml"
    assert cli(environ, "init", "--members", "5", "--name", "pg", "-o", str(target)).code == 0
    parsed = spec.parse(target.read_text())
    assert [m.name for m in parsed.members] == [f"dcs-0{i}" for i in range(5)]
    assert parsed.name == "pg"
    assert "# " in target.read_text()  # annotated
    again = cli(environ, "init", "-o", str(target))
    assert again.code == 1 and "already exists" in again.err


def test_init_with_even_members_warns(environ: dict[str, str]) -> None:
    result = cli(environ, "init", "--members", "4")
    assert result.code == 0
    assert "warning:" in result.err and "odd" in result.err


def test_init_with_a_bad_name_is_a_spec_error(environ: dict[str, str]) -> None:
    result = cli(environ, "init", "--name", "Not_DNS")
    assert result.code == 3
    assert "name" in result.err and "Traceback" not in result.err


def test_unknown_cluster_says_how_to_create_it(environ: dict[str, str]) -> None:
    result = cli(environ, "status", "--cluster", "nope")
    assert result.code == 1
    assert "no cluster named 'nope'" in result.err and "dcsctl up" in result.err


def test_missing_spec_file(environ: dict[str, str], tmp_path: Path) -> None:
    result = cli(environ, "up", "-f", str(tmp_path / "absent.yaml"))
    assert result.code == 3
    assert "cannot read spec" in result.err and "dcsctl init" in result.err


def test_spec_and_cluster_together_are_refused(environ: dict[str, str], tmp_path: Path) -> None:
    result = cli(environ, "status", "-f", str(tmp_path / "x.yaml"), "--cluster", "x")
    assert result.code == 1 and "only one" in result.err


def test_destroy_asks_and_a_no_changes_nothing(
    environ: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec_file = tmp_path / "c.yaml"
    assert cli(environ, "init", "--members", "1", "-o", str(spec_file)).code == 0
    state = Path(environ["DCSCTL_HOME"]) / "dcs"
    state.mkdir(parents=True)
    (state / "keep").write_text("x")
    monkeypatch.setattr(sys, "stdin", Terminal("n\n"))
    result = cli(environ, "destroy", "-f", str(spec_file))
    assert result.code == 1 and "cancelled" in result.err
    assert (state / "keep").exists()


class Terminal(io.StringIO):
    """Typed answers, from what looks like a terminal."""

    def isatty(self) -> bool:
        return True


DESTRUCTIVE = [("destroy",), ("member", "remove", "dcs-01"), ("member", "replace", "dcs-01"),
               ("patroni", "remove", "demo"), ("certs", "rotate", "--ca", "--finish")]


@pytest.mark.parametrize("argv", DESTRUCTIVE, ids=" ".join)
def test_destructive_commands_without_a_terminal_need_yes(
    environ: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    argv: tuple[str, ...],
) -> None:
    spec_file = tmp_path / "c.yaml"
    assert cli(environ, "init", "-o", str(spec_file)).code == 0
    state = Path(environ["DCSCTL_HOME"]) / "dcs"
    # A CA rotation under way (its incoming CA): `--finish` has one to finish.
    (state / "pki").mkdir(parents=True)
    (state / "pki" / "ca-next.crt").write_text("x")
    # A script's stdin: a "y" there is not a person's answer.
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))
    result = cli(environ, *argv, "-f", str(spec_file))
    assert result.code == 1, result.err
    assert "needs a confirmation and there is no terminal" in result.err
    assert "--yes" in result.err
    monkeypatch.setattr(sys, "stdin", Terminal("n\n"))
    declined = cli(environ, *argv, "-f", str(spec_file))
    assert declined.code == 1 and "cancelled" in declined.err, declined.err


def test_unexpected_errors_have_no_traceback_unless_debug(
    environ: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*_: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(spec, "lab_spec", explode)
    plain = cli(environ, "init")
    assert plain.code == 1 and "boom" in plain.err and "Traceback" not in plain.err
    debug = cli(environ, "--debug", "init")
    assert "Traceback" in debug.err


def _in_fresh_python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=60, cwd=REPO)
    return done.stdout


def test_each_command_is_listed_under_the_module_that_registers_it() -> None:
    """A run imports only its command's module (COMMAND_MODULES): the map must be exact."""
    for module in sorted(set(COMMAND_MODULES.values())):
        shown = _in_fresh_python(
            "import typer, dcsctl.cli.common as c, dcsctl.cli." + module + "\n"
            "print(' '.join(typer.main.get_command(c.app).commands))"
        ).split()
        listed = [name for name, owner in COMMAND_MODULES.items() if owner == module]
        assert sorted(shown) == sorted(listed), module


def test_backup_loads_neither_deployment_nor_cryptography() -> None:
    """`dcsctl backup` is timed against etcdctl: keep the other commands' imports out."""
    loaded = _in_fresh_python(
        "import sys\n"
        "from dcsctl.cli import main\n"
        "main(['backup', '--help'], {})\n"
        "print(' '.join(sorted(sys.modules)))"
    ).splitlines()[-1].split()  # after the help text
    for heavy in ("dcsctl.ops.deploy", "dcsctl.ops.lifecycle", "dcsctl.ops.restore",
                  "dcsctl.pki", "cryptography", "matplotlib"):
        assert heavy not in loaded


def test_version_names_dcsctl_and_the_etcd_it_would_use(environ: dict[str, str]) -> None:
    environ["DCSCTL_ETCD_BIN_DIR"] = str(REPO / ".venv" / "bin")
    result = cli(environ, "--version")
    assert result.code == 0
    shown = result.out.splitlines()
    assert shown[0].startswith("dcsctl ")
    assert shown[1].startswith("etcd 3.") and str(REPO / ".venv" / "bin" / "etcd") in shown[1]


def test_version_without_etcd_says_so(environ: dict[str, str], tmp_path: Path) -> None:
    environ["DCSCTL_ETCD_BIN_DIR"] = str(tmp_path)  # holds no etcd
    result = cli(environ, "--version")
    assert result.code == 0
    assert "etcd: none found" in result.out


def test_help_groups_commands_by_what_a_user_is_doing(
    environ: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(environ, "--help").code == 0
    shown = capsys.readouterr().out
    panels = ["Set up", "Look", "Protect", "Change", "Patroni"]
    places = [shown.index(f"─ {panel} ") for panel in panels]
    assert places == sorted(places)
    set_up = shown[places[0]:places[1]]
    assert all(c in set_up for c in ("init", "up", "preflight", "down", "destroy"))
    assert "restore" in shown[places[2]:places[3]]
    assert "<bool>" not in shown


def test_no_option_help_shows_a_type_for_a_flag(
    environ: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    for command in ("up", "status", "destroy", "restore", "check"):
        assert cli(environ, command, "--help").code == 0
        shown = capsys.readouterr().out
        assert "<bool>" not in shown, command
        assert "--json" in shown or "--yes" in shown or "perf" in shown, command


def test_shell_completion_completes_commands() -> None:
    done = subprocess.run(
        [str(REPO / ".venv" / "bin" / "dcsctl")], capture_output=True, text=True, timeout=60,
        env={"_DCSCTL_COMPLETE": "complete_bash", "COMP_WORDS": "dcsctl mai",
             "COMP_CWORD": "1", "PATH": "/usr/bin:/bin"}, check=False)
    assert done.stdout.split() == ["maintenance"]


def test_init_for_the_lab_writes_no_remote_root(environ: dict[str, str]) -> None:
    lab = cli(environ, "init")
    assert lab.code == 0 and "members:" in lab.out
    assert "remote_root" not in lab.out


def test_help_text_flows_instead_of_keeping_the_docstrings_line_breaks(
    environ: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """The command list shows each command's whole first paragraph, wrapped to the
    terminal, not cut at the docstring's first line break."""
    cli(environ, "--help")
    listing = capsys.readouterr().out
    text = " ".join(row.strip("│ ") for row in listing.splitlines())
    entry = text.split(" preflight ", 1)[1].split(" down ", 1)[0]
    assert " ".join(entry.split()).endswith(
        "init system, clock, free space, ports, fsync, round trip, etcd; lab: etcd, ports)."
    ), entry
