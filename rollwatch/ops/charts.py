"""Gate values over time, as data and as inline SVG.

A replay keeps every gate's result at every judgement (``ReplayReport.samples``). This
module turns them into one series per gate (candidate, control and threshold, with the
state at each moment) and draws them as SVG written here, with no script and no CDN,
so the HTML report opens offline, in a mail attachment or in a headless browser alike.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape
from typing import Final

from rollwatch.replay import ReplayReport

__all__ = [
    "COLOURS",
    "GateSeries",
    "Marker",
    "decision_markers",
    "gate_series",
    "nice_ticks",
    "svg_gate_chart",
    "svg_timeline",
]

COLOURS: Final = {
    "candidate": "#d62728",
    "control": "#1f77b4",
    "threshold": "#444444",
    "breached": "#fbd5d5",
    "suspect": "#fff1c2",
    "insufficient": "#eeeeee",
    "rollback": "#b10000",
    "escalate": "#e67e00",
    "promote": "#1a7f37",
    "hold": "#777777",
}
_W: Final = 960
_PAD_L, _PAD_R, _PAD_T, _PAD_B = 70, 20, 28, 34


@dataclass(frozen=True, slots=True)
class Marker:
    """A decision at a moment, drawn as a vertical line."""

    at_ms: int
    kind: str
    gate: str
    action: str


@dataclass(slots=True)
class GateSeries:
    """One gate's readings at every judgement of the replay."""

    gate: str
    kind: str
    metric: str
    window: str
    times: list[int] = field(default_factory=list)
    candidate: list[float | None] = field(default_factory=list)
    control: list[float | None] = field(default_factory=list)
    threshold: list[float | None] = field(default_factory=list)
    states: list[str] = field(default_factory=list)
    markers: list[Marker] = field(default_factory=list)

    @property
    def final_state(self) -> str:
        return self.states[-1] if self.states else "insufficient"

    def turns(self) -> list[tuple[int, str]]:
        """When the gate turned ``suspect`` and when it was ``confirmed`` (turned breached), in order."""
        out: list[tuple[int, str]] = []
        previous = ""
        for at_ms, state in zip(self.times, self.states, strict=True):
            if state == "suspect" and previous not in ("suspect", "breached"):
                out.append((at_ms, "suspect"))
            elif state == "breached" and previous != "breached":
                out.append((at_ms, "confirmed"))
            previous = state
        return out


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def decision_markers(report: ReplayReport) -> list[Marker]:
    return [Marker(e.at_ms, e.decision.kind, e.decision.gate, e.decision.action) for e in report.timeline]


def gate_series(report: ReplayReport) -> list[GateSeries]:
    """One series per gate, in the ticket's order, with that gate's decisions as markers."""
    series: dict[str, GateSeries] = {}
    for now_ms, results in report.samples:
        for r in results:
            s = series.get(r.gate)
            if s is None:
                s = series[r.gate] = GateSeries(r.gate, r.kind, r.metric, r.window)
            s.times.append(now_ms)
            s.candidate.append(_finite(r.observed))
            s.control.append(_finite(r.control))
            s.threshold.append(_finite(r.threshold))
            s.states.append(r.state)
    for marker in decision_markers(report):
        if marker.gate in series:
            series[marker.gate].markers.append(marker)
    return list(series.values())


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] (1, 2 or 5 times a power of ten apart)."""
    if not hi > lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(1, count)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(lo / step) * step
    ticks = []
    value = first
    while value <= hi + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    if ticks[-1] < hi:
        ticks.append(round(value, 12))
    return ticks


def _label(value: float) -> str:
    return f"{value:.4g}"


def _clock(ms: int, span_ms: int) -> str:
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.strftime("%H:%M" if span_ms <= 2 * 86_400_000 else "%m-%d %H:%M")


class _Frame:
    """Maps (time, value) into the plot area of an SVG of ``height`` pixels."""

    def __init__(self, t0: int, t1: int, lo: float, hi: float, height: int) -> None:
        self.t0, self.t1 = t0, max(t1, t0 + 1)
        self.lo, self.hi = lo, hi if hi > lo else lo + 1.0
        self.height = height
        self.left, self.right = _PAD_L, _W - _PAD_R
        self.top, self.bottom = _PAD_T, height - _PAD_B

    def x(self, ms: int) -> float:
        return self.left + (ms - self.t0) / (self.t1 - self.t0) * (self.right - self.left)

    def y(self, value: float) -> float:
        return self.bottom - (value - self.lo) / (self.hi - self.lo) * (self.bottom - self.top)

    def time_axis(self) -> list[str]:
        parts = [f'<line class="axis" x1="{self.left}" y1="{self.bottom}" x2="{self.right}" y2="{self.bottom}"/>']
        span = self.t1 - self.t0
        for i in range(7):
            ms = self.t0 + span * i // 6
            x = self.x(ms)
            parts.append(f'<line class="tick" x1="{x:.1f}" y1="{self.bottom}" x2="{x:.1f}" y2="{self.bottom + 4}"/>')
            parts.append(
                f'<text class="tick-label" x="{x:.1f}" y="{self.bottom + 17}" text-anchor="middle">'
                f"{_clock(ms, span)}</text>"
            )
        return parts


def _path(frame: _Frame, times: Sequence[int], values: Sequence[float | None]) -> str:
    """An SVG path through the known values, broken where a value is missing."""
    commands: list[str] = []
    pen_down = False
    for ms, value in zip(times, values, strict=True):
        if value is None:
            pen_down = False
            continue
        commands.append(f"{'L' if pen_down else 'M'}{frame.x(ms):.1f},{frame.y(value):.1f}")
        pen_down = True
    return " ".join(commands)


def _bands(frame: _Frame, series: GateSeries, state: str) -> list[str]:
    """Shaded spans where the gate was in ``state`` (each reading holds until the next)."""
    out = []
    n = len(series.times)
    i = 0
    while i < n:
        if series.states[i] != state:
            i += 1
            continue
        j = i
        while j + 1 < n and series.states[j + 1] == state:
            j += 1
        x0 = frame.x(series.times[i])
        x1 = frame.x(series.times[j + 1]) if j + 1 < n else frame.right
        out.append(
            f'<rect class="band {state}" x="{x0:.1f}" y="{frame.top}" width="{max(x1 - x0, 1.5):.1f}" '
            f'height="{frame.bottom - frame.top}" fill="{COLOURS[state]}"><title>{state}</title></rect>'
        )
        i = j + 1
    return out


def _marker(frame: _Frame, marker: Marker, row: int = 0) -> str:
    x = frame.x(marker.at_ms)
    colour = COLOURS.get(marker.kind, COLOURS["rollback"])
    when = datetime.fromtimestamp(marker.at_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    label = escape(f"{marker.kind} {marker.action}")
    anchor = "end" if x > frame.right - 160 else "start"
    dx = -4 if anchor == "end" else 4
    return (
        f'<g class="marker {escape(marker.kind)}" data-at-ms="{marker.at_ms}">'
        f"<title>{escape(when)}: {label} (gate {escape(marker.gate)})</title>"
        f'<line x1="{x:.1f}" y1="{frame.top}" x2="{x:.1f}" y2="{frame.bottom}" stroke="{colour}" '
        f'stroke-width="2"/>'
        f'<text x="{x + dx:.1f}" y="{frame.top + 12 + 13 * row}" fill="{colour}" text-anchor="{anchor}" '
        f'class="marker-label">{label}</text></g>'
    )


def svg_gate_chart(series: GateSeries, t0: int, t1: int, height: int = 250) -> str:
    """One gate: candidate and control against the threshold, breaches shaded, decisions marked."""
    values = [v for vs in (series.candidate, series.control, series.threshold) for v in vs if v is not None]
    lo = min([0.0, *values])
    hi = max(values) * 1.08 if values and max(values) > lo else lo + 1.0
    ticks = nice_ticks(lo, hi)
    frame = _Frame(t0, t1, ticks[0], ticks[-1], height)
    title = f"{series.gate}: {series.metric} ({series.kind}, {series.window})"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" data-gate="{escape(series.gate)}" '
        f'viewBox="0 0 {_W} {height}" width="{_W}" height="{height}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<rect x="0" y="0" width="{_W}" height="{height}" fill="#ffffff"/>',
        *_bands(frame, series, "insufficient"),
        *_bands(frame, series, "suspect"),
        *_bands(frame, series, "breached"),
        *(
            f'<line class="turn {what}" data-at-ms="{at}" x1="{frame.x(at):.1f}" y1="{frame.top}" '
            f'x2="{frame.x(at):.1f}" y2="{frame.bottom}" stroke="#7a5300" stroke-dasharray="2 3">'
            f"<title>{what}</title></line>"
            for at, what in series.turns()
        ),
    ]
    for tick in ticks:
        y = frame.y(tick)
        parts.append(f'<line class="grid" x1="{frame.left}" y1="{y:.1f}" x2="{frame.right}" y2="{y:.1f}"/>')
        parts.append(
            f'<text class="tick-label" x="{frame.left - 6}" y="{y + 4:.1f}" text-anchor="end">{_label(tick)}</text>'
        )
    parts += frame.time_axis()
    for name, data, dash in (
        ("threshold", series.threshold, ' stroke-dasharray="6 4"'),
        ("control", series.control, ""),
        ("candidate", series.candidate, ""),
    ):
        d = _path(frame, series.times, data)
        if d:
            parts.append(
                f'<path class="series {name}" d="{d}" fill="none" stroke="{COLOURS[name]}" stroke-width="2"{dash}>'
                f"<title>{name}</title></path>"
            )
    parts += [_marker(frame, m, i % 3) for i, m in enumerate(series.markers)]
    if not values:
        parts.append(
            f'<text class="empty" x="{_W / 2}" y="{height / 2}" text-anchor="middle">'
            "no value yet: not enough samples</text>"
        )
    parts.append("</svg>")
    return "\n".join(parts)


def svg_timeline(markers: Sequence[Marker], t0: int, t1: int, height: int = 90) -> str:
    """Every decision of the replay on one time axis."""
    frame = _Frame(t0, t1, 0.0, 1.0, height)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" viewBox="0 0 {_W} {height}" '
        f'width="{_W}" height="{height}" role="img" aria-label="decisions over time">',
        f'<rect x="0" y="0" width="{_W}" height="{height}" fill="#ffffff"/>',
        *frame.time_axis(),
        *(_marker(frame, m, i % 3) for i, m in enumerate(markers)),
        "</svg>",
    ]
    return "\n".join(parts)
