"""Attack probes against a running lab cluster, each judged by the answer the server gives.

A probe passes only when the server answers and its answer is no, in etcd's own words: a
TLS alert, an HTTP 400/401/403 whose body says why (etcd's error: "authentication failed",
"permission denied", ...; a bare status proves nothing), a gRPC PermissionDenied, dcsctl's
own refusal, or the server hanging up on a connection it accepted *while the same address
and port answer the right credential at once* (a hang-up alone may be a dying server).
Connection refused and timeouts prove nothing (a dead cluster refuses everything) and are
"inconclusive". Every run starts and ends with positive controls — the admin certificate
is accepted on every client port and reads a canary key, a member's certificate is
accepted on the peer port — and a run whose controls fail, before or after, is invalid,
whatever its probes say.

Shared by tests/security and scripts/reliability_report.py, which publishes the table.
"""

from __future__ import annotations

import base64
import datetime as dt
import enum
import http.client
import json
import shutil
import socket
import ssl
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dcsctl import pki
from dcsctl.identity import Identity
from dcsctl.spec import KeyType
from tests.support.lab import VENV_BIN, LabCluster

CANARY_KEY, CANARY_VALUE = "/dcsctl-probe/canary", "canary-value"
TIMEOUT_S = 5


class Verdict(enum.StrEnum):
    REFUSED = "refused"  # the server answered, and said no
    ACCEPTED = "ACCEPTED"  # the server let it through (a hole, unless it is a control)
    INCONCLUSIVE = "inconclusive"  # no answer: nothing listening, a timeout, not prepared


@dataclass(frozen=True)
class Answer:
    verdict: Verdict
    detail: str


@dataclass(frozen=True)
class Probe:
    name: str
    attempt: Callable[[LabCluster], Answer]


@dataclass(frozen=True)
class ProbeResult:
    name: str
    verdict: Verdict
    detail: str

    @property
    def refused(self) -> bool:
        return self.verdict is Verdict.REFUSED


@dataclass(frozen=True)
class ProbeRun:
    controls: list[ProbeResult]  # each must be ACCEPTED, or the run proves nothing
    results: list[ProbeResult]
    controls_after: list[ProbeResult] = field(default_factory=list)  # re-run at the end

    @property
    def valid(self) -> bool:
        return (bool(self.controls) and len(self.controls_after) == len(self.controls)
                and all(c.verdict is Verdict.ACCEPTED
                        for c in self.controls + self.controls_after))

    @property
    def passed(self) -> bool:
        return self.valid and all(r.refused for r in self.results)


# -- how answers are judged ----------------------------------------------------------------

HANG_UPS = (ssl.SSLEOFError, ConnectionResetError, BrokenPipeError,
            http.client.RemoteDisconnected)

# etcd's own words for no, as its JSON gateway and Go's TLS server put them in a 4xx body.
REFUSALS = ("authentication failed", "permission denied", "user name is empty",
            "user name not found", "invalid auth token", "auth: revision in header is old",
            "HTTP request to an HTTPS server")


def judge_failure(exc: BaseException) -> Answer:
    """What an exception says: the server's no, or no answer at all. A hang-up is only a
    candidate refusal (HANG_UP_UNCONFIRMED); `_https` confirms it against a control."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return Answer(Verdict.INCONCLUSIVE, f"we refused the server's certificate: {exc}")
    if isinstance(exc, ssl.SSLError) and "ALERT" in (exc.reason or ""):
        return Answer(Verdict.REFUSED, f"TLS alert {exc.reason}")
    if isinstance(exc, HANG_UPS):
        return Answer(Verdict.INCONCLUSIVE,
                      f"{HANG_UP_UNCONFIRMED} ({type(exc).__name__})")
    if isinstance(exc, ConnectionRefusedError):
        return Answer(Verdict.INCONCLUSIVE, "connection refused: nothing listening")
    if isinstance(exc, TimeoutError):
        return Answer(Verdict.INCONCLUSIVE, f"no answer within {TIMEOUT_S} s")
    return Answer(Verdict.INCONCLUSIVE, f"{type(exc).__name__}: {exc}")


HANG_UP_UNCONFIRMED = "the server closed the connection"


def judge_status(status: int, body: bytes = b"") -> Answer:
    """An HTTP answer: 2xx let through; 400/401/403 a refusal only when the body gives
    etcd's reason (a proxy, a crashing handler or a wrong path also say 400)."""
    text = body.decode(errors="replace")
    if status in {400, 401, 403}:
        reason = next((r for r in REFUSALS if r.lower() in text.lower()), None)
        if reason is not None:
            return Answer(Verdict.REFUSED, f"HTTP {status}: {reason}")
        return Answer(Verdict.INCONCLUSIVE,
                      f"HTTP {status} without etcd's reason: {text.strip()[:80]!r}")
    if 200 <= status < 300:
        return Answer(Verdict.ACCEPTED, f"HTTP {status}")
    return Answer(Verdict.INCONCLUSIVE, f"HTTP {status}")


def _worst(answers: Sequence[Answer]) -> Answer:
    """Several attempts in one probe: one hole is a hole; one non-answer proves nothing."""
    for verdict in (Verdict.ACCEPTED, Verdict.INCONCLUSIVE):
        if any(a.verdict is verdict for a in answers):
            return Answer(verdict, "; ".join(a.detail for a in answers if a.verdict is verdict))
    return Answer(Verdict.REFUSED, "; ".join(dict.fromkeys(a.detail for a in answers)))


# -- attempts ---------------------------------------------------------------------------------

def _context(ca: Path | None, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca) if ca else None)
    context.check_hostname = False
    if ca is None:
        context.verify_mode = ssl.CERT_NONE  # an attacker does not care who answers
    if cert and key:
        context.load_cert_chain(str(cert), str(key))
    return context


def _https(lab: LabCluster, port: int, path: str, context: ssl.SSLContext,
           body: dict[str, object] | None = None, *, address: str | None = None) -> Answer:
    """One HTTPS request. A hang-up counts as a refusal only if the same address and port
    answer the right credential (admin on the client port, a member on the peer port)
    right after: then the listener is alive and it was this credential it hung up on."""
    address = address or lab.addresses()[0]
    return _confirmed_hang_up(lab, address, port, _request(address, port, path, context, body))


def _request(address: str, port: int, path: str, context: ssl.SSLContext,
             body: dict[str, object] | None = None) -> Answer:
    connection = http.client.HTTPSConnection(address, port, context=context,
                                             timeout=TIMEOUT_S)
    try:
        if body is None:
            connection.request("GET", path)
        else:
            connection.request("POST", path, json.dumps(body),
                               {"Content-Type": "application/json"})
        response = connection.getresponse()
        return judge_status(response.status, response.read(2000))
    except (OSError, http.client.HTTPException) as exc:
        return judge_failure(exc)
    finally:
        connection.close()


def _etcdctl(lab: LabCluster, cert: Path, key: Path, *argv: str) -> Answer:
    """etcdctl over gRPC, as an attacker holding `cert` would use it."""
    bin_dir = Path(lab.environ.get("DCSCTL_ETCD_BIN_DIR", str(VENV_BIN)))
    command = [str(bin_dir / "etcdctl"), f"--endpoints=https://{lab.addresses()[0]}:2379",
               f"--cacert={_ca(lab)}", f"--cert={cert}", f"--key={key}",
               f"--dial-timeout={TIMEOUT_S}s", f"--command-timeout={TIMEOUT_S}s", *argv]
    done = subprocess.run(command, capture_output=True, text=True, timeout=4 * TIMEOUT_S,
                          env={"PATH": "/usr/bin:/bin"}, check=False)
    last = (done.stderr.strip().splitlines() or [""])[-1]
    if done.returncode == 0:
        shown = done.stdout.strip().replace("\n", " ")[:60]
        return Answer(Verdict.ACCEPTED if shown else Verdict.INCONCLUSIVE,
                      f"answered {shown!r}" if shown else "answered with nothing")
    if any(word in done.stderr for word in ("PermissionDenied", "permission denied",
                                            "user name not found", "authentication failed",
                                            "Unauthenticated")):
        return Answer(Verdict.REFUSED, f"gRPC: {last.removeprefix('Error: ')}")
    return Answer(Verdict.INCONCLUSIVE, f"no answer: {last[:120]}")


def _forged(lab: LabCluster, role: pki.Role, common_name: str | None, *, own_ca: bool,
            expired: bool = False) -> tuple[Path, Path]:
    """A client certificate: from a foreign CA, or from the cluster's CA (maybe expired)."""
    now = dt.datetime.now(dt.UTC)
    if own_ca:
        pki_dir = lab.state / "pki"
        ca = Identity((pki_dir / "ca.crt").read_bytes(), (pki_dir / "ca.key").read_bytes())
    else:
        ca = pki.issue_ca("intruder-ca", KeyType.ECDSA_P256, 30, now)
    issued_at = now - dt.timedelta(days=40) if expired else now
    identity = pki.issue(ca, role, common_name=common_name, sans=pki.SubjectAltNames(),
                         key_type=KeyType.ECDSA_P256, days=30, now=issued_at)
    scratch = _scratch(lab)
    (scratch / "c.crt").write_bytes(identity.cert_pem)
    (scratch / "c.key").write_bytes(identity.key_pem)
    return scratch / "c.crt", scratch / "c.key"


def _scratch(lab: LabCluster) -> Path:
    scratch = lab.state.parent.parent / "probe-scratch"  # inside the test's own temp dir
    scratch.mkdir(exist_ok=True)
    return scratch


def _ca(lab: LabCluster) -> Path:
    return lab.state / "pki" / "ca.crt"


def _admin(lab: LabCluster) -> tuple[Path, Path]:
    return lab.state / "pki" / "admin.crt", lab.state / "pki" / "admin.key"


def _member(lab: LabCluster) -> tuple[Path, Path]:
    tls = lab.state / "members" / f"{lab.name}-0" / "tls"
    return tls / "member.crt", tls / "member.key"


def _patroni_bundle(lab: LabCluster) -> tuple[Path, Path] | Answer:
    """A real Patroni node's client certificate, made by `dcsctl patroni config`."""
    out = _scratch(lab) / "patroni-bundle"
    for argv in (("patroni", "add", "probe"),
                 ("patroni", "config", "probe", "--node", "probe-node", "--out", str(out))):
        done = lab.dcsctl(*argv)
        if done.code != 0:
            return Answer(Verdict.INCONCLUSIVE, f"could not prepare: {done.err.strip()[:120]}")
    return out / "probe-node.crt", out / "probe-node.key"


# -- controls: what must work, so that the refusals below mean something ---------------------

def _admin_on_every_client_port(lab: LabCluster) -> Answer:
    context = _context(_ca(lab), *_admin(lab))
    return _worst([_https(lab, 2379, "/health", context, address=a) for a in lab.addresses()])


def _admin_reads_the_canary(lab: LabCluster) -> Answer:
    written = _etcdctl(lab, *_admin(lab), "put", CANARY_KEY, CANARY_VALUE)
    if written.verdict is not Verdict.ACCEPTED:
        return written
    read = _etcdctl(lab, *_admin(lab), "get", CANARY_KEY, "--print-value-only")
    if read.verdict is Verdict.ACCEPTED and CANARY_VALUE not in read.detail:
        return Answer(Verdict.INCONCLUSIVE, f"read back the wrong value: {read.detail}")
    return read


def _member_on_every_peer_port(lab: LabCluster) -> Answer:
    context = _context(_ca(lab), *_member(lab))
    return _worst([_https(lab, 2380, "/members", context, address=a) for a in lab.addresses()])


CONTROLS: tuple[Probe, ...] = (
    Probe("control: admin certificate on every client port (/health)",
          _admin_on_every_client_port),
    Probe("control: admin certificate writes and reads a canary key (gRPC)",
          _admin_reads_the_canary),
    Probe("control: a member's certificate on every peer port (/members)",
          _member_on_every_peer_port),
)


# -- probes: each must be refused -------------------------------------------------------------

def _plain_http(lab: LabCluster) -> Answer:
    answers = []
    for address in lab.addresses():
        for port in (2379, 2380):
            connection = http.client.HTTPConnection(address, port, timeout=TIMEOUT_S)
            try:
                connection.request("GET", "/health")
                response = connection.getresponse()
                body = response.read(200)
            except (OSError, http.client.HTTPException) as exc:
                answers.append(_confirmed_hang_up(lab, address, port, judge_failure(exc)))
                continue
            finally:
                connection.close()
            # Go's TLS server answers plain http with 400 "... HTTP request to an HTTPS server".
            # Any other answer in plain http means plain http is served: a hole.
            judged = judge_status(response.status, body)
            answers.append(judged if judged.verdict is Verdict.REFUSED
                           else Answer(Verdict.ACCEPTED, f"{port}: {judged.detail}"))
    return _worst(answers)


def _confirmed_hang_up(lab: LabCluster, address: str, port: int, answer: Answer) -> Answer:
    """A hang-up on `address:port` is a refusal when the right certificate is answered
    there right after."""
    if not answer.detail.startswith(HANG_UP_UNCONFIRMED):
        return answer
    right = _context(_ca(lab), *(_admin(lab) if port == 2379 else _member(lab)))
    control = _request(address, port, "/health" if port == 2379 else "/members", right)
    if control.verdict is Verdict.ACCEPTED:
        return Answer(Verdict.REFUSED, f"{answer.detail}, while the right certificate "
                                       f"was answered")
    return Answer(Verdict.INCONCLUSIVE, f"{port}: {answer.detail}, and the right certificate "
                                        f"was not answered either ({control.detail})")


def _raw_tls_without_cert(lab: LabCluster) -> Answer:
    try:
        with socket.create_connection((lab.addresses()[0], 2379), timeout=TIMEOUT_S) as raw, \
                _context(None).wrap_socket(raw) as wrapped:
            wrapped.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            data = wrapped.recv(100)
    except OSError as exc:
        return _confirmed_hang_up(lab, lab.addresses()[0], 2379, judge_failure(exc))
    if data:
        return Answer(Verdict.ACCEPTED, f"answered {data[:40]!r}")
    return _confirmed_hang_up(lab, lab.addresses()[0], 2379, Answer(
        Verdict.INCONCLUSIVE, f"{HANG_UP_UNCONFIRMED} without a byte"))


def _cn_less_certificate_reads_nothing(lab: LabCluster) -> Answer:
    # With auth off, any certificate from the cluster's CA reads everything: 200 here.
    return _https(lab, 2379, "/v3/kv/range", _context(
        _ca(lab), *_forged(lab, pki.Role.CLIENT, None, own_ca=True)),
        {"key": base64.b64encode(CANARY_KEY.encode()).decode()})


def _member_certificate_reads_nothing(lab: LabCluster) -> Answer:
    return _etcdctl(lab, *_member(lab), "get", CANARY_KEY, "--print-value-only")


def _wrong_root_password(lab: LabCluster) -> Answer:
    """The wrong root password is refused, on the same path where the right one (the
    break-glass password in the state dir, sent in the body over TLS) is accepted: else a
    refusal could be a gateway that refuses everyone."""
    context = _context(_ca(lab), *_forged(lab, pki.Role.CLIENT, None, own_ca=True))
    password = (lab.state / "secrets" / "root.password").read_text().strip()
    right = _https(lab, 2379, "/v3/auth/authenticate", context,
                   {"name": "root", "password": password})
    if right.verdict is not Verdict.ACCEPTED:
        return Answer(Verdict.INCONCLUSIVE,
                      f"the right password was not accepted either: {right.detail}")
    wrong = _https(lab, 2379, "/v3/auth/authenticate", context,
                   {"name": "root", "password": "not-the-password"})
    return Answer(wrong.verdict, f"{wrong.detail} (the right password: {right.detail})")


def _patroni_certificate_on_the_peer_port(lab: LabCluster) -> Answer:
    bundle = _patroni_bundle(lab)
    if isinstance(bundle, Answer):
        return bundle
    return _https(lab, 2380, "/members", _context(_ca(lab), *bundle))


def _overlapping_namespaces(lab: LabCluster) -> Answer:
    answers = []
    # Inside an existing prefix, and around one: either way one user could write the
    # other's leader key.
    pairs = [(("probe-outer",), ("probe-inner", "--namespace", "/service/probe-outer/")),
             (("probe-in", "--namespace", "/probe/probe-out/"),
              ("probe-out", "--namespace", "/probe/"))]
    for first, second in pairs:
        prepared = lab.dcsctl("patroni", "add", *first)
        if prepared.code != 0:
            return Answer(Verdict.INCONCLUSIVE, f"could not prepare: {prepared.err.strip()[:120]}")
        attempt = lab.dcsctl("patroni", "add", *second)
        if attempt.code == 0:
            answers.append(Answer(Verdict.ACCEPTED, f"{second[0]} was added"))
        elif "overlaps" in attempt.err:
            answers.append(Answer(Verdict.REFUSED, "dcsctl: prefix overlaps another scope's"))
        else:
            answers.append(Answer(Verdict.INCONCLUSIVE, attempt.err.strip()[:120]))
    return _worst(answers)


PROBES: tuple[Probe, ...] = (
    Probe("plain http on every client and peer port", _plain_http),
    Probe("TLS without a client certificate",
          lambda lab: _https(lab, 2379, "/health", _context(_ca(lab)))),
    Probe("raw TLS without a client certificate, not verifying the server",
          _raw_tls_without_cert),
    Probe("/metrics without a client certificate",
          lambda lab: _https(lab, 2379, "/metrics", _context(_ca(lab)))),
    Probe("client certificate from a foreign CA",
          lambda lab: _https(lab, 2379, "/health", _context(
              _ca(lab), *_forged(lab, pki.Role.CLIENT, "someone", own_ca=False)))),
    Probe("foreign CA's certificate with CN=root",
          lambda lab: _https(lab, 2379, "/v3/kv/range", _context(
              _ca(lab), *_forged(lab, pki.Role.ADMIN, "root", own_ca=False)), {"key": "Lw=="})),
    Probe("expired certificate from the cluster's own CA with CN=root",
          lambda lab: _https(lab, 2379, "/health", _context(
              _ca(lab), *_forged(lab, pki.Role.ADMIN, "root", own_ca=True, expired=True)))),
    Probe("admin client certificate on the peer port",
          lambda lab: _https(lab, 2380, "/members", _context(_ca(lab), *_admin(lab)))),
    Probe("Patroni client certificate on the peer port", _patroni_certificate_on_the_peer_port),
    Probe("wrong root password on the JSON gateway (the right one accepted first)",
          _wrong_root_password),
    Probe("auth is on: a certificate without a user reads nothing",
          _cn_less_certificate_reads_nothing),
    Probe("a member's certificate on the client port reads no data (gRPC)",
          _member_certificate_reads_nothing),
    Probe("overlapping Patroni namespaces", _overlapping_namespaces),
)

def _revoked_certificate(lab: LabCluster) -> Answer:
    """A client certificate of the cluster's own CA, accepted until `dcsctl certs revoke`
    puts it on the CRL: afterwards every member must refuse it (etcd reads the CRL on each
    new connection). The acceptance before is this probe's own control."""
    cert, key = _forged(lab, pki.Role.CLIENT, None, own_ca=True)
    kept = _scratch(lab) / "revoked"
    kept.mkdir(exist_ok=True)
    cert, key = Path(shutil.copy(cert, kept / "c.crt")), Path(shutil.copy(key, kept / "c.key"))
    before = _https(lab, 2379, "/health", _context(_ca(lab), cert, key))
    if before.verdict is not Verdict.ACCEPTED:
        return Answer(Verdict.INCONCLUSIVE, f"not accepted even before revocation: {before.detail}")
    revoked = lab.dcsctl("certs", "revoke", str(cert), "--yes")
    if revoked.code != 0:
        return Answer(Verdict.INCONCLUSIVE, f"could not revoke: {revoked.err.strip()[:120]}")
    return _worst([_https(lab, 2379, "/health", _context(_ca(lab), cert, key), address=a)
                   for a in lab.addresses()])


# Certificate revocation; the member-removal and superseded-certificate cases are in
# tests/security/test_revocation.py.
REVOCATION_PROBES: tuple[Probe, ...] = (
    Probe("a revoked certificate of the cluster's own CA, on every client port",
          _revoked_certificate),
)


def attempt(lab: LabCluster, probe: Probe) -> ProbeResult:
    answer = probe.attempt(lab)
    return ProbeResult(probe.name, answer.verdict, answer.detail)


def run_probes(lab: LabCluster, probes: Sequence[Probe] = PROBES + REVOCATION_PROBES
               ) -> ProbeRun:
    """Controls first; when one fails the probes are not run: their answers would mean
    nothing. The controls run again at the end: a cluster that broke during the run (a
    probe that crashed a member) would otherwise pass its later probes by silence."""
    controls = [attempt(lab, control) for control in CONTROLS]
    if not all(c.verdict is Verdict.ACCEPTED for c in controls):
        return ProbeRun(controls, [ProbeResult(p.name, Verdict.INCONCLUSIVE,
                                               "not run: a positive control failed")
                                   for p in probes])
    results = [attempt(lab, probe) for probe in probes]
    return ProbeRun(controls, results, [attempt(lab, control) for control in CONTROLS])
