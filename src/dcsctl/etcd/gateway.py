"""etcd's JSON gateway as Patroni uses it: a CN-less client certificate opens TLS, a user
name and password give a token, the token goes in the Authorization header. `patroni
doctor` speaks it to prove what a node's user may do by real requests."""

from __future__ import annotations

import base64
import http.client
import json
from dataclasses import dataclass
from urllib.parse import urlsplit

from dcsctl.etcd.tls import ClientTls, client_context


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, object]

    @property
    def denied(self) -> bool:
        return self.status != 200 and "permission denied" in json.dumps(self.body)


class Gateway:
    def __init__(self, endpoint: str, tls: ClientTls, *, timeout: float = 5.0) -> None:
        parts = urlsplit(endpoint)
        self.host, self.port = parts.hostname or "", parts.port or 2379
        self.context = client_context(tls)
        self.timeout = timeout
        self.token = ""

    def call(self, path: str, body: dict[str, object]) -> Answer:
        connection = http.client.HTTPSConnection(self.host, self.port, context=self.context,
                                                 timeout=self.timeout)
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = self.token
        try:
            connection.request("POST", path, json.dumps(body), headers)
            response = connection.getresponse()
            raw = response.read() or b"{}"
            try:
                data = json.loads(raw)
            except ValueError:
                data = {"error": raw.decode(errors="replace")[:200]}
            return Answer(response.status, data if isinstance(data, dict) else {})
        finally:
            connection.close()

    def authenticate(self, user: str, password: str) -> Answer:
        answer = self.call("/v3/auth/authenticate", {"name": user, "password": password})
        self.token = str(answer.body.get("token", "")) if answer.status == 200 else ""
        return answer

    def get(self, key: str) -> Answer:
        return self.call("/v3/kv/range", {"key": _b64(key)})

    def put(self, key: str, value: str) -> Answer:
        return self.call("/v3/kv/put", {"key": _b64(key), "value": _b64(value)})

    def delete(self, key: str) -> Answer:
        return self.call("/v3/kv/deleterange", {"key": _b64(key)})
