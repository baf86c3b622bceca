"""The testbed's database hosts (db-00.. at .70-): Debian's PostgreSQL run by Patroni 4.1.5
as a systemd service, reading its etcd settings from the bundle dcsctl deploys.

Each host can run two Patroni instances, one per scope on the same DCS: `demo` (the
guide's: Patroni's REST API on 8008, PostgreSQL on 5432, unit `patroni`) and `second`
(8009, 5433, unit `patroni-second`). Both are written at boot; each starts only once its
bundle is there (ConditionPathExists on its etcd3.yml), so a host whose spec names only
`demo` runs one.

Patroni reads one configuration: a directory of YAML files is merged in name order.
Its own settings are `patroni.yml`; `zz-etcd3.yml` links the etcd3.yml dcsctl deploys
(`etcd3:` with hosts, user, password and the bundle's TLS paths), so dcsctl never edits
Patroni's own file.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml

from tests.testbed.rootfs import PATRONI_VENV

DB_FIRST = 70  # db-00 is .70, as in the guide
PG_VERSION = 15  # bookworm's PostgreSQL
# Patroni's timing: its default ttl and retry_timeout (30, 10), loop_wait 5 instead of 10
# (loop_wait + 2 x retry_timeout = 25 <= ttl). dcs_last_seen moves once a loop, and dcsctl
# waits for that move on every node it deploys to: half the wait, same safety margins.
TTL, LOOP_WAIT, RETRY_TIMEOUT = 30, 5, 10


@dataclass(frozen=True)
class Instance:
    scope: str
    unit: str
    rest_port: int
    pg_port: int

    @property
    def bundle_dir(self) -> str:
        return "/etc/patroni/etcd" if self.unit == "patroni" else f"/etc/patroni/{self.scope}-etcd"

    @property
    def config_dir(self) -> str:
        return f"/etc/patroni/{self.scope}"

    @property
    def data_dir(self) -> str:
        return f"/var/lib/postgresql/{PG_VERSION}/{self.scope}"


FIRST = Instance("demo", "patroni", 8008, 5432)
SECOND = Instance("second", "patroni-second", 8009, 5433)
INSTANCES = (FIRST, SECOND)


@dataclass(frozen=True)
class Passwords:
    superuser: str
    replication: str


def patroni_config(instance: Instance, host: str, address: str, subnet: str,
                   passwords: Passwords) -> str:
    """patroni.yml of one instance on one host (no etcd3: that is dcsctl's file)."""
    network = f"{subnet}.0/24"
    config = {
        "scope": instance.scope,
        "namespace": "/service/",
        "name": host,
        "restapi": {"listen": f"{address}:{instance.rest_port}",
                    "connect_address": f"{address}:{instance.rest_port}"},
        "bootstrap": {
            "dcs": {"ttl": TTL, "loop_wait": LOOP_WAIT, "retry_timeout": RETRY_TIMEOUT,
                    "postgresql": {"use_pg_rewind": True,
                                   "parameters": {"max_connections": 30,
                                                  "wal_keep_size": "128MB"}}},
            "initdb": [{"encoding": "UTF8"}, {"auth-local": "trust"}],
        },
        "postgresql": {
            "listen": f"{address}:{instance.pg_port}",
            "connect_address": f"{address}:{instance.pg_port}",
            "data_dir": instance.data_dir,
            "bin_dir": f"/usr/lib/postgresql/{PG_VERSION}/bin",
            "pgpass": f"/var/lib/postgresql/.pgpass-{instance.scope}",
            "authentication": {
                "superuser": {"username": "postgres", "password": passwords.superuser},
                "replication": {"username": "replicator",
                                "password": passwords.replication},
            },
            "parameters": {"unix_socket_directories": "/var/run/postgresql",
                           "shared_buffers": "16MB"},
            "pg_hba": ["local all all trust",
                       f"host all all {network} scram-sha-256",
                       f"host replication replicator {network} scram-sha-256"],
        },
    }
    return yaml.safe_dump(config, sort_keys=False)


def unit(instance: Instance) -> str:
    """The systemd unit: Patroni as postgres; a reload is SIGHUP (what `dcsctl`'s
    `reload: systemd` runs as `systemctl reload`); stopping stops Patroni only, which stops
    PostgreSQL itself (KillMode=process, as Patroni's own unit)."""
    return f"""[Unit]
Description=Patroni {instance.scope} (dcsctl testbed)
After=network.target
ConditionPathExists={instance.bundle_dir}/etcd3.yml

[Service]
Type=simple
User=postgres
Group=postgres
ExecStart={PATRONI_VENV}/bin/patroni {instance.config_dir}
ExecReload=/bin/kill -HUP $MAINPID
KillMode=process
TimeoutSec=60
Restart=no

[Install]
WantedBy=multi-user.target
"""
