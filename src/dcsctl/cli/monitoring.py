"""`dcsctl monitoring --out DIR`: Prometheus configuration, alert rules, certificates."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dcsctl import prometheus
from dcsctl.cli.common import LOOK, ClusterOption, SpecOption, app, cluster_of, session_of
from dcsctl.ops import monitoring as monitoring_ops


@app.command(rich_help_panel=LOOK)
def monitoring(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", "-o", help="directory to write into")],
    spec_file: SpecOption = None,
    cluster_name: ClusterOption = None,
    alertmanager: Annotated[list[str] | None, typer.Option(
        "--alertmanager", help="HOST:PORT of an Alertmanager (repeatable)")] = None,
    facts: Annotated[str, typer.Option(
        "--facts", help="HOST:PORT of the node_exporter that reads dcsctl's textfiles "
        "('' for none)")] = "localhost:9100",
    scrape_interval: Annotated[str, typer.Option("--scrape-interval")] = "15s",
    evaluation_interval: Annotated[str, typer.Option("--evaluation-interval")] = "15s",
) -> None:
    """Write DIR/prometheus.yml (scrapes every member over TLS with a metrics-only
    certificate) and DIR/rules.yml (alerts): `prometheus --config.file=DIR/prometheus.yml`."""
    scrape = prometheus.Scrape(scrape_interval, evaluation_interval, tuple(alertmanager or ()),
                               facts or None)
    bundle = monitoring_ops.write_bundle(cluster_of(ctx, spec_file, cluster_name), out, scrape)
    session = session_of(ctx)
    for path in bundle.files:
        session.out.print(f"wrote {path}", highlight=False)
    if bundle.issued:
        session.err.print(f"issued the monitoring certificate ({monitoring_ops.ORGANIZATION}, "
                          "no etcd user: metrics only)", highlight=False)
