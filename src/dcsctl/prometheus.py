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
# Disk latency that hurts Patroni, not etcd's hardware guidance (p99 WAL fsync below 10 ms,
# backend commit below 25 ms: `dcsctl check perf` and preflight report against that).
# Every append and heartbeat waits for the WAL fsync: past a heartbeat interval (100 ms by
# default) followers hear the leader late; past half the election timeout (1 s) they start
# elections. etcd's own mixin alerts at 0.5 s / 1 s and 0.25 s for commits; ordinary VMs
# sit at a few ms with spikes past 10 ms under a neighbour's load (docs/monitoring-soak.md).
WAL_FSYNC_P99_S = 0.1
WAL_FSYNC_P99_CRITICAL_S = 0.5
BACKEND_COMMIT_P99_S = 0.25
DB_QUOTA_FRACTION = 0.8
CERT_WARN_DAYS = 30
# gRPC codes that mean etcd failed a request (the mixin's list): not the client's own
# cancel, not NotFound or PermissionDenied, which are answers.
FAILED_CODES = ("Unknown|FailedPrecondition|ResourceExhausted|Internal|Unavailable|DataLoss|"
                "DeadlineExceeded")
# Only unary calls: a watch or lease keep-alive stream ends with Unavailable whenever its
# client goes away (Patroni's every restart), which says nothing about etcd.
UNARY = 'grpc_type="unary"'
FAILED_PERCENT, FAILED_PERCENT_CRITICAL = 1, 5
GRPC_P99_S = 0.15  # the mixin's: a unary request (a lock renewal) slower than this
PEER_RTT_P99_S = 0.15
FRAGMENTED_BELOW = 0.5  # in use / allocated
FRAGMENTED_MIN_BYTES = 100 * 2**20  # small databases are never worth a defrag alert


def _failed_percent() -> str:
    return (f"100 * sum without (grpc_type, grpc_code) (rate(grpc_server_handled_total"
            f"{{{ETCD},{UNARY},grpc_code=~\"{FAILED_CODES}\"}}[5m])) / sum without "
            f"(grpc_type, grpc_code) (rate(grpc_server_handled_total{{{ETCD},{UNARY}}}[5m]))")


def _p99(histogram: str) -> str:
    return (f"histogram_quantile(0.99, sum by (cluster, member, instance, le) "
            f"(rate({histogram}_bucket{{{ETCD}}}[5m])))")


def _failed_requests(percent: int, for_: str, severity: str) -> AlertRule:
    """EtcdFailedGrpcRequests at one severity: the same alert, a higher share for longer."""
    return AlertRule(
        "EtcdFailedGrpcRequests", f"{_failed_percent()} > {percent}", for_, severity,
        "etcd member {{ $labels.member }} of DCS {{ $labels.cluster }} fails "
        "{{ $value | humanize }}% of {{ $labels.grpc_method }} requests",
        "etcd answers these calls with an error of its own (unavailable, deadline, no "
        "space, internal). Patroni retries, then counts the DCS as unreachable.",
        f"dcsctl status {_CLUSTER}; dcsctl logs {{{{ $labels.member }}}} {_CLUSTER}")


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
        "{{ $value | humanizeDuration }} (longer than a heartbeat interval)",
        "Every write and heartbeat waits for this fsync: followers hear the leader late, "
        "and Patroni's lock renewals slow down. A slow or shared disk.",
        f"dcsctl check perf {_CLUSTER}"),
    AlertRule(
        "EtcdSlowWalFsync", f"{_p99('etcd_disk_wal_fsync_duration_seconds')} "
        f"> {WAL_FSYNC_P99_CRITICAL_S}", "10m", "critical",
        "etcd member {{ $labels.member }} of DCS {{ $labels.cluster }}: WAL fsync p99 "
        "{{ $value | humanizeDuration }} (half an election timeout)",
        "Followers give up on a leader this slow: elections follow, and every election "
        "pauses Patroni's lock renewals. Move etcd's data dir to a faster disk.",
        f"dcsctl check perf {_CLUSTER}"),
    AlertRule(
        "EtcdSlowBackendCommit", f"{_p99('etcd_disk_backend_commit_duration_seconds')} "
        f"> {BACKEND_COMMIT_P99_S}", "10m", "warning",
        "etcd member {{ $labels.member }} of DCS {{ $labels.cluster }}: backend commit p99 "
        "{{ $value | humanizeDuration }}",
        "The database commits to disk too slowly: a slow or shared disk. Writes queue up "
        "behind it.",
        f"dcsctl check perf {_CLUSTER}"),
    _failed_requests(FAILED_PERCENT, "10m", "warning"),
    _failed_requests(FAILED_PERCENT_CRITICAL, "5m", "critical"),
    AlertRule(
        "EtcdSlowGrpcRequests",
        f"histogram_quantile(0.99, sum without (grpc_type) (rate("
        f"grpc_server_handling_seconds_bucket{{{ETCD},{UNARY},grpc_method!=\"Defragment\"}}"
        f"[5m]))) > {GRPC_P99_S}", "10m", "warning",
        "etcd member {{ $labels.member }} of DCS {{ $labels.cluster }}: "
        "{{ $labels.grpc_method }} p99 {{ $value | humanizeDuration }}",
        "Patroni gives each etcd host retry_timeout / N seconds per request; requests this "
        "slow eat into it. Usual causes: a slow disk, an overloaded host, a large request.",
        f"dcsctl status {_CLUSTER}; dcsctl check perf {_CLUSTER}"),
    AlertRule(
        "EtcdSlowPeerRoundTrip",
        f"histogram_quantile(0.99, rate(etcd_network_peer_round_trip_time_seconds_bucket"
        f"{{{ETCD}}}[5m])) > {PEER_RTT_P99_S}", "10m", "warning",
        "etcd member {{ $labels.member }} of DCS {{ $labels.cluster }}: round trip to peer "
        "{{ $labels.To }} p99 {{ $value | humanizeDuration }}",
        "Members reach each other slowly: heartbeats arrive late and elections follow. "
        "The network between the hosts, or an overloaded host.",
        f"dcsctl preflight {_CLUSTER}"),
    AlertRule(
        "EtcdDatabaseGrowingToQuota",
        f"predict_linear(etcd_mvcc_db_total_size_in_bytes{{{ETCD}}}[4h], 4 * 3600) "
        f"> etcd_server_quota_backend_bytes{{{ETCD}}}",
        "10m", "warning",
        "etcd database of {{ $labels.member }} (DCS {{ $labels.cluster }}) grows fast enough "
        "to reach its space quota within 4 hours",
        "At the quota etcd refuses every write, Patroni's leader keys too. Find the writer "
        "(a client filling keys, history not compacted), then compact and defragment.",
        f"dcsctl status {_CLUSTER}; dcsctl maintenance {_CLUSTER}"),
    AlertRule(
        "EtcdDatabaseFragmented",
        f"last_over_time(etcd_mvcc_db_total_size_in_use_in_bytes{{{ETCD}}}[5m]) "
        f"/ last_over_time(etcd_mvcc_db_total_size_in_bytes{{{ETCD}}}[5m]) "
        f"< {FRAGMENTED_BELOW} and etcd_mvcc_db_total_size_in_use_in_bytes{{{ETCD}}} "
        f"> {FRAGMENTED_MIN_BYTES}",
        "10m", "warning",
        "etcd database of {{ $labels.member }} (DCS {{ $labels.cluster }}) is "
        "{{ $value | humanizePercentage }} in use: the rest is free pages",
        "Freed pages still count against the space quota until a defragmentation gives "
        "them back.",
        f"dcsctl maintenance {_CLUSTER}"),
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
        "DCS. `dcsctl up` renews what expires within 30 days, and deploys the Patroni "
        "bundles of the nodes the spec lists.",
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
