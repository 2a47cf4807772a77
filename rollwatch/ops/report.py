"""``rollwatch replay --report out.html``: a replay for people who would rather look than read.

One self-contained HTML file: a summary, the decisions in a table and on a timeline,
then one chart per gate (candidate and control against the threshold over event time,
breaches shaded, the moments decisions fired marked). Styles are inline and charts are
SVG (:mod:`rollwatch.ops.charts`), so the file shows the same offline, attached to a
post-mortem or in a headless browser. The PNG (optional) is the same charts in one
image (:mod:`rollwatch.ops.png`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Final

from rollwatch.ops.charts import COLOURS, decision_markers, gate_series, svg_gate_chart, svg_timeline
from rollwatch.ops.errors import ReportError
from rollwatch.replay import ReplayReport
from rollwatch.tickets.model import Ticket

__all__ = ["render_html", "write_png_report", "write_report"]

_CSS: Final = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px auto; max-width: 1000px;
       color: #1d1d1f; background: #fafafa; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 18px; margin-top: 28px; }
h3 { font-size: 15px; margin: 18px 0 2px; }
.meta { color: #555; margin: 2px 0; }
table { border-collapse: collapse; width: 100%; background: #fff; font-size: 13px; }
th, td { border-bottom: 1px solid #ddd; padding: 4px 6px; text-align: left; vertical-align: top; }
th { background: #f0f0f0; } table.decisions td:first-child { white-space: nowrap; }
.state { font-weight: 600; padding: 0 6px; border-radius: 3px; }
.state.breached { background: #fbd5d5; color: #8a0000; } .state.healthy { background: #d9f2dd; color: #135c22; }
.state.insufficient { background: #eee; color: #555; } .state.suspect { background: #fff1c2; color: #7a5300; }
.legend span { display: inline-block; margin-right: 14px; } .legend i { display: inline-block; width: 22px;
  height: 0; border-top: 3px solid; vertical-align: middle; margin-right: 4px; }
svg { display: block; margin: 4px 0 10px; border: 1px solid #e3e3e3; max-width: 100%; height: auto; }
svg .axis { stroke: #333; } svg .tick { stroke: #333; } svg .grid { stroke: #e8e8e8; }
svg .tick-label { font-size: 11px; fill: #444; } svg .marker-label { font-size: 11px; font-weight: 600; }
svg .empty { font-size: 13px; fill: #888; }
code { font-size: 12px; }
"""


def _clock(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _legend() -> str:
    items = [
        (COLOURS["candidate"], "solid", "candidate"),
        (COLOURS["control"], "solid", "control"),
        (COLOURS["threshold"], "dashed", "threshold"),
        (COLOURS["rollback"], "solid", "decision"),
    ]
    spans = "".join(f'<span><i style="border-top-color:{c};border-top-style:{s}"></i>{n}</span>' for c, s, n in items)
    return (
        f'<p class="legend">{spans}<span><i style="border-top:10px solid {COLOURS["breached"]}"></i>breached</span>'
        f'<span><i style="border-top:10px solid {COLOURS["suspect"]}"></i>suspect: over the threshold, '
        "evidence not yet enough (dotted lines: turned suspect, confirmed)</span>"
        f'<span><i style="border-top:10px solid {COLOURS["insufficient"]}"></i>not enough samples</span></p>'
    )


def _decisions_table(report: ReplayReport) -> str:
    if not report.timeline:
        return "<p>No decision: every gate held.</p>"
    rows = []
    for entry in report.timeline:
        d, r = entry.decision, entry.decision.result
        flags = ", ".join(f"{k}={v}" for k, v in d.flags.items())
        rows.append(
            "<tr>"
            f"<td>{escape(_clock(entry.at_ms))}</td><td>{escape(d.kind)}</td><td>{escape(d.gate)}</td>"
            f"<td>{escape(d.action)}</td><td>{escape(r.metric)} {_num(r.observed)} vs {_num(r.threshold)}"
            f" (control {_num(r.control)}, {escape(r.window)})</td><td>{escape(flags)}</td>"
            f"<td><code>{escape(d.command_id)}</code>{'<br>' + escape(d.note) if d.note else ''}</td>"
            "</tr>"
        )
    head = "".join(f"<th>{name}</th>" for name in ("when", "kind", "gate", "action", "reason", "flags", "command"))
    return f'<table class="decisions"><tr>{head}</tr>{"".join(rows)}</table>'


def render_html(ticket: Ticket, report: ReplayReport) -> str:
    """The whole report as one HTML document."""
    if not report.samples:
        raise ReportError(
            "the replay kept no gate samples: call replay_file(..., keep_samples=True), "
            "and check that the file holds events of the ticket's workflow"
        )
    series = gate_series(report)
    markers = decision_markers(report)
    t0, t1 = report.samples[0][0], report.samples[-1][0]
    title = f"Replay of {ticket.ticket} r{ticket.revision} on {ticket.workflow}"
    final = {r.gate: r for r in report.final}
    sections = []
    for s in series:
        state = final[s.gate].state if s.gate in final else s.final_state
        last = final.get(s.gate)
        summary = (
            f"now {_num(last.observed)} vs threshold {_num(last.threshold)}, control {_num(last.control)}"
            if last
            else ""
        )
        sections.append(
            f'<section class="gate" id="gate-{escape(s.gate)}">'
            f'<h3>{escape(s.gate)} <span class="state {escape(state)}">{escape(state)}</span></h3>'
            f'<p class="meta">{escape(s.kind)}: {escape(s.metric)} over {escape(s.window)}; {escape(summary)}</p>'
            f"{svg_gate_chart(s, t0, t1)}</section>"
        )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title><style>{_CSS}</style></head>
<body>
<h1>{escape(title)}</h1>
<p class="meta">{escape(ticket.description)}</p>
<p class="meta">control <code>{escape(ticket.control.route)}</code>,
candidate <code>{escape(ticket.candidate.route)}</code>;
event time {escape(_clock(t0))} to {escape(_clock(t1))}; {report.events:,} events ({report.invalid:,} invalid,
{report.late:,} late, {report.duplicates:,} duplicates); {len(report.samples):,} judgements;
{len(report.timeline)} decision{"" if len(report.timeline) == 1 else "s"}.</p>
<h2>Decisions</h2>
{svg_timeline(markers, t0, t1)}
{_decisions_table(report)}
<h2>Gates</h2>
{_legend()}
{"".join(sections)}
</body></html>
"""


def write_report(ticket: Ticket, report: ReplayReport, path_html: Path, path_png: Path | None = None) -> None:
    """Write the HTML report (and the PNG when ``path_png`` is given) of a replay kept with samples."""
    html = render_html(ticket, report)
    path_html.write_text(html, encoding="utf-8")
    if path_png is not None:
        write_png_report(ticket, report, path_png)


def write_png_report(ticket: Ticket, report: ReplayReport, path_png: Path) -> None:
    """Only the PNG: every gate's chart in one image (needs matplotlib)."""
    if not report.samples:
        raise ReportError("the replay kept no gate samples: call replay_file(..., keep_samples=True)")
    from rollwatch.ops.png import write_png

    title = f"{ticket.ticket} r{ticket.revision} on {ticket.workflow}: gates over event time"
    write_png(path_png, title, gate_series(report), decision_markers(report))
