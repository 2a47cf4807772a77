"""``rollwatch status``: every workflow's arms, gates, rollout and last decision, from the workers.

Each worker serves ``/status`` for the workflows of the partitions it owns, so the
picture of a deployment is the union over its workers. During a rebalance a workflow
can show up on two workers; the one that says it is ready wins. A worker that does
not answer is reported by name rather than silently leaving rows out: a missing row
must never look like a healthy one.

A worker only remembers the decisions of its last judgement, so the last decision per
workflow also comes from the control topic (the record of what was actually issued)
when the caller provides it.
"""

from __future__ import annotations

import concurrent.futures
import re
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import orjson
import typer

from rollwatch.commands import RollbackCommand
from rollwatch.ops.errors import StatusError

__all__ = ["LastDecision", "StatusReport", "WorkflowView", "collect_status", "fetch_status", "render_status"]

_STATE_COLOURS: Final = {"breached": "red", "suspect": "magenta", "healthy": "green", "insufficient": "yellow"}
_ANSI: Final = re.compile(r"\x1b\[[0-9;]*m")


def _evidence(evidence: Any, state: str) -> str:
    """The change detector's evidence (log e-value) against what confirms a breach; "-" for gates without one."""
    if not isinstance(evidence, dict) or evidence.get("log_e_needed") is None:
        return "-"
    have = max(float(evidence.get("log_e") or 0.0), 0.0)
    text = f"{have:.1f}/{float(evidence['log_e_needed']):.1f}"
    more = evidence.get("more_calls")
    if state == "suspect" and more is not None:
        text += f" (~{int(more):,} more calls)"
    return text


@dataclass(frozen=True, slots=True)
class LastDecision:
    at: datetime
    kind: str
    action: str
    gate: str
    command_id: str

    @classmethod
    def from_command(cls, command: RollbackCommand) -> LastDecision:
        kind = "promote" if command.action == "promote" else "rollback"
        return cls(command.issued_at, kind, command.action, command.reason.gate, command.command_id)


@dataclass(frozen=True, slots=True)
class WorkflowView:
    """One workflow as its owning worker sees it (``engine`` is ``Engine.status()``)."""

    workflow: str
    worker: str
    ready: bool
    engine: Mapping[str, Any]
    last: LastDecision | None = None


@dataclass(slots=True)
class StatusReport:
    workflows: list[WorkflowView] = field(default_factory=list)
    unreachable: dict[str, str] = field(default_factory=dict)
    """URL -> why it did not answer."""
    ticket_refusals: dict[str, dict[str, str]] = field(default_factory=dict)
    """Workflow -> the last releases record a worker refused (the ticket before it stays in force)."""


def fetch_status(url: str, timeout: float = 3.0) -> dict[str, Any]:
    """GET ``url`` (a worker base URL or its /status) as JSON."""
    target = url if url.rstrip("/").endswith("/status") else url.rstrip("/") + "/status"
    with urllib.request.urlopen(target, timeout=timeout) as response:
        body: dict[str, Any] = orjson.loads(response.read())
    return body


def _engine_last(engine: Mapping[str, Any]) -> LastDecision | None:
    decisions = [d for d in engine.get("last_decisions") or () if isinstance(d, dict) and "at_ms" in d]
    if not decisions:
        return None
    d = max(decisions, key=lambda item: item["at_ms"])
    at = datetime.fromtimestamp(d["at_ms"] / 1000, UTC)
    return LastDecision(at, str(d.get("kind")), str(d.get("action")), str(d.get("gate")), str(d.get("command_id")))


def collect_status(
    urls: Sequence[str], *, timeout: float = 3.0, commands: Mapping[str, RollbackCommand] | None = None
) -> StatusReport:
    """Ask every worker at once; ``commands`` is the last command per workflow, if read."""
    report = StatusReport()
    views: dict[str, WorkflowView] = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(8, len(urls)))) as pool:
        futures = {url: pool.submit(fetch_status, url, timeout) for url in urls}
    for url, future in futures.items():
        try:
            body = future.result()
        except (OSError, urllib.error.URLError, ValueError) as exc:
            report.unreachable[url] = str(getattr(exc, "reason", exc))
            continue
        worker = str(body.get("worker") or url)
        ready = bool(body.get("ready", True))
        for name, refusal in (body.get("ticket_refusals") or {}).items():
            if isinstance(refusal, dict):
                report.ticket_refusals[str(name)] = {str(k): str(v) for k, v in refusal.items()}
        for name, slot in (body.get("workflows") or {}).items():
            engine = slot.get("engine") if isinstance(slot, dict) else None
            if not isinstance(engine, dict):
                continue
            if name in views and views[name].ready and not ready:
                continue  # mid-rebalance: keep the ready owner's view
            views[name] = WorkflowView(name, worker, ready, engine)
    if not views and report.unreachable and len(report.unreachable) == len(urls):
        details = "; ".join(f"{url}: {why}" for url, why in report.unreachable.items())
        raise StatusError(f"no worker answered: {details}")
    for name in sorted(views):
        view = views[name]
        candidates = [c for c in (_engine_last(view.engine),) if c is not None]
        if commands and name in commands:
            candidates.append(LastDecision.from_command(commands[name]))
        last = max(candidates, key=lambda d: d.at) if candidates else None
        report.workflows.append(WorkflowView(name, view.worker, view.ready, view.engine, last))
    return report


def _value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, int | float):
        return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return str(value)


def _table(rows: Sequence[Sequence[str]], indent: str = "") -> list[str]:
    """Left-aligned columns; widths ignore ANSI codes so coloured cells still line up."""
    widths = [max(len(_ANSI.sub("", row[i])) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [cell + " " * (width - len(_ANSI.sub("", cell))) for cell, width in zip(row, widths, strict=True)]
        lines.append((indent + "  ".join(cells)).rstrip())
    return lines


def _rollout(engine: Mapping[str, Any]) -> str:
    percent = engine.get("rollout_percent")
    text = "-" if percent is None else f"{percent:g}%"
    marks = [word for word, on in (("rolled back", engine.get("rolled_back")), ("frozen", engine.get("frozen"))) if on]
    return f"{text} ({', '.join(marks)})" if marks else text


def render_status(report: StatusReport, *, color: bool = False) -> str:
    """The operator's table: a line per workflow, then its gates against their thresholds."""

    def style(text: str, **kwargs: Any) -> str:
        return typer.style(text, **kwargs) if color else text

    out: list[str] = []
    for url, why in report.unreachable.items():
        out.append(style(f"worker {url} did not answer: {why}", fg="red", bold=True))
    for name, refusal in sorted(report.ticket_refusals.items()):
        line = f"ticket for {name} REFUSED ({refusal.get('code')}): {refusal.get('detail')}; the ticket before it stays"
        out.append(style(line, fg="red", bold=True))
    if not report.workflows:
        out.append("no workflow is owned by any answering worker (no telemetry yet, or no ticket)")
        return "\n".join(out)
    head = ["WORKFLOW", "WORKER", "TICKET", "CONTROL ARM", "CANDIDATE ARM", "ROLLOUT", "LAST DECISION"]
    for view in report.workflows:
        engine = view.engine
        ticket = engine.get("ticket") or {}
        arms = engine.get("arms") or {}
        last = view.last
        decision = (
            f"{last.at.strftime('%Y-%m-%d %H:%M:%SZ')} {last.kind} {last.action} (gate {last.gate})" if last else "none"
        )
        worker = view.worker if view.ready else f"{view.worker} (not ready)"
        row = [
            style(view.workflow, bold=True),
            worker,
            f"{ticket.get('id')} r{ticket.get('revision')}" if ticket else "no ticket",
            str(arms.get("control") or "-"),
            str(arms.get("candidate") or "-"),
            _rollout(engine),
            decision,
        ]
        out.extend(_table([head, row]))
        gates = [["GATE", "STATE", "CANDIDATE", "THRESHOLD", "CONTROL", "WINDOW", "SAMPLES / NEEDED", "EVIDENCE"]]
        for gate in engine.get("gates") or ():
            state = str(gate.get("state"))
            samples = ", ".join(f"{arm} {n}" for arm, n in (gate.get("samples") or {}).items())
            needed = ", ".join(f"{arm} {n}" for arm, n in (gate.get("needed") or {}).items())
            gates.append(
                [
                    str(gate.get("gate")),
                    style(state, fg=_STATE_COLOURS.get(state, "white"), bold=state == "breached"),
                    _value(gate.get("observed")),
                    _value(gate.get("threshold")),
                    _value(gate.get("control")),
                    str(gate.get("window") or "-"),
                    samples + (f" (needs {needed})" if needed else ""),
                    _evidence(gate.get("evidence"), state),
                ]
            )
        if len(gates) > 1:
            out.extend(_table(gates, indent="    "))
        else:
            out.append("    no gate judged yet")
        out.append("")
    return "\n".join(out).rstrip("\n")
