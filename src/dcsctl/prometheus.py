"""Monitoring as data: the Prometheus configuration and alert rules for a cluster.

Pure: `prometheus_config` and `RULES` are values; `dump` turns them into YAML bytes.
Every metric named here exists under the same name in etcd 3.5, 3.6 and 3.7 (checked
against the /metrics pages of 3.5.35, 3.6.16 and 3.7.3). etcd exports no alarm metric:
NOSPACE is seen as writes refused with gRPC ResourceExhausted, or the database at its
quota. Certificate expiry and backup age are facts etcd cannot know; dcsctl writes them
as node_exporter textfiles (see textfile.py) and a `dcsctl-facts` job scrapes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import yaml

from dcsctl.spec import ClusterSpec

ETCD_JOB = "etcd"
FACTS_JOB = "dcsctl-facts"
# Matches the job whatever an existing Prometheus calls it (etcd, etcd-dcs, ...), as
# etcd's own mixin does.
ETCD = 'job=~".*etcd.*"'
CA_FILE, CERT_FILE, KEY_FILE = "ca.crt", "monitoring.crt", "monitoring.key"
RULES_FILE = "rules.yml"


@dataclass(frozen=True)
class AlertRule:
    """One alert: what it watches, how long before it fires, and what a DBA does."""

    name: str
    expr: str
    for_: str
    severity: str  # critical: Patroni is or will soon be hurt; warning: act this week
    summary: str
    description: str
    command: str  # the dcsctl command to run first

    def document(self) -> dict[str, object]:
        return {
            "alert": self.name,
            "expr": self.expr,
            "for": self.for_,
            "labels": {"severity": self.severity},
            "annotations": {"summary": self.summary, "description": self.description,
                            "command": self.command},
        }


_CLUSTER = "-c {{ $labels.cluster }}"
# etcd's hardware guidance: the 99th percentile of WAL fsync below 10 ms and of backend
# commit below 25 ms (etcd docs, "Hardware recommendations" / "Tuning").
WAL_FSYNC_P99_S = 0.010
BACKEND_COMMIT_P99_S = 0.025
DB_QUOTA_FRACTION = 0.8
CERT_WARN_DAYS = 30


def _p99(histogram: str) -> str:
    return (f"histogram_quantile(0.99, sum by (cluster, member, instance, le) "
            f"(rate({histogram}_bucket{{{ETCD}}}[5m])))")


RULES: tuple[AlertRule, ...] = (
    AlertRule(
        "EtcdMemberDown", f"up{{{ETCD}}} == 0", "1m", "critical",
        "etcd member {{ $labels.member }} of DCS {{ $labels.cluster }} is down",
        "Prometheus cannot scrape {{ $labels.instance }}. The DCS still has quorum while a "
        "majority answers, but one more failure stops every Patroni cluster using it.",
        f"dcsctl status {_CLUSTER}; dcsctl logs {{{{ $labels.member }}}} {_CLUSTER}"),
    AlertRule(
        "EtcdQuorumLost",
        f"sum by (cluster) (up{{{ETCD}}} == bool 1) "
        f"< floor(count by (cluster) (up{{{ETCD}}}) / 2) + 1",
        "30s", "critical",
        "DCS {{ $labels.cluster }} lost quorum: fewer than a majority of etcd members answer",
        "Patroni cannot renew its leader lock: primaries demote once their TTL runs out. "
        "Bring members back before anything else.",
        f"dcsctl status {_CLUSTER}; dcsctl up {_CLUSTER}"),
    AlertRule(
        "EtcdNoLeader", f"etcd_server_has_leader{{{ETCD}}} == 0", "30s", "critical",
        "etcd member {{ $labels.member }} of DCS {{ $labels.cluster }} has no leader",
        "Without a leader no write is accepted: Patroni cannot renew its leader lock and "
        "primaries demote when their TTL runs out.",
        f"dcsctl status {_CLUSTER}"),
    AlertRule(
        "EtcdFrequentLeaderChanges",
        f"max by (cluster) (increase(etcd_server_leader_changes_seen_total{{{ETCD}}}[15m]))"
        " >= 4",
        "1m", "warning",
        "DCS {{ $labels.cluster }} changed its etcd leader {{ $value | humanize }} times in "
        "15 minutes",
        "Each election pauses writes; Patroni's leader-lock renewals can time out. Usual "
        "causes: slow disks, an overloaded host, a flaky network (a rolling restart, "
        "rotation or upgrade changes the leader a few times by itself).",
        f"dcsctl status {_CLUSTER}; dcsctl check perf {_CLUSTER}"),
    AlertRule(
        "EtcdProposalsFailing",
        f"increase(etcd_server_proposals_failed_total{{{ETCD}}}[15m]) > 5", "5m", "warning",
        "etcd member {{ $labels.member }} of DCS {{ $labels.cluster }} fails writes "
        "({{ $value | humanize }} failed proposals in 15 minutes)",
        "Failed proposals are writes the cluster could not commit, mostly during "
        "elections or when quorum is shaky. Patroni sees them as DCS errors.",
        f"dcsctl status {_CLUSTER}"),
    AlertRule(
        "EtcdSlowWalFsync", f"{_p99('etcd_disk_wal_fsync_duration_seconds')} "
        f"> {WAL_FSYNC_P99_S}", "10m", "warning",
        "etcd member {{ $labels.member }} of DCS {{ $labels.cluster }}: WAL fsync p99 "
        "{{ $value | humanizeDuration }} (etcd's guidance: below 10ms)",
        "Every write waits for this fsync. A slow disk makes heartbeats late, causes "
        "elections and slows Patroni's lock renewals.",
        f"dcsctl check perf {_CLUSTER}"),
    AlertRule(
        "EtcdSlowBackendCommit", f"{_p99('etcd_disk_backend_commit_duration_seconds')} "
        f"> {BACKEND_COMMIT_P99_S}", "10m", "warning",
        "etcd member {{ $labels.member }} of DCS {{ $labels.cluster }}: backend commit p99 "
        "{{ $value | humanizeDuration }} (etcd's guidance: below 25ms)",
        "The database commits to disk too slowly: a slow or shared disk. Writes queue up "
        "behind it.",
        f"dcsctl check perf {_CLUSTER}"),
    AlertRule(
        "EtcdDatabaseNearQuota",
        f"etcd_mvcc_db_total_size_in_bytes{{{ETCD}}} "
        f"/ etcd_server_quota_backend_bytes{{{ETCD}}} > {DB_QUOTA_FRACTION}",
        "5m", "warning",
        "etcd database of {{ $labels.member }} (DCS {{ $labels.cluster }}) is at "
        "{{ $value | humanizePercentage }} of its space quota",
        "At the quota etcd raises NOSPACE and refuses every write, Patroni's leader keys "
        "too. Compact and defragment now, or raise etcd.quota_backend_bytes.",
        f"dcsctl maintenance {_CLUSTER}"),
    AlertRule(
        "EtcdNoSpace",
        f"increase(grpc_server_handled_total{{{ETCD},grpc_code=\"ResourceExhausted\","
        f"grpc_service=~\"etcdserverpb.(KV|Lease)\"}}[5m]) > 0 "
        f"or etcd_mvcc_db_total_size_in_bytes{{{ETCD}}} "
        f">= etcd_server_quota_backend_bytes{{{ETCD}}}",
        "0s", "critical",
        "etcd member {{ $labels.member }} of DCS {{ $labels.cluster }} refuses writes "
        "(NOSPACE alarm: database space exceeded)",
        "Writes come back 'database space exceeded' (or 'too many requests'): Patroni "
        "cannot keep its leader lock and every primary demotes. `dcsctl maintenance` "
        "compacts, defragments and disarms the alarm once there is room.",
        f"dcsctl status {_CLUSTER}; dcsctl maintenance {_CLUSTER}"),
    AlertRule(
        "DcsctlCertificateExpiring",
        f"dcsctl_certificate_expiry_timestamp_seconds - time() < {CERT_WARN_DAYS} * 86400",
        "10m", "warning",
        "Certificate of {{ $labels.holder }} ({{ $labels.role }}) in DCS "
        "{{ $labels.cluster }} expires in {{ $value | humanizeDuration }}",
        "An expired member or client certificate cuts that member or client off the "
        "DCS. `dcsctl up` renews what expires within 30 days; Patroni bundles need "
        "`certs rotate --patroni` and a redeploy.",
        f"dcsctl certs check {_CLUSTER}; dcsctl up {_CLUSTER}"),
    AlertRule(
        "DcsctlBackupTooOld",
        "time() - (max by (cluster) (dcsctl_backup_last_success_timestamp_seconds) "
        "or max by (cluster) (dcsctl_backup_schedule_created_timestamp_seconds)) "
        "> 2 * max by (cluster) (dcsctl_backup_schedule_interval_seconds)",
        "5m", "warning",
        "The last good backup of DCS {{ $labels.cluster }} is older than twice its schedule",
        "The backup timer stopped or its runs fail: a restore would lose everything since "
        "the last good snapshot.",
        f"dcsctl backup list {_CLUSTER}; systemctl status dcsctl-backup-{{{{ $labels.cluster }}}}"
        ".timer; dcsctl backup " + _CLUSTER),
    AlertRule(
        "DcsctlFactsMissing", f'up{{job="{FACTS_JOB}"}} == 0', "10m", "warning",
        "Prometheus cannot read dcsctl's facts from node_exporter on {{ $labels.instance }}",
        "Without them the certificate-expiry and backup-age alerts cannot fire.",
        "systemctl status prometheus-node-exporter; ls $DCSCTL_HOME/textfile"),
)


def rules_document(rules: Sequence[AlertRule] = RULES) -> dict[str, object]:
    return {"groups": [{"name": "dcsctl-etcd", "rules": [r.document() for r in rules]}]}


@dataclass(frozen=True)
class Scrape:
    """How Prometheus reaches the cluster: intervals, Alertmanager, node_exporter."""

    scrape_interval: str = "15s"
    evaluation_interval: str = "15s"
    alertmanagers: tuple[str, ...] = ()  # host:port
    facts_target: str | None = "localhost:9100"  # node_exporter reading dcsctl's textfiles


def prometheus_config(cluster: ClusterSpec, scrape: Scrape) -> dict[str, object]:
    """A Prometheus configuration that runs as it is from the directory it is written to
    (Prometheus resolves relative file names against the configuration's directory).

    Metrics stay on each member's client port: the monitoring certificate is accepted
    there like any client certificate of the cluster CA, and the CRL applies to it."""
    etcd_job: dict[str, object] = {
        "job_name": ETCD_JOB,
        "scheme": "https",
        "tls_config": {"ca_file": CA_FILE, "cert_file": CERT_FILE, "key_file": KEY_FILE,
                       # Every member certificate carries the cluster's shared DNS name.
                       "server_name": cluster.shared_dns_name, "min_version": "TLS13"},
        "static_configs": [
            {"targets": [f"{m.address}:{cluster.client_port(m)}"],
             "labels": {"cluster": cluster.name, "member": m.name}}
            for m in cluster.members
        ],
    }
    jobs: list[dict[str, object]] = [etcd_job]
    if scrape.facts_target:
        jobs.append({"job_name": FACTS_JOB, "static_configs": [
            {"targets": [scrape.facts_target]}]})
    config: dict[str, object] = {
        "global": {"scrape_interval": scrape.scrape_interval,
                   "evaluation_interval": scrape.evaluation_interval},
        "rule_files": [RULES_FILE],
        "scrape_configs": jobs,
    }
    if scrape.alertmanagers:
        config["alerting"] = {"alertmanagers": [
            {"static_configs": [{"targets": list(scrape.alertmanagers)}]}]}
    return config


def dump(document: dict[str, object]) -> bytes:
    return yaml.safe_dump(document, sort_keys=False, width=100).encode()
