"""`dcsctl up` to a verified secure cluster vs the lab guide's steps, scripted, same run.

    .venv/bin/python benchmarks/bench_up.py [--rounds 5]

The guide's steps: openssl RSA-4096 CA and node keys/certs (SANs, serverAuth+clientAuth),
three etcd processes with client and peer TLS + client-cert auth, wait for health, then
its RBAC commands (role add root, grant readwrite /, user add root, grant-role, auth
enable). dcsctl's: one `dcsctl up` (PKI, config, start, health, auth, status view).
Rounds alternate; loopback addresses 127.0.99.10-12 and 127.0.99.20-22 are used.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
BIN = REPO / ".venv" / "bin"
GUIDE_IPS = ["127.0.99.20", "127.0.99.21", "127.0.99.22"]
DCSCTL_IPS = ["127.0.99.10", "127.0.99.11", "127.0.99.12"]
DEADLINE_S = 60


def run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=120,
                          **kwargs)  # type: ignore[call-overload,no-any-return]


def dcsctl_round(workdir: Path) -> float:
    home = workdir / "home"
    spec_file = workdir / "bench.yaml"
    env = {**os.environ, "DCSCTL_HOME": str(home), "DCSCTL_ETCD_BIN_DIR": str(BIN)}
    spec = yaml.safe_load(run([str(BIN / "dcsctl"), "init", "--name", "bench"], env=env).stdout)
    for member, ip in zip(spec["members"], DCSCTL_IPS, strict=True):
        member["address"] = ip
    spec_file.write_text(yaml.safe_dump(spec))
    started = time.perf_counter()
    run([str(BIN / "dcsctl"), "up", "-f", str(spec_file)], env=env)
    elapsed = time.perf_counter() - started
    run([str(BIN / "dcsctl"), "destroy", "--yes", "-f", str(spec_file)], env=env)
    return elapsed


def openssl(*argv: str, cwd: Path) -> None:
    run(["openssl", *argv], cwd=cwd)


def guide_pki(certs: Path) -> None:
    """The guide's TLS section, node by node (RSA-4096, as written there)."""
    openssl("genrsa", "-out", "ca.key", "4096", cwd=certs)
    openssl("req", "-x509", "-new", "-nodes", "-key", "ca.key", "-subj", "/CN=dcs-ca",
            "-days", "3650", "-out", "ca.crt", cwd=certs)
    for index, ip in enumerate(GUIDE_IPS):
        name = f"dcs-0{index}"
        (certs / f"{name}.ext").write_text(
            "[v3_req]\nsubjectAltName = @alt_names\nextendedKeyUsage = serverAuth,clientAuth\n"
            f"[alt_names]\nDNS.1 = {name}\nDNS.2 = {name}.patroni.mydomain\n"
            f"IP.1 = {ip}\nIP.2 = 127.0.0.1\n"
        )
        openssl("genrsa", "-out", f"{name}.key", "4096", cwd=certs)
        openssl("req", "-new", "-key", f"{name}.key", "-out", f"{name}.csr",
                "-subj", f"/CN={name}", cwd=certs)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", f"{name}.crt", "-days", "365",
                "-extensions", "v3_req", "-extfile", f"{name}.ext", cwd=certs)


def guide_round(workdir: Path) -> tuple[float, float]:
    certs = workdir / "cert"
    certs.mkdir()
    started = time.perf_counter()
    guide_pki(certs)
    pki_s = time.perf_counter() - started
    cluster = ",".join(f"dcs-0{i}=https://{ip}:2380" for i, ip in enumerate(GUIDE_IPS))
    processes = []
    try:
        for index, ip in enumerate(GUIDE_IPS):
            name = f"dcs-0{index}"
            env = {
                "ETCD_NAME": name, "ETCD_DATA_DIR": str(workdir / name),
                "ETCD_LISTEN_CLIENT_URLS": f"https://{ip}:2379",
                "ETCD_ADVERTISE_CLIENT_URLS": f"https://{ip}:2379",
                "ETCD_LISTEN_PEER_URLS": f"https://{ip}:2380",
                "ETCD_INITIAL_ADVERTISE_PEER_URLS": f"https://{ip}:2380",
                "ETCD_INITIAL_CLUSTER": cluster, "ETCD_INITIAL_CLUSTER_STATE": "new",
                "ETCD_INITIAL_CLUSTER_TOKEN": "etcd-cluster-0",
                "ETCD_CERT_FILE": str(certs / f"{name}.crt"),
                "ETCD_KEY_FILE": str(certs / f"{name}.key"),
                "ETCD_TRUSTED_CA_FILE": str(certs / "ca.crt"), "ETCD_CLIENT_CERT_AUTH": "true",
                "ETCD_PEER_CERT_FILE": str(certs / f"{name}.crt"),
                "ETCD_PEER_KEY_FILE": str(certs / f"{name}.key"),
                "ETCD_PEER_TRUSTED_CA_FILE": str(certs / "ca.crt"),
                "ETCD_PEER_CLIENT_CERT_AUTH": "true", "ETCD_LOG_LEVEL": "error",
            }
            log = (workdir / f"{name}.log").open("wb")
            processes.append(subprocess.Popen([str(BIN / "etcd")], env=env, stdout=log,
                                              stderr=log, start_new_session=True))
        endpoints = ",".join(f"https://{ip}:2379" for ip in GUIDE_IPS)
        etcdctl = [str(BIN / "etcdctl"), f"--endpoints={endpoints}",
                   f"--cacert={certs / 'ca.crt'}", f"--cert={certs / 'dcs-00.crt'}",
                   f"--key={certs / 'dcs-00.key'}"]
        deadline = time.monotonic() + DEADLINE_S
        while subprocess.run([*etcdctl, "endpoint", "health"], capture_output=True,
                             timeout=30, check=False).returncode != 0:
            assert time.monotonic() < deadline, "the guide's cluster did not become healthy"
            time.sleep(0.05)
        run([*etcdctl, "role", "add", "root"])
        run([*etcdctl, "role", "grant-permission", "root", "--prefix=true", "readwrite", "/"])
        run([*etcdctl, "user", "add", "root", "--interactive=false"], input="bench-password\n")
        run([*etcdctl, "user", "grant-role", "root", "root"])
        run([*etcdctl, "auth", "enable"])
        total = time.perf_counter() - started
    finally:
        for process in processes:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
    return total, pki_s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rows = []
    for index in range(args.rounds):
        with tempfile.TemporaryDirectory() as scratch:
            dcsctl_s = dcsctl_round(Path(scratch))
        with tempfile.TemporaryDirectory() as scratch:
            guide_s, pki_s = guide_round(Path(scratch))
        rows.append({"round": index + 1, "dcsctl_s": dcsctl_s, "guide_s": guide_s,
                     "guide_pki_s": pki_s, "ratio": dcsctl_s / guide_s})
        print(f"round {index + 1}: dcsctl {dcsctl_s:.2f} s, guide {guide_s:.2f} s "
              f"(PKI {pki_s:.2f} s), ratio {dcsctl_s / guide_s:.3f}", file=sys.stderr)
    medians = {k: statistics.median(r[k] for r in rows)
               for k in ("dcsctl_s", "guide_s", "guide_pki_s", "ratio")}
    out = REPO / "benchmarks" / "out"
    out.mkdir(exist_ok=True)
    (out / "up.json").write_text(json.dumps({"rounds": rows, "median": medians}, indent=2))
    print("| round | dcsctl up | guide, scripted | guide's PKI alone | ratio |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['round']} | {r['dcsctl_s']:.2f} s | {r['guide_s']:.2f} s | "
              f"{r['guide_pki_s']:.2f} s | {r['ratio']:.3f} |")
    print(f"| **median** | **{medians['dcsctl_s']:.2f} s** | {medians['guide_s']:.2f} s | "
          f"{medians['guide_pki_s']:.2f} s | **{medians['ratio']:.3f}** |")
    shutil.rmtree(out / "tmp", ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
