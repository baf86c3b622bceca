"""Bad input, generated: ≥ 200 malformed specs and command lines, each ends in a clear
dcsctl error (never a traceback) and writes nothing."""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dcsctl.errors import ExitCode
from dcsctl.spec import BINARY_DIRECTORIES, SYSTEM_DIRECTORIES
from tests.support.lab import VENV_BIN, kill_leftovers, run_cli

VALID: dict[str, Any] = {
    "name": "fuzz",
    "members": [{"name": f"f-{i}", "address": f"127.0.250.{10 + i}"} for i in range(3)],
}

not_dns = st.one_of(st.just(""), st.just("-x"), st.just("UPPER"), st.just("under_score"),
                    st.just("a" * 64), st.text(min_size=1).filter(lambda s: not s.isalnum()))
not_ip = st.one_of(st.just("127.0.0.300"), st.just("localhost"), st.just("10.0.0.1/8"),
                   st.text(alphabet="abcxyz:/", min_size=1), st.integers(), st.booleans())
bad_port = st.one_of(st.integers(max_value=1023), st.integers(min_value=65536),
                     st.text(min_size=1), st.none())
junk = st.one_of(st.text(), st.integers(), st.floats(allow_nan=False), st.booleans(),
                 st.lists(st.integers(), max_size=3), st.none())

segment = st.text(alphabet="abcxyz-_", min_size=1, max_size=6)
unnormalized = st.one_of(
    st.builds(lambda a, b: f"/{a}/../{b}", segment, segment),
    st.builds(lambda a: f"/{a}/./etcd", segment), st.builds(lambda a: f"/{a}//etcd", segment),
    st.builds(lambda a: f"/var/lib/{a}/", segment), st.builds(lambda a: f"//{a}", segment),
    st.builds(lambda a: f"{a}/etcd", segment),  # relative
)
system_dir = st.sampled_from(sorted(SYSTEM_DIRECTORIES - BINARY_DIRECTORIES))
MANAGED = ["config_file", "env_link", "cert_dir", "data_dir", "log_file"]
# The host must not start with '-': OpenSSH would read it as an option.
bad_destination = st.one_of(
    st.sampled_from(["-Fx", "-oProxyCommand=id", "admin@-p22", "-", "a b", "host:port"]),
    st.builds(lambda a: f"-{a}", segment), st.integers(), st.lists(st.text(), max_size=2))

MUTATIONS = st.one_of(
    st.tuples(st.just(("members", 0, "name")), not_dns),
    st.tuples(st.just(("members", 1, "address")), not_ip),
    st.tuples(st.just(("ports", "client")), bad_port),
    st.tuples(st.just(("ports", "peer")), bad_port),
    st.tuples(st.just(("tls", "key_type")), st.text().filter(
        lambda s: s not in {"ecdsa-p256", "rsa-2048", "rsa-4096"})),
    st.tuples(st.just(("tls", "leaf_days")), st.integers(max_value=0)),
    st.tuples(st.just(("etcd", "election_timeout_ms")), st.integers(max_value=49)),
    st.tuples(st.just(("etcd", "auto_compaction_retention")), st.just("forever")),
    st.tuples(st.just(("name",)), not_dns),
    st.tuples(st.just(("members",)), st.one_of(st.just([]), junk)),
    st.tuples(st.sampled_from([("surprise",), ("etcd", "heartbeat"), ("tls", "bits"),
                               ("members", 2, "role"), ("ssh", "password"),
                               ("install", "url"), ("paths", "home")]), junk),
    st.tuples(st.just(("members", 0, "ssh")), bad_destination),
    st.tuples(st.just(("members", 1, "remote_root")), st.one_of(unnormalized, st.integers())),
    st.tuples(st.sampled_from([("paths", key) for key in MANAGED]),
              st.one_of(system_dir, unnormalized, st.integers())),
    st.tuples(st.just(("paths", "bin_dir")), st.one_of(st.sampled_from(["/", "/etc", "/var/lib"]),
                                                       unnormalized)),
    st.tuples(st.just(("paths", "data_dir")),
              st.sampled_from(["/etc/dcs", "/etc/dcs/cert", "/var/cache/dcsctl"])),  # nested
    st.tuples(st.sampled_from([("ssh", "port"), ("ssh", "connect_timeout_s")]),
              st.one_of(st.integers(max_value=0), st.integers(min_value=65536))),
    st.tuples(st.just(("install", "method")), st.text().filter(
        lambda s: s not in {"apt", "release", "none"})),
    st.tuples(st.just(("install", "sha256")), st.text(max_size=70).filter(
        lambda s: len(s) != 64)),
)


def _apply(document: dict[str, Any], path: tuple[Any, ...], value: object) -> None:
    node: Any = document
    for part in path[:-1]:
        node = node.setdefault(part, {}) if isinstance(part, str) else node[part]
    node[path[-1]] = value


def _assert_clean_failure(argv: list[str], environ: dict[str, str], home: Path) -> None:
    result = run_cli(argv, environ)
    assert "Traceback" not in result.err, result.err
    assert result.code in {int(c) for c in ExitCode}
    if result.code != 0:
        assert result.err.startswith(("error:", "= [", "Usage", "warning:")) or \
            "error:" in result.err, result.err
    assert not list(home.rglob("cluster.json")), f"{argv} created a cluster"
    assert not list(home.rglob("*.key")), f"{argv} wrote keys"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations=st.lists(MUTATIONS, min_size=1, max_size=3))
def test_malformed_specs_end_in_a_spec_error(
    mutations: list[tuple[tuple[Any, ...], object]],
) -> None:
    document = copy.deepcopy(VALID)
    for path, value in mutations:
        try:
            _apply(document, path, value)
        except (IndexError, TypeError, AttributeError, KeyError):
            continue  # an earlier mutation removed what this one would change
    with tempfile.TemporaryDirectory() as scratch:
        home, spec_file = Path(scratch) / "home", Path(scratch) / "spec.yaml"
        spec_file.write_text(yaml.safe_dump(document))
        environ = {"DCSCTL_HOME": str(home), "DCSCTL_ETCD_BIN_DIR": str(VENV_BIN),
                   "PATH": "/usr/bin:/bin"}
        try:
            result = run_cli(["up", "-f", str(spec_file)], environ)
        finally:
            kill_leftovers(home)  # should a malformed spec ever start a member
        assert result.code == ExitCode.SPEC, (document, result.err)
        assert "fix:" in result.err and "Traceback" not in result.err
        assert not home.exists() or not any(home.iterdir())


@settings(max_examples=50, deadline=None)
@given(text=st.text(max_size=200))
def test_arbitrary_text_as_a_spec_is_refused(text: str) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        home, spec_file = Path(scratch) / "home", Path(scratch) / "spec.yaml"
        spec_file.write_text(text)
        result = run_cli(["status", "-f", str(spec_file)],
                         {"DCSCTL_HOME": str(home), "PATH": "/usr/bin:/bin"})
        assert result.code == ExitCode.SPEC, result.err
        assert "Traceback" not in result.err


WORDS = ["up", "down", "destroy", "status", "env", "put", "get", "logs", "backup", "list",
         "verify", "restore", "member", "add", "remove", "replace", "certs", "check",
         "rotate", "maintenance", "restart", "upgrade", "patroni", "config", "init",
         "revoke", "--superseded", "--keep-keys", "--patroni",
         "--json", "--yes", "--force", "-f", "--cluster", "--members", "--name", "--keep",
         "--max-age", "--to", "--bin-dir", "--address", "--node", "--namespace", "-n",
         "--warn-days", "0", "-1", "7d", "x", "/nonexistent", "Bad_Name", "127.0.0.300"]


@settings(max_examples=60, deadline=None)
@given(argv=st.lists(st.one_of(st.sampled_from(WORDS), st.text(max_size=12)), max_size=6))
def test_arbitrary_command_lines_fail_cleanly(argv: list[str]) -> None:
    if "-o" in argv or "--output" in argv:
        return
    with tempfile.TemporaryDirectory() as scratch:
        home, empty = Path(scratch) / "home", Path(scratch) / "no-etcd"
        empty.mkdir()
        environ = {"DCSCTL_HOME": str(home), "DCSCTL_ETCD_BIN_DIR": str(empty),
                   "PATH": "/usr/bin:/bin"}
        _assert_clean_failure(argv, environ, home)
