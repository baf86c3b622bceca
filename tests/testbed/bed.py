"""The testbed: N Debian hosts on one machine, each a systemd-nspawn container booting real
systemd and sshd in a network namespace of its own, on a bridge with the control side.

Database hosts (db-00.. at .70-, `up(db=N)`) boot the suite's database tree: Debian's
PostgreSQL and Patroni as systemd services (dbhosts.py), waiting for the bundle dcsctl
deploys.

A host's root filesystem is an overlay: the cached tree of its suite (rootfs.py) below,
the host's own layer above (its host key, machine-id, hostname, etcd's data), so hosts
are made in a second and keep their disks across reboots and power cuts. The local apt
repository is bind-mounted read-only at /srv/dcsctl-repo, the hosts' only package source.

Facts the code relies on (tried here): `systemctl reboot` inside a container makes
systemd-nspawn exit, so a reboot is "wait for it to exit, boot again"; SIGKILL of
systemd-nspawn does not stop a container, SIGKILL of its init (the process in the host's
namespace whose innermost PID is 1) does: the power cut. A power cut here loses what the
container's processes had not handed to the kernel; unsynced page cache survives it (the
kernel is shared), so it is a crash of every process at once, not a lost disk cache.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from dcsctl.etcd.versions import Version
from dcsctl.spec import GUIDE_DB_HOSTS
from dcsctl.wait import wait_until
from tests.support import mirror as mirror_module
from tests.support.mirror import Mirror
from tests.testbed import dbhosts, rootfs
from tests.testbed.net import HOST_IF, Net, run

REPO = rootfs.REPO
BOOT_TIMEOUT = 120.0  # a host from nspawn start to SSH login (2 cores, 3 hosts at once)


class TestbedError(RuntimeError):
    pass


@dataclass(frozen=True)
class HostStatus:
    name: str
    address: str
    init_pid: int | None  # the container's systemd, seen from this machine
    state: str  # systemctl is-system-running, or "off"
    faults: list[str]


class Testbed:
    __test__ = False  # not a test class, for pytest
    def __init__(self, prefix: str = "dcstb", subnet: str = "192.168.56",
                 state_root: Path | None = None) -> None:
        self.net = Net(prefix, subnet)
        root = state_root or Path(os.environ.get("DCSCTL_TESTBED_STATE",
                                                 "/var/lib/dcsctl-testbed"))
        self.dir = root / prefix
        self._nspawn: dict[str, subprocess.Popen[bytes]] = {}

    # -- layout --

    @property
    def key(self) -> Path:
        return self.dir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.dir / "known_hosts"

    def _config(self) -> dict[str, object]:
        path = self.dir / "testbed.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def hosts(self) -> dict[str, str]:
        """name -> address of every etcd host the testbed has (dcs-00 at .10, ...)."""
        count = int(str(self._config().get("hosts", 0)))
        return {f"dcs-{i:02d}": self.net.address(i) for i in range(count)}

    def db_hosts(self) -> dict[str, str]:
        """name -> address of every database host (db-00 at .70, ...)."""
        count = int(str(self._config().get("db", 0)))
        return {f"db-{i:02d}": f"{self.net.subnet}.{dbhosts.DB_FIRST + i}"
                for i in range(count)}

    def all_hosts(self) -> dict[str, str]:
        return {**self.hosts(), **self.db_hosts()}

    def passwords(self) -> dbhosts.Passwords:
        """PostgreSQL's superuser and replication passwords of the database hosts (made at
        the first `up`, kept 0600 in the testbed's folder)."""
        path = self.dir / "postgres-passwords.json"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.touch(mode=0o600)
            tmp.write_text(json.dumps({"superuser": secrets.token_hex(16),
                                       "replication": secrets.token_hex(16)}))
            tmp.rename(path)
        found = json.loads(path.read_text())
        return dbhosts.Passwords(found["superuser"], found["replication"])

    def _host_dir(self, host: str) -> Path:
        return self.dir / "hosts" / host

    def _merged(self, host: str) -> Path:
        return self._host_dir(host) / "root"

    def _machine(self, host: str) -> str:
        return f"{self.net.prefix}-{host}"

    # -- up / down --

    def up(self, hosts: int = 3, suite: str = "bookworm", db: int | None = None) -> list[str]:
        """Make the testbed (or finish making it) with `hosts` etcd hosts and `db` database
        hosts (None: as many as it has); returns what changed, [] when all was up."""
        config = self._config()
        if config and config.get("suite") != suite:
            raise TestbedError(f"the testbed is up with suite {config['suite']}: "
                               "run `scripts/testbed down` first")
        if config and int(str(config["hosts"])) > hosts:
            raise TestbedError(f"the testbed has {config['hosts']} hosts: "
                               "run `scripts/testbed down` first")
        have_db = int(str(config.get("db", 0))) if config else 0
        db = have_db if db is None else db
        if db > GUIDE_DB_HOSTS:  # before anything is built: `spec` could not name them
            raise TestbedError(
                f"--db {db}: the testbed's spec is `dcsctl init --target ssh`'s, which names "
                f"{GUIDE_DB_HOSTS} database hosts (the guide's db-00..db-"
                f"{GUIDE_DB_HOSTS - 1:02d}); `scripts/testbed spec` could not include more"
                f"\nfix: scripts/testbed up --db {GUIDE_DB_HOSTS} (or fewer)")
        if db < have_db:
            raise TestbedError(f"the testbed has {have_db} database hosts: "
                               "run `scripts/testbed down` first")
        for tool in ("mmdebstrap", "systemd-nspawn", "nft", "tc", "ssh-keygen"):
            if shutil.which(tool) is None:
                raise TestbedError(f"{tool} is missing: run scripts/setup")
        rootfs.rootfs(suite)
        if db:
            rootfs.db_rootfs(suite)
        repo = rootfs.apt_repository()
        self.dir.mkdir(parents=True, exist_ok=True)
        self._write_config(suite, hosts, db)
        if not self.key.exists():
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "dcsctl-testbed",
                 "-f", str(self.key)])
        names = self.all_hosts()
        self.net.ensure_bridge()
        self.net.ensure_attached(self.net.control_ns, self.net.port("ctl"),
                                 self.net.control_address)
        self.net.write_control_hosts(names)
        changed = []
        for host, address in names.items():
            self.net.ensure_attached(self.net.host_ns(host), self.net.port(host), address)
            if self.init_pid(host) is None:
                self._prepare(host, self._lower(host), names)
                self._start(host, repo)
                changed.append(host)
        self._write_known_hosts()
        self.net.check_isolation(names)
        for host in names:
            self.wait_ready(host)
        return changed

    def remove_db_hosts(self) -> list[str]:
        """Every database host powered off and gone (namespace, disk, key): the testbed as
        `up` without `db` made it."""
        gone = list(self.db_hosts())
        for host in gone:
            if self.init_pid(host) is not None:
                self.kill(host)
            self._forget(host)
            run(["ip", "netns", "del", self.net.host_ns(host)])
        self._write_config(self._suite(), len(self.hosts()), 0)
        self.net.write_control_hosts(self.all_hosts())
        self._write_known_hosts()
        return gone

    def _write_config(self, suite: str, hosts: int, db: int) -> None:
        (self.dir / "testbed.json").write_text(json.dumps(
            {"suite": suite, "hosts": hosts, "db": db}))

    def _lower(self, host: str) -> Path:
        """The cached tree a host boots: the suite's, or its database variant."""
        suite = self._suite()
        return rootfs.db_rootfs(suite) if host in self.db_hosts() else rootfs.rootfs(suite)

    def down(self) -> None:
        """Remove every container, mount, namespace, link and file the testbed made."""
        for host in self._known_host_dirs():
            pid = self.init_pid(host)
            if pid is not None:
                os.kill(pid, signal.SIGKILL)
            self._wait_stopped(host)
        if Path(f"/run/netns/{self.net.control_ns}").exists():
            # ssh master connections and anything else `run` left in the control namespace
            for leftover in run(["ip", "netns", "pids", self.net.control_ns]).split():
                os.kill(int(leftover), signal.SIGKILL)
        for mount in self._mounts():
            run(["umount", mount])
        self.net.remove()
        shutil.rmtree(self.dir, ignore_errors=True)

    def rebuild(self, *hosts: str) -> None:
        """Each machine replaced by a new one of the same name and address: powered off, a
        fresh disk (an empty layer over the suite's tree: no etcd, no data), a new SSH
        host key, booted (all at once). The testbed's own known_hosts learns the new keys
        (what the operator would check on each new machine's console); anyone else's copy
        is stale."""
        for host in hosts:
            self._check_host(host)
            if self.init_pid(host) is not None:
                self.kill(host)
            self._forget(host)
            self._prepare(host, self._lower(host), self.all_hosts())
            self._start(host, rootfs.apt_repository())
        self._write_known_hosts()
        for host in hosts:
            self.wait_ready(host)

    def remove_last_host(self) -> str:
        """The newest host powered off and gone (namespace, disk, key): the testbed has
        one host fewer, as if `up` had been run with that count."""
        names = list(self.hosts())
        if len(names) < 2:
            raise TestbedError("the testbed keeps at least one host: use `down`")
        host = names[-1]
        if self.init_pid(host) is not None:
            self.kill(host)
        self._forget(host)
        run(["ip", "netns", "del", self.net.host_ns(host)])
        self._write_config(self._suite(), len(names) - 1, len(self.db_hosts()))
        self.net.write_control_hosts(self.all_hosts())
        self._write_known_hosts()
        return host

    def leftovers(self) -> list[str]:
        """Anything of this testbed still on the machine (empty after `down`)."""
        found = [f"namespace {ns}" for ns in self.net.namespaces()]
        found += [f"mount {m}" for m in self._mounts()]
        found += [f"process {pid} ({args})" for pid, args in self._nspawn_processes()]
        if Path("/etc/netns", self.net.control_ns).exists():
            found.append(f"/etc/netns/{self.net.control_ns}")
        if self.dir.exists():
            found.append(str(self.dir))
        return found

    # -- hosts: power and boot --

    def init_pid(self, host: str) -> int | None:
        """The container's init: the process in the host's namespace whose innermost PID is 1."""
        ns = self.net.host_ns(host)
        if not Path("/run/netns", ns).exists():
            return None
        for pid in run(["ip", "netns", "pids", ns]).split():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("NSpid:") and line.split()[-1] == "1":
                    return int(pid)
        return None

    def boot(self, host: str) -> None:
        self._check_host(host)
        if self.init_pid(host) is None:
            self._wait_stopped(host)
            self._start(host, rootfs.apt_repository())
        self.wait_ready(host)

    def boot_without_systemd(self, host: str) -> None:
        """Power the host off and start it with sshd as its init (PID 1) instead of
        systemd: a real host without systemd, as a container or another init gives.
        `kill` then `boot` gives it systemd back."""
        self._check_host(host)
        if self.init_pid(host) is not None:
            self.kill(host)
        self._start(host, rootfs.apt_repository(),
                    init=("/bin/sh", "-c", "mkdir -p /run/sshd && exec /usr/sbin/sshd -D -e"))

        def ready() -> bool:
            return self.ssh(host, "true", check=False, timeout=10).returncode == 0

        wait_until(ready, timeout=BOOT_TIMEOUT, what=f"{host}'s sshd did not start")

    def kill(self, host: str) -> None:
        """Power cut: SIGKILL the container's init; every process of the host dies at once."""
        self._check_host(host)
        pid = self.init_pid(host)
        if pid is None:
            raise TestbedError(f"{host} is not running")
        os.kill(pid, signal.SIGKILL)
        self._wait_stopped(host)

    def reboot(self, host: str) -> None:
        """`systemctl reboot` on the host; nspawn exits at the end of it, so boot it again."""
        self._check_host(host)
        self.ssh(host, "sudo", "systemctl", "reboot", check=False)
        self._wait_stopped(host)
        self.boot(host)

    def wait_ready(self, host: str, timeout: float = BOOT_TIMEOUT) -> None:
        """systemd up (running or degraded) and an SSH login as the admin user works."""
        seen = [""]

        def ready() -> bool:
            pid = self.init_pid(host)
            if pid is None:
                seen[0] = "container not running"
                return False
            state = self._system_state(pid)
            if state not in ("running", "degraded"):
                seen[0] = f"system {state}"
                return False
            result = self.ssh(host, "true", check=False, timeout=10)
            seen[0] = f"ssh exit {result.returncode}: {result.stderr.strip()}"
            if result.returncode != 0 and state == "degraded":
                self._retry_user_sessions(host)
            return result.returncode == 0

        def last() -> str:
            console = self._host_dir(host) / "console.log"
            tail = console.read_text(errors="replace")[-1500:] if console.exists() else ""
            return f"{seen[0]}; console: ...{tail}"

        wait_until(ready, timeout=timeout, what=f"{host} did not boot", last_error=last)

    # -- traffic: always through the isolation check --

    def run(self, argv: Sequence[str], *, timeout: float = 120, check: bool = True,
            env: Mapping[str, str] | None = None, input: bytes | None = None
            ) -> subprocess.CompletedProcess[str]:
        """A command on the control side (in its namespace, names from its hosts file)."""
        self.net.check_isolation(self.all_hosts())
        result = subprocess.run(
            ["ip", "netns", "exec", self.net.control_ns, *argv], capture_output=True,
            timeout=timeout, check=False, env=self.control_env(env), cwd=REPO,
            input=input.decode() if input is not None else None, text=True)
        if check and result.returncode != 0:
            raise TestbedError(f"`{' '.join(argv)}` -> {result.returncode}\n"
                               f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        return result

    def control_env(self, env: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment of a command on the control side. TMPDIR is the testbed's own:
        dcsctl keeps its ssh master sockets there, named by host, user and port only, and
        another testbed (or a developer's run) with hosts named dcs-00 must not share them."""
        environ = dict(os.environ if env is None else env)
        if "TMPDIR" not in environ:
            environ["TMPDIR"] = str(self.dir / "tmp")
        Path(environ["TMPDIR"]).mkdir(parents=True, exist_ok=True)
        return environ

    def root_path(self, host: str, path: str) -> Path:
        """Where a file of the host's root filesystem is seen from this machine (its
        overlay): a fault written here needs no working SSH or sudo on the host."""
        self._check_host(host)
        return self._merged(host) / path.lstrip("/")

    def enter(self, host: str, *argv: str, check: bool = True
              ) -> subprocess.CompletedProcess[str]:
        """A command as root inside the host's namespaces (mounts, PIDs, network), not
        through its sshd: for faults that SSH itself cannot set up or take back."""
        pid = self.init_pid(host)
        if pid is None:
            raise TestbedError(f"{host} is not running")
        result = subprocess.run(["nsenter", "-t", str(pid), "-m", "-u", "-i", "-p", "-n",
                                 *argv], capture_output=True, text=True, timeout=60,
                                check=False)
        if check and result.returncode != 0:
            raise TestbedError(f"{host}: `{' '.join(argv)}` -> {result.returncode}: "
                               f"{result.stderr.strip()}")
        return result

    def ssh_argv(self, host: str, *command: str) -> list[str]:
        return ["ssh", "-i", str(self.key), "-o", "IdentitiesOnly=yes",
                "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "BatchMode=yes",
                "-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=5",
                "-o", "LogLevel=ERROR", "-l", rootfs.USER, "--", host, *command]

    def ssh(self, host: str, *command: str, check: bool = True, timeout: float = 60
            ) -> subprocess.CompletedProcess[str]:
        return self.run(self.ssh_argv(host, *command), check=check, timeout=timeout)

    # -- the spec and the status --

    def serve_releases(self, versions: Sequence[Version]) -> Mirror:
        """etcd's release tarballs of `versions` (the builds of scripts/setup) on an HTTPS
        mirror on the control side, as a site without internet keeps one; the server lives
        in the control namespace until `down`, and `spec` names it from then on."""
        mirror, _ = mirror_module.start(versions, self.dir / "releases", self.net.control_ns)
        (self.dir / "mirror.json").write_text(json.dumps(
            {"url": mirror.url, "ca_file": str(mirror.ca_file),
             "data_file": str(mirror.data_file), "root": str(mirror.root)}))
        return mirror

    def release_mirror(self) -> Mirror | None:
        path = self.dir / "mirror.json"
        if not path.exists():
            return None
        found = json.loads(path.read_text())
        return Mirror(found["url"], Path(found["ca_file"]), Path(found["data_file"]),
                      Path(found["root"]))

    def spec(self, dcsctl: str = str(REPO / ".venv" / "bin" / "dcsctl")) -> str:
        """What `dcsctl init --target ssh` writes, with the testbed's SSH identity and
        known_hosts added under `ssh:`, and its release mirror under `install:` (the
        releases it serves are the ones the release data names): nothing else changed."""
        mirror = self.release_mirror()
        environ = {**os.environ, **(mirror.environ() if mirror else {})}
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "spec.yaml"
            subprocess.run([dcsctl, "init", "--target", "ssh", "-o", str(out)], check=True,
                           capture_output=True, timeout=60, env=environ)
            text = out.read_text()
        # init's `patroni:` section (the last one it writes) names the guide's database
        # hosts: kept for the ones booted here, with `reload: systemd` (Patroni is a
        # systemd service on them); left out when there are none (`up` would go to hosts
        # that do not exist).
        text, comment, section = text.partition("\n# Patroni scopes")
        text = text.rstrip("\n") + "\n"
        if self.db_hosts():
            text += comment + self._patroni_section(section)
        anchor = f"ssh:\n  user: {rootfs.USER}\n"
        if anchor not in text:
            raise TestbedError(f"`dcsctl init --target ssh` no longer writes {anchor!r}")
        text = text.replace(anchor, anchor + f"  identity_file: {self.key}\n"
                            f"  known_hosts_file: {self.known_hosts}\n")
        release = "install:\n  method: release\n"
        if mirror:
            if release not in text:
                raise TestbedError(f"`dcsctl init --target ssh` no longer writes {release!r}")
            text = text.replace(release, release + f"  mirror: {mirror.url}\n"
                                f"  ca_file: {mirror.ca_file}\n")
        return text

    def _patroni_section(self, written: str) -> str:
        """init's patroni section (its comment line, then the YAML) for the booted
        database hosts."""
        comment, _, body = written.partition("\n")
        document = yaml.safe_load(body)
        (scope,) = document["patroni"]["scopes"]
        if scope["name"] != dbhosts.FIRST.scope:
            raise TestbedError(f"`dcsctl init --target ssh` names scope {scope['name']!r}, "
                               f"the testbed's Patroni runs {dbhosts.FIRST.scope!r}")
        booted = self.db_hosts()
        nodes = [node for node in scope["nodes"] if node["name"] in booted]
        for node in nodes:
            if node["address"] != booted[node["name"]]:
                raise TestbedError(f"init puts {node['name']} at {node['address']}, the "
                                   f"testbed at {booted[node['name']]}")
            node["reload"] = "systemd"
        if len(nodes) != len(booted):
            raise TestbedError(f"init names {len(scope['nodes'])} database hosts, the "
                               f"testbed has {len(booted)}")
        scope["nodes"] = nodes
        return comment + "\n" + yaml.safe_dump(document, sort_keys=False)

    def patroni_scope(self, instance: dbhosts.Instance) -> dict[str, object]:
        """A spec's scope entry for one Patroni instance on every database host."""
        return {"name": instance.scope, "namespace": "/service/", "nodes": [
            {"name": host, "address": address, "ssh": host,
             "bundle_dir": instance.bundle_dir, "owner": "postgres", "reload": "systemd",
             "systemd_unit": instance.unit,
             "rest_api": f"http://{address}:{instance.rest_port}"}
            for host, address in self.db_hosts().items()]}

    def status(self) -> list[HostStatus]:
        found = []
        for host, address in self.all_hosts().items():
            pid = self.init_pid(host)
            state = self._system_state(pid) if pid else "off"
            faults = self.net.faults(host) if Path("/run/netns", self.net.host_ns(host)
                                                   ).exists() else ["no namespace"]
            found.append(HostStatus(host, address, pid, state, faults))
        return found

    # -- internals --

    def _check_host(self, host: str) -> None:
        if host not in self.all_hosts():
            raise TestbedError(f"no host {host} (have: {', '.join(self.all_hosts()) or 'none'})")

    def _forget(self, host: str) -> None:
        """A stopped host's disk and host key gone."""
        merged = str(self._merged(host))
        if merged in self._mounts():
            run(["umount", merged])
        shutil.rmtree(self._host_dir(host))
        shutil.rmtree(self._host_key(host).parent)

    def _suite(self) -> str:
        return str(self._config()["suite"])

    def _write_known_hosts(self) -> None:
        self.known_hosts.write_text("".join(
            f"{host},{address} {self._host_key(host).with_suffix('.pub').read_text()}"
            for host, address in self.all_hosts().items()))

    def _host_key(self, host: str) -> Path:
        return self.dir / "hostkeys" / host / "ssh_host_ed25519_key"

    def _prepare(self, host: str, lower: Path, names: Mapping[str, str]) -> None:
        """The host's own layer mounted over the cached tree, and its identity written."""
        layer = self._host_dir(host)
        for sub in ("upper", "work", "root"):
            (layer / sub).mkdir(parents=True, exist_ok=True)
        merged = self._merged(host)
        if str(merged) not in self._mounts():
            run(["mount", "-t", "overlay", "overlay", "-o",
                 f"lowerdir={lower},upperdir={layer / 'upper'},workdir={layer / 'work'}",
                 str(merged)])
        key = self._host_key(host)
        if not key.exists():
            key.parent.mkdir(parents=True, exist_ok=True)
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", host, "-f", str(key)])
        etc = merged / "etc"
        for name in ("ssh_host_ed25519_key", "ssh_host_ed25519_key.pub"):
            source = key.with_name(name)
            _install(etc / "ssh" / name, source.read_bytes(),
                     0o600 if not name.endswith(".pub") else 0o644)
        (etc / "hostname").write_text(host + "\n")
        (etc / "hosts").write_text(f"127.0.0.1 localhost\n127.0.1.1 {host}\n")
        if not (etc / "machine-id").read_text().strip():
            (etc / "machine-id").write_text(secrets.token_hex(16) + "\n")
        uid, gid = _ids(etc / "passwd", rootfs.USER)
        ssh_dir = merged / "home" / rootfs.USER / ".ssh"
        ssh_dir.mkdir(mode=0o700, exist_ok=True)
        os.chown(ssh_dir, uid, gid)
        authorized = ssh_dir / "authorized_keys"
        _install(authorized, self.key.with_suffix(".pub").read_bytes(), 0o600)
        os.chown(authorized, uid, gid)
        if host in self.db_hosts():
            self._prepare_database(host, names[host], etc)

    def _prepare_database(self, host: str, address: str, etc: Path) -> None:
        """Each Patroni instance's own settings, the link to the etcd3.yml dcsctl will
        deploy, and its unit, enabled (it starts once that file exists)."""
        uid, gid = _ids(etc / "passwd", "postgres")
        passwords = self.passwords()
        units = etc / "systemd" / "system"
        wants = units / "multi-user.target.wants"
        wants.mkdir(parents=True, exist_ok=True)
        (etc / "patroni").mkdir(mode=0o755, exist_ok=True)
        for instance in dbhosts.INSTANCES:
            folder = etc / instance.config_dir.removeprefix("/etc/")
            folder.mkdir(mode=0o750, exist_ok=True)
            os.chown(folder, uid, gid)
            config = folder / "patroni.yml"
            _install(config, dbhosts.patroni_config(instance, host, address, self.net.subnet,
                                                    passwords).encode(), 0o600)
            os.chown(config, uid, gid)
            link = folder / "zz-etcd3.yml"
            if not link.is_symlink():
                link.symlink_to(f"{instance.bundle_dir}/etcd3.yml")
            _install(units / f"{instance.unit}.service", dbhosts.unit(instance).encode(), 0o644)
            enabled = wants / f"{instance.unit}.service"
            if not enabled.is_symlink():
                enabled.symlink_to(f"../{instance.unit}.service")

    def _start(self, host: str, repo: Path, init: Sequence[str] = ()) -> None:
        """Boot the host's systemd, or run `init` as its PID 1 instead."""
        log = (self._host_dir(host) / "console.log").open("ab")
        process = subprocess.Popen(
            ["systemd-nspawn", "--quiet", "-D", str(self._merged(host)),
             *(() if init else ("--boot",)),
             "--register=no", "--keep-unit", f"--machine={self._machine(host)}",
             f"--network-namespace-path=/run/netns/{self.net.host_ns(host)}",
             f"--bind-ro={repo}:{rootfs.REPO_MOUNT}", "--console=read-only",
             *((f"--hostname={host}", *init) if init else ())],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        log.close()
        self._nspawn[host] = process
        (self._host_dir(host) / "nspawn.pid").write_text(str(process.pid))

    def _wait_stopped(self, host: str, timeout: float = 60) -> None:
        """The container's init gone and its systemd-nspawn exited (the tree is free)."""
        def stopped() -> bool:
            process = self._nspawn.get(host)
            if process is not None and process.poll() is None:
                return False
            flag = f"--machine={self._machine(host)} "
            return self.init_pid(host) is None and not any(
                flag in args + " " for _, args in self._nspawn_processes())
        wait_until(stopped, timeout=timeout, what=f"{host} did not stop")
        self._nspawn.pop(host, None)

    def _retry_user_sessions(self, host: str) -> None:
        """On a loaded machine systemd-user-sessions.service (which removes /run/nologin)
        was seen failed at boot, and pam_nologin then refuses every SSH login: the boot is
        otherwise complete, so start the unit again, as an operator would."""
        failed = self.enter(host, "systemctl", "is-failed", "--quiet",
                            "systemd-user-sessions.service", check=False)
        if failed.returncode == 0:
            self.enter(host, "systemctl", "restart", "systemd-user-sessions.service",
                       check=False)

    def _system_state(self, pid: int) -> str:
        result = subprocess.run(["nsenter", "-t", str(pid), "-m", "-u", "-i", "-p", "-n",
                                 "systemctl", "is-system-running"], capture_output=True,
                                text=True, timeout=10, check=False)
        return result.stdout.strip() or result.stderr.strip() or "unknown"

    def _known_host_dirs(self) -> list[str]:
        folder = self.dir / "hosts"
        return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []

    def _mounts(self) -> list[str]:
        """Mount points under the testbed's folder, innermost first."""
        points = [line.split()[4] for line in
                  Path("/proc/self/mountinfo").read_text().splitlines()]
        mine = [p for p in points if p == str(self.dir) or p.startswith(f"{self.dir}/")]
        return sorted(set(mine), key=len, reverse=True)

    def _nspawn_processes(self) -> list[tuple[int, str]]:
        found = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                args = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if args.startswith("systemd-nspawn ") and f"--machine={self.net.prefix}-" in args:
                found.append((int(proc.name), args.strip()))
        return found


def _install(path: Path, content: bytes, mode: int) -> None:
    path.write_bytes(content)
    path.chmod(mode)


def _ids(passwd: Path, user: str) -> tuple[int, int]:
    for line in passwd.read_text().splitlines():
        fields = line.split(":")
        if fields[0] == user:
            return int(fields[2]), int(fields[3])
    raise TestbedError(f"no user {user} in {passwd}")


__all__ = ["HOST_IF", "HostStatus", "Testbed", "TestbedError"]
