"""A real Patroni + PostgreSQL node on loopback, run as the unprivileged `postgres` user.

Shared by the acceptance tests and the leader-kill benchmark.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from tests.support import poll
from tests.support.lab import REPO

PATRONI_BIN = REPO / ".tools" / "patroni" / "bin"
OS_USER = "postgres"  # PostgreSQL refuses to run as root


def postgres_bin_dir() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"),
                   key=lambda p: int(p.parent.parent.name))
    if not found:
        raise RuntimeError("PostgreSQL is not installed: run scripts/setup")
    return found[-1].parent


@dataclass
class PatroniNode:
    name: str
    address: str
    workdir: Path
    config_file: Path
    process: subprocess.Popen[bytes] | None = None
    netns: str | None = None  # run in this network namespace (the testbed's control side)
    rest_ca: Path | None = None  # the REST API serves https with a certificate of this CA

    @property
    def api(self) -> str:
        return f"{'https' if self.rest_ca else 'http'}://{self.address}:8008"

    def start(self) -> None:
        log = (self.workdir / "patroni.log").open("ab")
        argv = [str(PATRONI_BIN / "patroni"), str(self.config_file)]
        user: str | None = OS_USER
        if self.netns is not None:  # entering a namespace needs root: drop to postgres after
            argv = [_tool("ip"), "netns", "exec", self.netns, _tool("setpriv"),
                    f"--reuid={OS_USER}", f"--regid={OS_USER}", "--init-groups", "--", *argv]
            user = None
        self.process = subprocess.Popen(
            argv, user=user, cwd=self.workdir, stdout=log, stderr=log,
            env={"PATH": f"{PATRONI_BIN}:/usr/bin:/bin", "HOME": str(self.workdir)},
            start_new_session=True,
        )

    def state(self) -> dict[str, object]:
        try:
            context = (ssl.create_default_context(cafile=str(self.rest_ca))
                       if self.rest_ca else None)
            with urllib.request.urlopen(f"{self.api}/patroni", timeout=2,
                                        context=context) as response:
                data = json.loads(response.read())
        except (urllib.error.URLError, OSError, ValueError):
            return {}
        assert isinstance(data, dict)
        return data

    def role(self) -> str:
        return str(self.state().get("role", UNREACHABLE))

    def wait_primary(self, timeout: float = 120) -> None:
        poll(lambda: self.role() == "primary" and self.state().get("state") == "running",
                 timeout, f"{self.name} did not become primary")

    def patronictl(self, *argv: str) -> str:
        done = subprocess.run(
            [str(PATRONI_BIN / "patronictl"), "-c", str(self.config_file), *argv],
            user=OS_USER, capture_output=True, text=True, timeout=60, check=False,
            env={"PATH": f"{PATRONI_BIN}:/usr/bin:/bin", "HOME": str(self.workdir)},
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def log_tail(self, lines: int = 30) -> str:
        path = self.workdir / "patroni.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """Stop Patroni (it stops PostgreSQL), by our own PID; SIGKILL the group if stuck."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

# A REST API too slow to answer within 2 s on a busy machine is no answer ("unreachable"),
# not a demotion; a real demotion also restarts PostgreSQL, which the tests check by its
# start time.
UNREACHABLE = "unreachable"


class RoleSampler:
    """Patroni's role every 0.5 s in a thread while the block runs (bounded: 300 s)."""

    def __init__(self, node: PatroniNode) -> None:
        self.node = node
        self.roles: list[str] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + 300
        while not self._done.is_set() and time.monotonic() < deadline:
            self.roles.append(self.node.role())
            self._done.wait(0.5)

    def __enter__(self) -> RoleSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self._thread.join(timeout=10)

    def observe(self, seconds: float) -> None:
        """Let the sampler watch for a window (Patroni's ttl: a lost lock shows by then)."""
        self._done.wait(seconds)

    def never_demoted(self) -> bool:
        """Every answer was `primary`, and at least half the samples were answered."""
        answered = [role for role in self.roles if role != UNREACHABLE]
        return len(answered) >= len(self.roles) / 2 and set(answered) == {"primary"}


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is missing")
    return found


@dataclass(frozen=True)
class RestTls:
    """Patroni's REST API over https: its certificate and key (readable by postgres), and
    the CA that signed them."""

    certfile: Path
    keyfile: Path
    ca: Path


@contextlib.contextmanager
def patroni_node(
    scope: str, name: str, address: str, etcd3_section: dict[str, object] | None,
    bundle: Path | None, namespace: str = "/service/", netns: str | None = None, *,
    etcd3_file: Path | None = None, timing: tuple[int, int, int] = (30, 10, 10),
    rest_tls: RestTls | None = None,
) -> Iterator[PatroniNode]:
    """Write a patroni.yml around dcsctl's `etcd3:` section, start Patroni, stop it after.

    With `etcd3_file` (a deployed bundle's etcd3.yml, used where it lies) Patroni runs on
    a configuration directory: patroni.yml plus a link to that file, as on a database
    host where dcsctl deploys the bundle. `timing` is (ttl, loop_wait, retry_timeout).
    """
    workdir = Path(tempfile.mkdtemp(prefix=f"dcsctl-patroni-{name}-"))
    workdir.chmod(0o755)
    user = pwd.getpwnam(OS_USER)
    section: dict[str, object] | None = None
    if etcd3_section is not None and bundle is not None:
        copied = workdir / "etcd"
        shutil.copytree(bundle, copied)
        section = dict(etcd3_section)
        for key in ("cacert", "cert", "key"):
            section[key] = str(copied / Path(str(section[key])).name)
    data_dir = workdir / "data"
    ttl, loop_wait, retry_timeout = timing
    config = {
        "scope": scope,
        "namespace": namespace,
        "name": name,
        "restapi": {"listen": f"{address}:8008", "connect_address": f"{address}:8008",
                    **({"certfile": str(rest_tls.certfile), "keyfile": str(rest_tls.keyfile)}
                       if rest_tls else {})},
        **({"ctl": {"cacert": str(rest_tls.ca)}} if rest_tls else {}),
        **({"etcd3": section} if section is not None else {}),
        "bootstrap": {
            "dcs": {"ttl": ttl, "loop_wait": loop_wait, "retry_timeout": retry_timeout,
                    "postgresql": {"parameters": {"max_connections": 20}}},
            "initdb": [{"encoding": "UTF8"}, {"auth-local": "trust"}],
        },
        "postgresql": {
            "listen": f"{address}:5432",
            "connect_address": f"{address}:5432",
            "data_dir": str(data_dir),
            "bin_dir": str(postgres_bin_dir()),
            "pgpass": str(workdir / "pgpass"),
            "authentication": {
                "superuser": {"username": "postgres", "password": "test-superuser"},
                "replication": {"username": "replicator", "password": "test-replicator"},
            },
            "parameters": {"unix_socket_directories": str(workdir),
                           "shared_buffers": "16MB"},
            "pg_hba": ["local all all trust", "host all all 127.0.0.0/8 md5",
                       "host replication replicator 127.0.0.0/8 md5"],
        },
    }
    config_dir = workdir / "config"
    config_dir.mkdir()
    config_file = config_dir / "patroni.yml"
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    if etcd3_file is not None:
        (config_dir / "zz-etcd3.yml").symlink_to(etcd3_file)
    for path in [workdir, *workdir.rglob("*")]:
        os.chown(path, user.pw_uid, user.pw_gid, follow_symlinks=False)
    config_file.chmod(0o600)
    target = config_dir if etcd3_file is not None else config_file
    node = PatroniNode(name, address, workdir, target, netns=netns,
                       rest_ca=rest_tls.ca if rest_tls else None)
    node.start()
    try:
        yield node
    finally:
        node.stop()
        shutil.rmtree(workdir, ignore_errors=True)
