"""`dcsctl monitoring --out DIR`: Prometheus configuration, alert rules, certificates."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dcsctl import prometheus
from dcsctl.cli.common import LOOK, ClusterOption, SpecOption, app, cluster_of, show
from dcsctl.ops import monitoring as monitoring_ops
from dcsctl.report import Output


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
    show(ctx, Output(tuple(f"wrote {path}" for path in bundle.files),
                     notes=(f"issued the monitoring certificate ({monitoring_ops.ORGANIZATION}, "
                            "no etcd user: metrics only)",) if bundle.issued else ()))
