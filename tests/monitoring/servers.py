"""Prometheus, Alertmanager, node_exporter (Debian's, from scripts/setup) and a webhook
receiver, each started by a test on its own loopback address and stopped by PID."""

from __future__ import annotations

import contextlib
import http.server
import json
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from dcsctl.wait import wait_until


@contextlib.contextmanager
def daemon(argv: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run `argv` until the block ends; stop it (TERM, then KILL) by its PID, pass or fail."""
    with log.open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def get_json(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=5) as answer:
        data = json.loads(answer.read())
    assert isinstance(data, dict)
    return data


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    def ready() -> bool:
        assert process.poll() is None, f"{process.args} exited:\n{log.read_text()[-2000:]}"
        return answers(url)

    wait_until(ready, timeout=30, what=f"{url} did not answer")


@contextlib.contextmanager
def node_exporter(address: str, textfiles: Path, logs: Path) -> Iterator[str]:
    """node_exporter with the textfile collector alone, on address:9100, ready; yields its
    metrics URL."""
    url = f"http://{address}:9100/metrics"
    log = logs / "node_exporter.log"
    with daemon(["prometheus-node-exporter", f"--web.listen-address={address}:9100",
                 "--collector.disable-defaults", "--collector.textfile",
                 f"--collector.textfile.directory={textfiles}"], log) as process:
        wait_ready(url, process, log)
        yield url


@contextlib.contextmanager
def prometheus(address: str, config_dir: Path, workdir: Path, logs: Path) -> Iterator[str]:
    """Prometheus on `dcsctl monitoring --out config_dir`'s configuration, on address:9090,
    ready; yields its URL."""
    url = f"http://{address}:9090"
    log = logs / "prometheus.log"
    with daemon(["prometheus", f"--config.file={config_dir}/prometheus.yml",
                 f"--storage.tsdb.path={workdir}/prometheus",
                 f"--web.listen-address={address}:9090"], log) as process:
        wait_ready(f"{url}/-/ready", process, log)
        yield url


@dataclass(frozen=True)
class Notification:
    received: float  # monotonic
    status: str
    alerts: tuple[dict[str, object], ...]


@dataclass
class Webhook:
    """Alertmanager's webhook receiver: records every notification with its arrival time."""

    address: str
    notifications: list[Notification] = field(default_factory=list)

    def __post_init__(self) -> None:
        received = self.notifications

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                received.append(Notification(time.monotonic(), body["status"],
                                             tuple(body["alerts"])))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer((self.address, 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.server.server_address[1]}/"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def first(self, alertname: str, status: str, after: float = 0.0, **labels: str
              ) -> Notification | None:
        for note in list(self.notifications):
            for alert in note.alerts:
                found = alert.get("labels", {})
                assert isinstance(found, dict)
                if (note.received >= after and alert.get("status") == status
                        and found.get("alertname") == alertname
                        and all(found.get(k) == v for k, v in labels.items())):
                    return note
        return None


def alertmanager_config(webhook_url: str) -> str:
    return json.dumps({
        "route": {"receiver": "test", "group_by": ["alertname", "cluster", "member"],
                  "group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h"},
        "receivers": [{"name": "test", "webhook_configs": [
            {"url": webhook_url, "send_resolved": True}]}],
    })
