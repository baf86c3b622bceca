"""`dcsctl up` to a verified secure cluster vs the lab guide's steps, scripted, same run.

    .venv/bin/python benchmarks/bench_up.py [--rounds 5] [--etcd 3.6.16]

--etcd runs both sides on one of the versions scripts/setup laid out in .tools/etcd-<v>/bin
(default: the etcd next to dcsctl, the recommended one).

(a) dcsctl: `dcsctl up -f SPEC` (PKI, config, start, wait for health, RBAC + auth enable,
    status view); wall time of the command, which returns only once every member is
    healthy and auth is on. Checked afterwards (not timed) with etcdctl and the admin
    cert, then `dcsctl destroy -f SPEC --yes` (not timed).
(b) the lab guide (not in this repository; see docs/guide-defects.md), scripted
    faithfully: openssl RSA-4096 CA key and self-signed CA cert; per node an RSA-4096
    key, a CSR, an extension file (SANs: node name and FQDN, node IP, 127.0.0.1; EKU
    serverAuth,clientAuth) and `openssl x509 -req`
    signing, as in its etcd-sign-node.sh; three etcd processes configured through the
    guide's ETCD_* variables (client + peer TLS, client-cert-auth, peer-client-cert-auth,
    initial-cluster-state new), except that they listen and advertise https on the node
    IP (not 0.0.0.0 / http, which would clash with other clusters on this machine and
    defeat the health check: docs/guide-defects.md 1 and 3); wait until `etcdctl endpoint
    health` (node cert as client cert, the guide's ETCDCTL_* settings) succeeds on all 3;
    then `role add root`, `role grant-permission root --prefix=true readwrite /`,
    `user add root`, `user grant-role root root`, `auth enable`. Timing ends when
    `auth enable` returns; the PKI (openssl) time is reported separately. The guide's
    ssh/scp/tar distribution, chmod/chown and apt steps have no equivalent on one machine
    and are not timed. Then (not timed) auth is checked, the etcd PIDs are stopped and
    their temp dirs removed.

Rounds alternate which side goes first (odd rounds: dcsctl first). Both sides use the
loopback addresses 127.0.99.10-12 (ports 2379/2380) one after the other; the benchmark
waits for those ports to be free before each start. Its DCSCTL_HOME is a temp dir.
Every wait polls a condition with a deadline; every step is bounded (STEP_TIMEOUT_S).
Only PIDs started by this run are ever signalled. Results: a markdown table on stdout,
benchmarks/out/up.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from harness import (
    BIN,
    OUT,
    REPO,
    STEP_TIMEOUT_S,
    clean_environ,
    kill_recorded,
    poll,
    port_free,
    run,
    terminate_as_exit,
)

IPS = ("127.0.99.10", "127.0.99.11", "127.0.99.12")
ETCD_BIN = BIN  # the etcd both sides run (--etcd picks another)
CLIENT_PORT, PEER_PORT = 2379, 2380
CLUSTER = "bench"
GUIDE_PASSWORD = "bench-guide-password"  # throwaway cluster, inside this benchmark only
TARGET_UP_S = 2.0
TARGET_RATIO = 0.2


# -- helpers ---------------------------------------------------------------------------------









def ports_free() -> bool:
    return all(port_free(ip, port) for ip in IPS for port in (CLIENT_PORT, PEER_PORT))


def listening(ip: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((ip, port)) == 0




# -- (a) dcsctl ------------------------------------------------------------------------------

def write_spec(scratch: Path, env: dict[str, str]) -> Path:
    """`dcsctl init -n 3 --name bench -o FILE`, then its members' addresses edited in place."""
    spec_file = scratch / "bench.yaml"
    run([str(BIN / "dcsctl"), "init", "-n", "3", "--name", CLUSTER, "-o", str(spec_file)],
        env=env)
    text = spec_file.read_text()
    old = [m["address"] for m in yaml.safe_load(text)["members"]]
    for before, after in zip(old, IPS, strict=True):
        text, count = re.subn(rf"(?m)^(\s*address:\s*){re.escape(before)}\s*$",
                              rf"\g<1>{after}", text)
        assert count == 1, f"address {before} not found once in the spec"
    spec_file.write_text(text)
    edited = [m["address"] for m in yaml.safe_load(text)["members"]]
    assert edited == list(IPS), edited
    return spec_file


def dcsctl_pid_records(home: Path) -> list[tuple[int, int]]:
    records = []
    for pidfile in (home / CLUSTER / "members").glob("*/etcd.pid"):
        with contextlib.suppress(OSError, ValueError, KeyError):
            data = json.loads(pidfile.read_text())
            records.append((int(data["pid"]), int(data["start_ticks"])))
    return records


PHASE = re.compile(r"\[(\w+)\].*\((\d+\.\d+) s\)\s*$")


def dcsctl_round(spec_file: Path, home: Path, env: dict[str, str]) -> dict[str, object]:
    dcsctl = str(BIN / "dcsctl")
    assert not (home / CLUSTER).exists(), "a previous cluster state is still there"
    records: list[tuple[int, int]] = []
    try:
        started = time.perf_counter()
        result = run([dcsctl, "up", "-f", str(spec_file)], env=env)
        elapsed = time.perf_counter() - started
        records = dcsctl_pid_records(home)
        phases = {m.group(1): float(m.group(2))
                  for line in result.stderr.splitlines() if (m := PHASE.search(line))}
        # Not timed: was the cluster really healthy with auth on when `up` returned?
        pki = home / CLUSTER / "pki"
        etcdctl = [str(ETCD_BIN / "etcdctl"),
                   "--endpoints=" + ",".join(f"https://{ip}:{CLIENT_PORT}" for ip in IPS),
                   f"--cacert={pki / 'ca.crt'}", f"--cert={pki / 'admin.crt'}",
                   f"--key={pki / 'admin.key'}"]
        run([*etcdctl, "endpoint", "health"])
        auth = run([*etcdctl, "auth", "status"]).stdout
        assert "Authentication Status: true" in auth, auth
    finally:
        records = records or dcsctl_pid_records(home)
        try:
            if (home / CLUSTER).exists():
                run([dcsctl, "destroy", "-f", str(spec_file), "--yes"], env=env)
        finally:
            leftover = kill_recorded(records)
            if leftover:
                print(f"  dcsctl destroy left PIDs {leftover}; killed", file=sys.stderr)
            poll(ports_free, what="127.0.99.x ports free after dcsctl destroy")
    return {"dcsctl_s": elapsed, "dcsctl_phases_s": phases}


# -- (b) the guide ---------------------------------------------------------------------------

def guide_pki(certs: Path) -> None:
    """The guide's TLS section: RSA-4096 CA, then per node what etcd-sign-node.sh does."""
    def openssl(*argv: str) -> None:
        run(["openssl", *argv], cwd=certs)

    openssl("genrsa", "-out", "ca.key", "4096")
    openssl("req", "-x509", "-new", "-nodes", "-key", "ca.key", "-subj", "/CN=dcs-ca",
            "-days", "3650", "-out", "ca.crt")
    for index, ip in enumerate(IPS):
        name = f"dcs-0{index}"
        openssl("genrsa", "-out", f"{name}.key", "4096")
        openssl("req", "-new", "-key", f"{name}.key", "-out", f"{name}.csr",
                "-subj", f"/CN={name}")
        (certs / f"{name}.ext").write_text(
            "[v3_req]\nsubjectAltName = @alt_names\n"
            "extendedKeyUsage = serverAuth,clientAuth\n\n"
            f"[alt_names]\nDNS.1 = {name}\nDNS.2 = {name}.patroni.mydomain\n"
            f"IP.1  = {ip}\nIP.2  = 127.0.0.1\n"
        )
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", f"{name}.crt", "-days", "365",
                "-extensions", "v3_req", "-extfile", f"{name}.ext")


def guide_member_env(workdir: Path, certs: Path, index: int, ip: str) -> dict[str, str]:
    """The guide's /etc/dcs/etcd, with https listen/advertise on the node IP."""
    name = f"dcs-0{index}"
    cluster = ",".join(f"dcs-0{i}=https://{peer}:{PEER_PORT}" for i, peer in enumerate(IPS))
    return {
        "ETCD_NAME": name,
        "ETCD_DATA_DIR": str(workdir / "data" / name),
        "ETCD_LISTEN_CLIENT_URLS": f"https://{ip}:{CLIENT_PORT}",
        "ETCD_ADVERTISE_CLIENT_URLS": f"https://{ip}:{CLIENT_PORT}",
        "ETCD_LISTEN_PEER_URLS": f"https://{ip}:{PEER_PORT}",
        "ETCD_INITIAL_ADVERTISE_PEER_URLS": f"https://{ip}:{PEER_PORT}",
        "ETCD_INITIAL_CLUSTER": cluster,
        "ETCD_INITIAL_CLUSTER_STATE": "new",
        "ETCD_INITIAL_CLUSTER_TOKEN": "etcd-cluster-0",
        "ETCD_CERT_FILE": str(certs / f"{name}.crt"),
        "ETCD_KEY_FILE": str(certs / f"{name}.key"),
        "ETCD_TRUSTED_CA_FILE": str(certs / "ca.crt"),
        "ETCD_CLIENT_CERT_AUTH": "true",
        "ETCD_PEER_CERT_FILE": str(certs / f"{name}.crt"),
        "ETCD_PEER_KEY_FILE": str(certs / f"{name}.key"),
        "ETCD_PEER_TRUSTED_CA_FILE": str(certs / "ca.crt"),
        "ETCD_PEER_CLIENT_CERT_AUTH": "true",
        # ETCD_LOG_LEVEL='error' lives in the user's shell in the guide, where the service
        # never sees it (docs/guide-defects.md 4): etcd runs at its default level, as there.
    }


def stop_processes(processes: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM our etcd PIDs, wait with a deadline, SIGKILL what is left."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def guide_round(workdir: Path) -> dict[str, object]:
    certs = workdir / "cert"
    certs.mkdir()
    processes: list[subprocess.Popen[bytes]] = []
    logs = []
    endpoints = ",".join(f"https://{ip}:{CLIENT_PORT}" for ip in IPS)
    # The guide's ~/.etcdvars on dcs-00 (ETCDCTL_USER unset for the auth section).
    etcdctl_env = {**clean_environ(), "ETCDCTL_API": "3", "ETCDCTL_ENDPOINTS": endpoints,
                   "ETCDCTL_CACERT": str(certs / "ca.crt"),
                   "ETCDCTL_CERT": str(certs / "dcs-00.crt"),
                   "ETCDCTL_KEY": str(certs / "dcs-00.key")}
    etcdctl = str(ETCD_BIN / "etcdctl")
    try:
        started = time.perf_counter()
        guide_pki(certs)
        pki_done = time.perf_counter()
        for index, ip in enumerate(IPS):
            log = (workdir / f"dcs-0{index}.log").open("wb")
            logs.append(log)
            processes.append(subprocess.Popen(
                [str(ETCD_BIN / "etcd")], env=guide_member_env(workdir, certs, index, ip),
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True))
        # Cheap TCP poll first, so etcdctl's first dial does not sit in gRPC's reconnect
        # backoff (this only ever makes the guide's figure smaller).
        poll(lambda: all(listening(ip, CLIENT_PORT) for ip in IPS),
             what="the guide's etcd listening")

        def healthy() -> bool:
            for process in processes:
                if process.poll() is not None:
                    raise RuntimeError(f"etcd pid {process.pid} exited {process.returncode}")
            return subprocess.run(
                [etcdctl, "endpoint", "health"], env=etcdctl_env, capture_output=True,
                timeout=STEP_TIMEOUT_S, check=False, stdin=subprocess.DEVNULL,
            ).returncode == 0

        poll(healthy, what="the guide's cluster healthy (etcdctl endpoint health)")
        healthy_at = time.perf_counter()
        run([etcdctl, "role", "add", "root"], env=etcdctl_env)
        run([etcdctl, "role", "grant-permission", "root", "--prefix=true", "readwrite", "/"],
            env=etcdctl_env)
        run([etcdctl, "user", "add", "root", f"--new-user-password={GUIDE_PASSWORD}"],
            env=etcdctl_env)
        run([etcdctl, "user", "grant-role", "root", "root"], env=etcdctl_env)
        run([etcdctl, "auth", "enable"], env=etcdctl_env)
        done = time.perf_counter()
        # Not timed: the guide's own check, `etcdctl --user root auth status`.
        auth = run([etcdctl, f"--user=root:{GUIDE_PASSWORD}", "auth", "status"],
                   env=etcdctl_env).stdout
        assert "Authentication Status: true" in auth, auth
    finally:
        stop_processes(processes)
        for log in logs:
            log.close()
        poll(ports_free, what="127.0.99.x ports free after stopping the guide's etcd")
    return {"guide_s": done - started, "guide_pki_s": pki_done - started,
            "guide_start_to_healthy_s": healthy_at - pki_done,
            "guide_auth_s": done - healthy_at,
            "guide_pids": [p.pid for p in processes]}


# -- report ----------------------------------------------------------------------------------

def first_line(argv: list[str]) -> str:
    try:
        return run(argv).stdout.splitlines()[0].strip()
    except (OSError, RuntimeError, IndexError, subprocess.TimeoutExpired):
        return "unknown"


def machine() -> dict[str, object]:
    meminfo = Path("/proc/meminfo").read_text().split()
    return {
        "nproc": first_line(["nproc"]),
        "cpu_count": os.cpu_count(),
        "mem_total_gib": round(int(meminfo[meminfo.index("MemTotal:") + 1]) / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "etcd": first_line([str(ETCD_BIN / "etcd"), "--version"]),
        "openssl": first_line(["openssl", "version"]),
        "loadavg_start": Path("/proc/loadavg").read_text().split()[:3],
    }


def table(rows: list[dict[str, object]], medians: dict[str, float]) -> str:
    lines = ["| round | first | dcsctl up | guide, scripted | guide's PKI alone "
             "| guide start→healthy | guide auth | ratio dcsctl/guide |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['round']} | {r['first']} | {r['dcsctl_s']:.2f} s | {r['guide_s']:.2f} s | "
            f"{r['guide_pki_s']:.2f} s | {r['guide_start_to_healthy_s']:.2f} s | "
            f"{r['guide_auth_s']:.2f} s | {r['ratio']:.3f} |")
    lines.append(
        f"| **median** | | **{medians['dcsctl_s']:.2f} s** | **{medians['guide_s']:.2f} s** | "
        f"{medians['guide_pki_s']:.2f} s | {medians['guide_start_to_healthy_s']:.2f} s | "
        f"{medians['guide_auth_s']:.2f} s | **{medians['ratio']:.3f}** |")
    return "\n".join(lines)



def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--etcd", help="an etcd version in .tools (default: dcsctl's)")
    args = parser.parse_args()
    global ETCD_BIN  # noqa: PLW0603 - one choice for the whole run, made here
    if args.etcd:
        ETCD_BIN = REPO / ".tools" / f"etcd-{args.etcd}" / "bin"
    if not ports_free():
        print("127.0.99.10-12 ports 2379/2380 are in use: another run? nothing started.",
              file=sys.stderr)
        return 2
    info = machine()
    scratch = Path(tempfile.mkdtemp(prefix="dcsctl-bench-up-"))
    home = scratch / "home"
    env = {**clean_environ(), "DCSCTL_HOME": str(home), "DCSCTL_ETCD_BIN_DIR": str(ETCD_BIN)}
    rows: list[dict[str, object]] = []
    with terminate_as_exit():
        try:
            spec_file = write_spec(scratch, env)
            for index in range(1, args.rounds + 1):
                first = "dcsctl" if index % 2 else "guide"
                row: dict[str, object] = {"round": index, "first": first}
                for side in (("dcsctl", "guide") if first == "dcsctl" else ("guide", "dcsctl")):
                    if side == "dcsctl":
                        row.update(dcsctl_round(spec_file, home, env))
                    else:
                        workdir = Path(tempfile.mkdtemp(prefix="guide-", dir=scratch))
                        try:
                            row.update(guide_round(workdir))
                        finally:
                            shutil.rmtree(workdir, ignore_errors=True)
                row["ratio"] = float(row["dcsctl_s"]) / float(row["guide_s"])  # type: ignore[arg-type]
                rows.append(row)
                print(f"round {index}: dcsctl {row['dcsctl_s']:.2f} s, guide "
                      f"{row['guide_s']:.2f} s (PKI {row['guide_pki_s']:.2f} s), "
                      f"ratio {row['ratio']:.3f}", file=sys.stderr)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    keys = ("dcsctl_s", "guide_s", "guide_pki_s", "guide_start_to_healthy_s", "guide_auth_s",
            "ratio")
    medians = {k: statistics.median(float(r[k]) for r in rows) for k in keys}  # type: ignore[arg-type]
    info["loadavg_end"] = Path("/proc/loadavg").read_text().split()[:3]
    verdict = {
        "dcsctl_median_le_2s": medians["dcsctl_s"] <= TARGET_UP_S,
        "rounds_dcsctl_le_2s": sum(float(r["dcsctl_s"]) <= TARGET_UP_S for r in rows),  # type: ignore[arg-type]
        "ratio_median_le_0.2": medians["ratio"] <= TARGET_RATIO,
        "rounds_ratio_le_0.2": sum(float(r["ratio"]) <= TARGET_RATIO for r in rows),  # type: ignore[arg-type]
        "ratio_of_medians": medians["dcsctl_s"] / medians["guide_s"],
    }
    OUT.mkdir(exist_ok=True)
    suffix = f"-{args.etcd}" if args.etcd else ""
    (OUT / f"up{suffix}.json").write_text(json.dumps(
        {"command": f".venv/bin/python benchmarks/bench_up.py --rounds {args.rounds}"
                    + (f" --etcd {args.etcd}" if args.etcd else ""),
         "machine": info, "addresses": list(IPS), "rounds": rows, "median": medians,
         "targets": {"dcsctl_up_s": TARGET_UP_S, "ratio": TARGET_RATIO}, "verdict": verdict},
        indent=2) + "\n")
    print(table(rows, medians))
    print(f"\nnproc {info['nproc']}; {info['etcd']}; {info['openssl']}; "
          f"load average {' '.join(info['loadavg_start'])} → "  # type: ignore[arg-type]
          f"{' '.join(info['loadavg_end'])}")  # type: ignore[arg-type]
    print(f"dcsctl up ≤ {TARGET_UP_S:.0f} s: median {medians['dcsctl_s']:.2f} s, "
          f"{verdict['rounds_dcsctl_le_2s']}/{len(rows)} rounds; ratio ≤ {TARGET_RATIO}: "
          f"median {medians['ratio']:.3f}, {verdict['rounds_ratio_le_0.2']}/{len(rows)} rounds")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
