"""The replay report as one PNG (matplotlib), for tickets, chats and post-mortems.

matplotlib is optional (``pip install 'rollwatch[report]'``): the HTML report needs
nothing, and the worker image should not carry a plotting stack. It is drawn through
the object API on an Agg canvas, never pyplot, so no global state and no display.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from rollwatch.ops.charts import COLOURS, GateSeries, Marker
from rollwatch.ops.errors import ReportError

__all__ = ["write_png"]


def _times(ms: Sequence[int]) -> list[datetime]:
    return [datetime.fromtimestamp(t / 1000, UTC) for t in ms]


def _values(values: Sequence[float | None]) -> list[float]:
    return [float("nan") if v is None else v for v in values]


def write_png(path: Path, title: str, series: Sequence[GateSeries], markers: Sequence[Marker]) -> None:
    """Draw every gate in a column of panels sharing the time axis."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.dates import DateFormatter
        from matplotlib.figure import Figure
    except ImportError:
        raise ReportError(
            "a PNG needs matplotlib: pip install 'rollwatch[report]' (the HTML report does not)"
        ) from None
    rows = max(1, len(series))
    figure = Figure(figsize=(11, 2.1 * rows + 0.8), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
    figure.suptitle(title, fontsize=12)
    for ax, s in zip(axes, series, strict=False):
        times = _times(s.times)
        for i, state in enumerate(s.states):
            if state in ("breached", "suspect"):
                end = times[i + 1] if i + 1 < len(times) else times[i]
                ax.axvspan(times[i], end, color=COLOURS[state], linewidth=0)
        for at_ms, what in s.turns():
            when = datetime.fromtimestamp(at_ms / 1000, UTC)
            ax.axvline(when, color="#7a5300", linestyle=":", linewidth=1.2)
            ax.annotate(
                what,
                (when, 0.0),
                xycoords=("data", "axes fraction"),
                xytext=(3, 4),
                textcoords="offset points",
                fontsize=7,
                color="#7a5300",
            )
        ax.plot(
            times, _values(s.threshold), color=COLOURS["threshold"], linestyle="--", linewidth=1.2, label="threshold"
        )
        ax.plot(times, _values(s.control), color=COLOURS["control"], linewidth=1.4, label="control")
        ax.plot(times, _values(s.candidate), color=COLOURS["candidate"], linewidth=1.6, label="candidate")
        for marker in s.markers:
            when = datetime.fromtimestamp(marker.at_ms / 1000, UTC)
            ax.axvline(when, color=COLOURS.get(marker.kind, COLOURS["rollback"]), linewidth=1.8)
            ax.annotate(
                f"{marker.kind} {marker.action}",
                (when, 1.0),
                xycoords=("data", "axes fraction"),
                xytext=(3, -10),
                textcoords="offset points",
                fontsize=8,
                color=COLOURS.get(marker.kind, COLOURS["rollback"]),
            )
        if all(v is None for v in (*s.candidate, *s.control, *s.threshold)):
            ax.text(0.5, 0.5, "no value yet: not enough samples", transform=ax.transAxes, ha="center", color="#888888")
        ax.set_title(f"{s.gate}: {s.metric} ({s.kind}, {s.window}) — {s.final_state}", fontsize=9, loc="left")
        ax.grid(True, alpha=0.3)
        ax.tick_params(labelsize=8)
    axes[0].legend(loc="upper left", fontsize=8, ncols=3)
    axes[-1].xaxis.set_major_formatter(DateFormatter("%H:%M", tz=UTC))  # type: ignore[no-untyped-call]
    if not series and markers:
        axes[0].set_title("decisions only")
    figure.savefig(path, format="png")
