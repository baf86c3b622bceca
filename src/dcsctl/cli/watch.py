"""`dcsctl status --watch` and `--plot`: the live view and the picture of the last minutes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from rich.console import Console, RenderableType
from rich.live import Live

from dcsctl import live
from dcsctl.cli.common import Session
from dcsctl.ops import status as status_ops
from dcsctl.ops.cluster import Cluster
from dcsctl.wait import ticks


def watch(session: Session, cluster: Cluster, interval: float) -> None:
    """Refresh the view every `interval` seconds until Ctrl-C, which ends it cleanly.

    On a terminal rich's Live redraws in place (cursor moves, no screen clears): no
    flicker, and the last view stays after Ctrl-C. Into a pipe or a file (`| tee
    watch.log`) there is no place to redraw: each view is printed as it is taken, one
    after the other, so the log grows while it runs."""
    previous: live.Sample | None = None

    def frames() -> Iterator[RenderableType]:
        nonlocal previous
        for started in ticks(interval):
            current = live.Sample(status_ops.status(cluster), started,
                                  cluster.context.clock())
            yield live.frame(current, previous, interval)
            previous = current

    try:
        if not session.out.is_terminal:
            for frame in frames():
                session.out.print(frame)
                session.out.file.flush()
            return
        # The session's console has a fixed width for pipes; a live view fits the terminal.
        with Live(console=Console(), auto_refresh=False, transient=False) as view:
            for frame in frames():
                view.update(frame, refresh=True)
    except KeyboardInterrupt:
        return


def plot(session: Session, cluster: Cluster, path: Path, prometheus_url: str,
         minutes: float) -> None:
    from dcsctl import plot as plot_module  # matplotlib: only when asked for
    from dcsctl.ops import history

    found = history.from_prometheus(prometheus_url, cluster.spec.name, minutes)
    plot_module.history_png(found, path)
    session.out.print(f"wrote {path} (cluster {cluster.spec.name}, last {minutes:g} minutes "
                      f"from {prometheus_url})", highlight=False)
