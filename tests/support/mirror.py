"""An internal release mirror for the tests: etcd's release downloads as a site would
mirror them (ROOT/vX.Y.Z/etcd-vX.Y.Z-linux-amd64.tar.gz), served over HTTPS on loopback
by a process of its own, with the release data (VERSION ARCH SHA256 rows) that makes
`install: {method: release, version: X, mirror: URL}` work for the binaries built here.

    with release_mirror([Version(3, 7, 4)], tmp_path) as mirror:
        environ["DCSCTL_RELEASE_DATA"] = str(mirror.data_file)
        install = {"method": "release", "version": "3.7.4", "mirror": mirror.url,
                   "ca_file": str(mirror.ca_file)}

`netns`: serve inside a network namespace (the testbed's control side has a loopback of
its own). The server is stopped by its PID at exit, pass or fail.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.server
import ipaddress
import ssl
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from dcsctl import pki
from dcsctl.etcd.versions import Version
from dcsctl.spec import KeyType

ADDRESS = "127.0.0.1"


@dataclass(frozen=True)
class Mirror:
    url: str
    ca_file: Path
    data_file: Path
    root: Path

    def environ(self) -> dict[str, str]:
        return {"DCSCTL_RELEASE_DATA": str(self.data_file)}

    def install(self, version: Version) -> dict[str, str]:
        """The spec's install section for `version` from this mirror."""
        return {"method": "release", "version": str(version), "mirror": self.url,
                "ca_file": str(self.ca_file)}


def _tls_files(directory: Path) -> tuple[Path, Path, Path]:
    now = dt.datetime.now(dt.UTC)
    ca = pki.issue_ca("dcsctl test mirror CA", KeyType.ECDSA_P256, 2, now)
    server = pki.issue(ca, pki.Role.MEMBER, common_name=ADDRESS,
                       sans=pki.SubjectAltNames(ips=(ipaddress.ip_address(ADDRESS),)),
                       key_type=KeyType.ECDSA_P256, days=2, now=now)
    files = directory / "ca.crt", directory / "server.crt", directory / "server.key"
    for path, content in zip(files, (ca.cert_pem, server.cert_pem, server.key_pem),
                             strict=True):
        path.write_bytes(content)
    files[2].chmod(0o600)
    return files


def publish(versions: Sequence[Version], workdir: Path) -> tuple[Path, Path]:
    """The mirror's tree (ROOT/vX.Y.Z/etcd-vX.Y.Z-linux-amd64.tar.gz) of the binaries
    scripts/setup laid out, and the release data naming their digests."""
    from tests.support import pack_release
    from tests.support.lab import etcd_bin_dir

    root = workdir / "mirror"
    rows = []
    for version in versions:
        folder = root / f"v{version}"
        folder.mkdir(parents=True, exist_ok=True)
        _, digest = pack_release(etcd_bin_dir(version), folder)
        rows.append(f"{version}\tamd64\t{digest}")
    data_file = workdir / "release-data.tsv"
    data_file.write_text("\n".join(rows) + "\n")
    return root, data_file


def start(versions: Sequence[Version], workdir: Path,
          netns: str | None = None) -> tuple[Mirror, subprocess.Popen[str]]:
    """A running mirror and its server process (the caller stops it)."""
    root, data_file = publish(versions, workdir)
    ca_file, cert, key = _tls_files(workdir)
    argv = [sys.executable, "-m", "tests.support.mirror", str(root), str(cert), str(key)]
    if netns:
        argv = ["ip", "netns", "exec", netns, *argv]
    repo = Path(__file__).resolve().parents[2]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, cwd=repo)
    assert process.stdout is not None
    port = process.stdout.readline().strip()  # the server prints it once it listens
    if not port.isdigit():
        stop(process)
        raise RuntimeError(f"the mirror did not start (exit {process.poll()})")
    return Mirror(f"https://{ADDRESS}:{port}", ca_file, data_file, root), process


def stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def release_mirror(versions: Sequence[Version], workdir: Path,
                   netns: str | None = None) -> Iterator[Mirror]:
    mirror, process = start(versions, workdir, netns)
    try:
        yield mirror
    finally:
        stop(process)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """No line per request on the test run's stderr."""


def serve(root: str, cert: str, key: str) -> None:
    handler = partial(_QuietHandler, directory=root)
    server = http.server.ThreadingHTTPServer((ADDRESS, 0), handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    serve(*sys.argv[1:4])
