"""A real S3 server for the store tests: versitygw (built by scripts/setup into
.tools/bin) on one loopback address with TLS and its posix backend (a bucket is a
directory). Its default `--port :7070` listens on every interface, so the address is always
named. Started and stopped by PID; nothing else is signalled.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import os
import secrets
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from dcsctl import pki
from dcsctl.spec import KeyType
from tests.support import is_gone, poll, start_ticks

REPO = Path(__file__).resolve().parents[2]
VERSITYGW = REPO / ".tools" / "bin" / "versitygw"
ADDRESS = "127.0.0.1"


def free_port(address: str = ADDRESS) -> int:
    with socket.socket() as probe:
        probe.bind((address, 0))
        port: int = probe.getsockname()[1]
        return port


def accepts(address: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((address, port)) == 0


@dataclass
class Gateway:
    """One running versitygw and what a client needs to reach it."""

    root: Path  # the posix backend's directory: one folder per bucket
    port: int
    ca_file: Path
    access_key: str
    secret_key: str
    credentials_file: Path  # AWS shared-credentials format, 0600, for dcsctl
    log: Path
    process: subprocess.Popen[bytes] | None = None
    ticks: int | None = None
    # Run in this network namespace (the testbed's control side): its own loopback.
    netns: str | None = None

    @property
    def endpoint(self) -> str:
        return f"https://{ADDRESS}:{self.port}"

    def store_section(self, bucket: str = "dcs-backups", prefix: str = "prod/",
                      **extra: object) -> dict[str, object]:
        """The spec's backup section for this gateway."""
        s3: dict[str, object] = {
            "endpoint": self.endpoint, "bucket": bucket, "prefix": prefix,
            "region": "us-east-1", "path_style": True, "ca_file": str(self.ca_file),
            "credentials_file": str(self.credentials_file), **extra,
        }
        return {"store": {"s3": s3}}

    def make_bucket(self, name: str) -> Path:
        bucket = self.root / name
        bucket.mkdir(mode=0o755, exist_ok=True)
        return bucket

    def start(self) -> None:
        environ = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                   "ROOT_ACCESS_KEY": self.access_key, "ROOT_SECRET_KEY": self.secret_key}
        cert, key = self.ca_file.parent / "server.crt", self.ca_file.parent / "server.key"
        with self.log.open("ab") as log:
            # `ip netns exec` enters the namespace and execs: the PID stays versitygw's.
            enter = ["ip", "netns", "exec", self.netns] if self.netns else []
            self.process = subprocess.Popen(
                [*enter, str(VERSITYGW), "--port", f"{ADDRESS}:{self.port}",
                 "--cert", str(cert), "--key", str(key), "posix", str(self.root)],
                env=environ, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.ticks = start_ticks(self.process.pid)
        try:
            poll(lambda: self.process is not None and self.process.poll() is None
                 and self.listening(), 20, f"versitygw listening on {self.port}")
        except TimeoutError as exc:
            self.stop()
            raise RuntimeError(f"versitygw did not start: {self.log.read_text()[-2000:]}") from exc

    def listening(self) -> bool:
        if self.netns is None:
            return accepts(ADDRESS, self.port)
        probe = subprocess.run(
            ["ip", "netns", "exec", self.netns, sys.executable, "-c",
             "import socket,sys; s=socket.socket(); s.settimeout(0.5); "
             f"sys.exit(s.connect_ex(({ADDRESS!r}, {self.port})))"],
            capture_output=True, timeout=10, check=False)
        return probe.returncode == 0

    def signal(self, number: signal.Signals) -> None:
        """Signal our versitygw only: its PID, checked against its start time."""
        process = self.process
        if process is not None and process.poll() is None and \
                start_ticks(process.pid) == self.ticks:
            os.kill(process.pid, number)

    def stop(self) -> None:
        process = self.process
        if process is None:
            return
        self.signal(signal.SIGTERM)
        try:
            # versitygw drains open connections on SIGTERM; a test that held some open
            # (the slow-store relay) need not wait for that.
            process.wait(timeout=3)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            process.wait(timeout=10)
        poll(lambda: is_gone(process.pid), 10, "versitygw gone")
        self.process = None

    def kill(self) -> None:
        """A crash: SIGKILL, no clean shutdown."""
        if self.process is not None:
            self.signal(signal.SIGKILL)
            self.process.wait(timeout=10)
            self.process = None


def _tls(directory: Path) -> Path:
    now = dt.datetime.now(dt.UTC)
    ca = pki.issue_ca("versitygw test CA", KeyType.ECDSA_P256, 2, now)
    server = pki.issue(ca, pki.Role.MEMBER, common_name="versitygw",
                       sans=pki.SubjectAltNames(dns=("localhost",),
                                                ips=(ipaddress.ip_address(ADDRESS),)),
                       key_type=KeyType.ECDSA_P256, days=1, now=now)
    (directory / "ca.crt").write_bytes(ca.cert_pem)
    (directory / "server.crt").write_bytes(server.cert_pem)
    key = directory / "server.key"
    key.write_bytes(server.key_pem)
    key.chmod(0o600)
    return directory / "ca.crt"


def write_credentials(path: Path, access_key: str, secret_key: str) -> Path:
    path.write_text(f"[default]\naws_access_key_id = {access_key}\n"
                    f"aws_secret_access_key = {secret_key}\n")
    path.chmod(0o600)
    return path


@contextlib.contextmanager
def versitygw(workdir: Path, *, root: Path | None = None,
              buckets: tuple[str, ...] = ("dcs-backups",),
              netns: str | None = None) -> Iterator[Gateway]:
    """A running versitygw; stopped (by PID) at exit, pass or fail."""
    if not VERSITYGW.exists():
        raise RuntimeError(f"{VERSITYGW} is missing: run scripts/setup")
    tls = workdir / "gw-tls"
    tls.mkdir(parents=True, exist_ok=True)
    data = root or workdir / "gw-data"
    data.mkdir(parents=True, exist_ok=True)
    access, secret = f"dcsctl{secrets.token_hex(4)}", secrets.token_urlsafe(24)
    gateway = Gateway(data, free_port(), _tls(tls), access, secret,
                      write_credentials(workdir / "s3-credentials", access, secret),
                      workdir / "versitygw.log", netns=netns)
    for bucket in buckets:
        gateway.make_bucket(bucket)
    gateway.start()
    try:
        yield gateway
    finally:
        gateway.stop()
