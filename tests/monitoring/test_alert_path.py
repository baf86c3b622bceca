"""End to end with the real programs: Prometheus runs the configuration `dcsctl
monitoring` wrote and scrapes a lab cluster and node_exporter (dcsctl's facts); a killed
member's EtcdMemberDown alert goes through Alertmanager to a webhook within its `for:`
window, and resolves when the member is back. Then `status --plot` draws it."""

from __future__ import annotations

import os
import signal
import time
import urllib.parse
from pathlib import Path

from dcsctl.prometheus import RULES
from dcsctl.wait import wait_until
from tests.monitoring.servers import (
    Webhook,
    alertmanager_config,
    daemon,
    get_json,
    node_exporter,
    prometheus,
    wait_ready,
)
from tests.monitoring.test_monitoring import cluster_of, promtool
from tests.support.lab import LabCluster, loopback_subnet

MEMBER_DOWN_FOR_S = 60.0
assert next(r for r in RULES if r.name == "EtcdMemberDown").for_ == "1m"
# After the `for:` window: one scrape and one evaluation (1 s each here), Alertmanager's
# group_wait (1 s), delivery; generous for a loaded 2-core machine.
SLACK_S = 15.0


def _targets(prometheus_url: str) -> dict[str, str]:
    """scrapeUrl -> health of every active target."""
    data = get_json(f"{prometheus_url}/api/v1/targets?state=active")["data"]
    assert isinstance(data, dict)
    return {t["scrapeUrl"]: t["health"] for t in data["activeTargets"]}


def _value(prometheus_url: str, query: str) -> list[dict[str, object]]:
    found = get_json(f"{prometheus_url}/api/v1/query?"
                     + urllib.parse.urlencode({"query": query}))["data"]
    assert isinstance(found, dict)
    result = found["result"]
    assert isinstance(result, list)
    return result


def test_member_down_reaches_the_webhook_within_its_for_window_and_resolves(
    lab: LabCluster, tmp_path: Path
) -> None:
    subnet = loopback_subnet()
    prom_ip, am_ip, exporter_ip, hook_ip = (f"{subnet}.{i}" for i in (1, 2, 3, 4))
    textfiles = tmp_path / "textfile"
    lab.environ["DCSCTL_TEXTFILE_DIR"] = str(textfiles)
    lab.ok("up")
    # dcsctl's facts: certificate expiry, a backup, its schedule.
    lab.dcsctl("certs", "check")  # exit 0 or 5: the facts are written either way
    lab.ok("backup")
    lab.ok("backup", "schedule", "--keep", "3", "--unit-dir", str(tmp_path / "units"))
    assert {p.name for p in textfiles.iterdir()} == {
        f"dcsctl-{lab.name}-{s}.prom" for s in ("certs", "backup", "backup-schedule")}

    out = tmp_path / "monitoring"
    lab.ok("monitoring", "--out", str(out), "--alertmanager", f"{am_ip}:9093",
           "--facts", f"{exporter_ip}:9100", "--scrape-interval", "1s",
           "--evaluation-interval", "1s")
    checked = promtool("check", "config", "prometheus.yml", cwd=out)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    webhook = Webhook(hook_ip)
    (tmp_path / "alertmanager.yml").write_text(alertmanager_config(webhook.url))
    prometheus_url = f"http://{prom_ip}:9090"
    logs = tmp_path / "logs"
    logs.mkdir()
    try:
        with node_exporter(exporter_ip, textfiles, logs), \
             daemon(["prometheus-alertmanager", f"--config.file={tmp_path}/alertmanager.yml",
                     f"--storage.path={tmp_path}/alertmanager",
                     f"--web.listen-address={am_ip}:9093", "--cluster.listen-address="],
                    logs / "alertmanager.log") as alertmanager, \
             prometheus(prom_ip, out, tmp_path, logs):
            wait_ready(f"http://{am_ip}:9093/-/ready", alertmanager, logs / "alertmanager.log")

            # Every member and node_exporter are up.
            members = len(lab.addresses())
            wait_until(lambda: (len(t := _targets(prometheus_url)) == members + 1
                                and set(t.values()) == {"up"}),
                       timeout=30, what=f"not every target up: {_targets(prometheus_url)}")
            assert {k for k in _targets(prometheus_url) if k.startswith("https://")} == {
                f"https://{a}:2379/metrics" for a in lab.addresses()}
            for metric in ("dcsctl_certificate_expiry_timestamp_seconds",
                           "dcsctl_backup_last_success_timestamp_seconds",
                           "dcsctl_backup_schedule_interval_seconds"):
                wait_until(lambda m=metric: _value(prometheus_url, m), timeout=15,
                           what=f"Prometheus has no {metric}")
            assert not webhook.notifications, "an alert fired on a healthy cluster"

            # Kill a member; time its alert at the webhook.
            cluster = cluster_of(lab)
            victim = cluster.spec.members[-1].name
            pid = cluster.service(victim).running_pid()
            assert pid is not None
            killed = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            note = wait_until(
                lambda: webhook.first("EtcdMemberDown", "firing", member=victim),
                timeout=MEMBER_DOWN_FOR_S + SLACK_S + 15,
                what="EtcdMemberDown did not reach the webhook")
            took = note.received - killed
            print(f"\nkill -> webhook (EtcdMemberDown, for: 1m): {took:.1f} s")
            assert MEMBER_DOWN_FOR_S <= took <= MEMBER_DOWN_FOR_S + SLACK_S
            alert = next(a for a in note.alerts if a["labels"]["member"] == victim)
            assert alert["labels"]["cluster"] == lab.name
            assert alert["annotations"]["command"].startswith(f"dcsctl status -c {lab.name}")

            # Back up: the alert resolves.
            lab.ok("up")
            restarted = time.monotonic()
            resolved = wait_until(
                lambda: webhook.first("EtcdMemberDown", "resolved", after=restarted,
                                      member=victim),
                timeout=30, what="EtcdMemberDown did not resolve")
            print(f"restart -> resolved at the webhook: {resolved.received - restarted:.1f} s")
            firing_others = {a["labels"]["alertname"] for n in webhook.notifications
                             for a in n.alerts if a["status"] == "firing"}
            assert firing_others <= {"EtcdMemberDown", "EtcdFrequentLeaderChanges"}

            # The picture of what Prometheus holds.
            png = tmp_path / "incident.png"
            lab.ok("status", "--plot", str(png), "--prometheus", prometheus_url,
                   "--minutes", "3")
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            assert png.stat().st_size > 20_000
            if keep := os.environ.get("DCSCTL_KEEP_PLOT"):
                Path(keep).write_bytes(png.read_bytes())
    finally:
        webhook.close()
