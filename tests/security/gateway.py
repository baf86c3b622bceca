"""etcd's JSON gateway as Patroni uses it: a CN-less client certificate for TLS, a user
name and password for the identity, a token in the Authorization header."""

from __future__ import annotations

import base64
import http.client
import json
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@dataclass(frozen=True)
class WatchEvent:
    key: str
    value: str


@dataclass(frozen=True)
class WatchOutcome:
    """What a watch delivered up to the marker event, or why it ended before it."""

    events: tuple[WatchEvent, ...]
    refused: str  # etcd's reason when it cancelled the watch or never created it ("" if not)


class Gateway:
    def __init__(self, host: str, bundle: Path, node: str, user: str, password: str,
                 port: int = 2379) -> None:
        context = ssl.create_default_context(cafile=str(bundle / "ca.crt"))
        context.check_hostname = False
        context.load_cert_chain(str(bundle / f"{node}.crt"), str(bundle / f"{node}.key"))
        self.host, self.port, self.context = host, port, context
        self.token = ""
        self.token = str(self.call("/v3/auth/authenticate",
                                   {"name": user, "password": password})[1]["token"])

    def _connection(self, timeout: float) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(self.host, self.port, context=self.context,
                                           timeout=timeout)

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = self.token
        return headers

    def call(self, path: str, body: dict[str, object]) -> tuple[int, dict[str, object]]:
        connection = self._connection(10)
        try:
            connection.request("POST", path, json.dumps(body), self._headers())
            response = connection.getresponse()
            return response.status, json.loads(response.read() or b"{}")
        finally:
            connection.close()

    def get(self, key: str) -> tuple[int, dict[str, object]]:
        return self.call("/v3/kv/range", {"key": b64(key)})

    def put(self, key: str, value: str) -> tuple[int, dict[str, object]]:
        return self.call("/v3/kv/put", {"key": b64(key), "value": b64(value)})

    def watch_until(self, key: str, range_end: str, marker: str, *, timeout: float,
                    started: object = None) -> WatchOutcome:
        """Open a watch on [key, range_end) and read its events until `marker` arrives.

        Events come in revision order on one stream, so once the marker (written after
        everything else) has arrived, every earlier event this watch would ever deliver has
        arrived too: no waiting for something that should not happen. `started` is called
        once the watch is created (to write the keys)."""
        connection = self._connection(timeout)
        body = {"create_request": {"key": b64(key), "range_end": b64(range_end)}}
        try:
            connection.request("POST", "/v3/watch", json.dumps(body), self._headers())
            response = connection.getresponse()
            if response.status != 200:
                return WatchOutcome((), f"HTTP {response.status}: {response.read()[:200]!r}")
            events: list[WatchEvent] = []
            for message in _messages(response):
                if "error" in message:
                    return WatchOutcome(tuple(events), json.dumps(message["error"]))
                result = message.get("result", {})
                if result.get("canceled"):
                    return WatchOutcome(tuple(events), result.get("cancel_reason", "canceled"))
                if result.get("created") and callable(started):
                    started()
                for event in result.get("events", []):
                    kv = event.get("kv", {})
                    found = WatchEvent(base64.b64decode(kv.get("key", "")).decode(),
                                       base64.b64decode(kv.get("value", "")).decode())
                    events.append(found)
                    if found.key == marker:
                        return WatchOutcome(tuple(events), "")
            return WatchOutcome(tuple(events), "the stream ended")
        finally:
            connection.close()


def _messages(response: http.client.HTTPResponse) -> Iterator[dict[str, dict[str, object]]]:
    """The gateway streams one JSON object per line."""
    while line := response.readline():
        if line.strip():
            yield json.loads(line)
