"""The only module that speaks to Patroni's REST API: `GET /patroni`, `POST /reload`.

Plain http.client: two requests, no session, no dependency. https is verified against
the CA file the spec names for the node.
"""

from __future__ import annotations

import http.client
import json
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from dcsctl.errors import DcsctlError, EnvironmentProblem
from dcsctl.patroni_node import NodeState, http_date, parse_state


class RestApiUntrusted(EnvironmentProblem):
    """Patroni answers over https with a certificate dcsctl cannot verify (or the CA file
    cannot be read): the spec is wrong, which is never "Patroni not started yet"."""


# OpenSSL's verify codes for a certificate that does not name the host it was reached at.
_NAME_MISMATCH = {62, 64}  # X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH


@dataclass(frozen=True)
class Answer:
    state: NodeState
    node_time: int | None  # the node's clock (its Date header), epoch seconds


@dataclass(frozen=True)
class Timing:
    ttl: int
    loop_wait: int
    retry_timeout: int


class PatroniApi:
    def __init__(self, node: str, url: str, ca_file: str | None = None,
                 timeout: float = 5.0) -> None:
        self.node = node
        self.url = url.rstrip("/")
        self.ca_file = ca_file
        self.timeout = timeout

    def _connection(self) -> http.client.HTTPConnection:
        parts = urlsplit(self.url)
        host, port = parts.hostname or "", parts.port
        if parts.scheme == "https":
            try:
                context = ssl.create_default_context(cafile=self.ca_file)
            except (OSError, ValueError) as exc:  # missing, unreadable, or not PEM
                raise RestApiUntrusted(
                    f"{self.node}: rest_api_ca_file {self.ca_file} cannot be read as CA "
                    f"certificates ({exc})",
                    fix="set the node's rest_api_ca_file (patroni.scopes[].nodes[] in the "
                    "spec) to the PEM file of the CA that signed Patroni's restapi "
                    "certificate, on this machine",
                ) from exc
            return http.client.HTTPSConnection(host, port or 8008, timeout=self.timeout,
                                               context=context)
        return http.client.HTTPConnection(host, port or 8008, timeout=self.timeout)

    def _request(self, method: str, path: str) -> tuple[int, bytes, str | None]:
        connection = self._connection()
        try:
            connection.request(method, path)
            response = connection.getresponse()
            return response.status, response.read(), response.getheader("Date")
        except ssl.SSLCertVerificationError as exc:
            raise self._untrusted(exc) from exc
        except (OSError, http.client.HTTPException) as exc:
            raise EnvironmentProblem(
                f"{self.node}: Patroni's REST API at {self.url} does not answer ({exc})",
                fix=f"check that Patroni runs on {self.node} and that restapi listens on "
                f"{self.url} (patroni.scopes[].nodes[].rest_api in the spec)",
            ) from exc
        finally:
            connection.close()

    def _untrusted(self, exc: ssl.SSLCertVerificationError) -> RestApiUntrusted:
        trust = (f"rest_api_ca_file {self.ca_file}" if self.ca_file
                 else "the system's trusted CAs (no rest_api_ca_file in the spec)")
        host = urlsplit(self.url).hostname
        if exc.verify_code in _NAME_MISMATCH:
            fix = (f"Patroni's restapi certificate must name {host} (a subjectAltName IP "
                   "or DNS entry): reissue it, or set the node's rest_api to a name it "
                   "carries")
        else:
            fix = ("set the node's rest_api_ca_file (patroni.scopes[].nodes[] in the spec) "
                   "to the CA that signed Patroni's restapi certificate (restapi.certfile "
                   f"in patroni.yml on {self.node})")
        return RestApiUntrusted(
            f"{self.node}: Patroni's REST API at {self.url} presents a certificate that "
            f"{trust} does not verify ({exc.verify_message})", fix=fix)

    def state(self) -> Answer:
        """GET /patroni. A node whose PostgreSQL is down answers 503 with the same body."""
        status, body, date = self._request("GET", "/patroni")
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise DcsctlError(
                f"{self.node}: {self.url}/patroni answered {status} without JSON",
                fix="check that this URL is Patroni's REST API",
            ) from exc
        if not isinstance(data, dict):
            raise DcsctlError(f"{self.node}: {self.url}/patroni answered {status} "
                              "with unexpected JSON", fix="check that this URL is Patroni's")
        return Answer(parse_state(data), http_date(date))

    def _config(self) -> dict[str, object]:
        status, body, _ = self._request("GET", "/config")
        try:
            data = json.loads(body) if status == 200 else {}
        except ValueError:
            data = {}
        return data if isinstance(data, dict) else {}

    def failsafe(self) -> bool | None:
        """The scope's `failsafe_mode` (None: not set)."""
        value = self._config().get("failsafe_mode")
        return value if isinstance(value, bool) else None

    def timing(self) -> Timing:
        """GET /config: the scope's dynamic configuration (ttl, loop_wait, retry_timeout);
        Patroni's defaults where it has none."""
        data = self._config()

        def number(key: str, default: int) -> int:
            value = data.get(key)
            return value if isinstance(value, int) and not isinstance(value, bool) else default

        return Timing(number("ttl", 30), number("loop_wait", 10), number("retry_timeout", 10))

    def reload(self) -> None:
        """POST /reload: Patroni re-reads its configuration files (202 scheduled)."""
        status, body, _ = self._request("POST", "/reload")
        if status not in (200, 202):
            raise DcsctlError(
                f"{self.node}: POST {self.url}/reload answered {status} "
                f"({body.decode(errors='replace').strip()[:200]})",
                fix="if Patroni's REST API requires authentication, set the node's "
                "`reload: systemd` (systemctl reload) in the spec",
            )
