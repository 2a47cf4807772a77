"""A release ticket in plain words, for the people who approve it and the on-call who uses it.

The point of a written trigger is that nobody debates it mid-incident, so each gate is
spelled out with its comparison, its minimum evidence and its response, and the text
comes from the same records the worker evaluates.
"""

from __future__ import annotations

import itertools
from typing import Final

from rollwatch.gates.kinds import KINDS
from rollwatch.tickets.actions import AnyAction
from rollwatch.tickets.authority import grant_of, issuers, role_may_issue
from rollwatch.tickets.catalogue import ACTION_TYPES, FALLBACK_NOTES, FALLBACK_PATHS, ROLE_DUTIES, ROLES, Role
from rollwatch.tickets.durations import humanize_duration
from rollwatch.tickets.flags import flag_changes
from rollwatch.tickets.gates import AnyGate
from rollwatch.tickets.messages import message_catalogue
from rollwatch.tickets.model import DoublingPromotion, Route, StepPromotion, Ticket
from rollwatch.tickets.wording import METRIC_WORDS, cap, num, pct

__all__ = ["describe_action", "describe_gate", "explain"]

_MODE_WORDS: Final = {
    "draft": "switch actions to draft-only",
    "queued": "queue actions instead of applying them",
    "review": "require human review before any action",
}
_EVIDENCE_WORDS: Final = {
    "trace_ids": "trace IDs",
    "rejected_samples": "rejected samples",
    "parser_logs": "parser logs",
    "cost_sample": "cost sample",
    "reviewer_notes": "reviewer notes",
}


def explain(ticket: Ticket) -> str:
    """The whole ticket as text: routes, canary plan, gates, first rollback, people, messages."""
    sections = [
        _header(ticket),
        _routes(ticket),
        _canary(ticket),
        "Gates\n" + "\n".join(f"  {i}. {g.name}: {describe_gate(ticket, g)}" for i, g in enumerate(ticket.gates, 1)),
        _first_rollback(ticket),
        "Evidence to attach: " + ", ".join(_EVIDENCE_WORDS[e] for e in ticket.evidence) + ".",
        _authority(ticket),
        _messages(ticket),
        _fallbacks(ticket),
        _objective(ticket),
    ]
    return "\n\n".join(s for s in sections if s) + "\n"


def describe_action(ticket: Ticket, action: AnyAction) -> str:
    """What the action does, lower-case, e.g. ``roll back (restore the control route and prompt)``."""
    match action.type:
        case "restore_route":
            text = "roll back (restore the control route)"
        case "restore_prompt":
            text = "roll back (restore the control prompt)"
        case "restore_route_and_prompt":
            text = "roll back (restore the control route and prompt)"
        case "disable_tools":
            text = "disable tool execution (read-only answers stay on)"
        case "set_action_mode":
            text = _MODE_WORDS[getattr(action, "mode", "draft")]
        case "set_route_mode":
            text = f"move traffic to the {getattr(action, 'mode', 'sync')} path"
        case "reduce_rollout":
            text = f"reduce the rollout to {num(getattr(action, 'percent', 0))}%"
        case "disable_segment":
            text = "disable the workflow"
        case _:
            text = "freeze the rollout (no promotion until a person lifts it)"
    if action.segments == "affected":
        text += " for the affected segments"
    elif not isinstance(action.segments, str):
        text += f" for segment{'s' if len(action.segments) > 1 else ''} {', '.join(action.segments)}"
    if action.flags is not None:
        extra = action.flags.model_dump(by_alias=True, exclude_none=True)
        text += " (setting " + ", ".join(f"{k}={_flag(v)}" for k, v in extra.items()) + ")"
    return text


def describe_gate(ticket: Ticket, gate: AnyGate) -> str:
    """One gate as sentences: the response, the condition with its direction, the minimum evidence."""
    condition, needs = KINDS[gate.kind].explain(ticket, gate)
    steps = gate.steps
    if len(steps) == 1:
        text = f"{cap(describe_action(ticket, steps[0].action))} when {condition}; needs {needs}."
    else:
        parts = [describe_action(ticket, steps[0].action)]
        for previous, step in itertools.pairwise(steps):
            wait = humanize_duration(previous.wait or 0)
            parts.append(f"if still breached {wait} later, {describe_action(ticket, step.action)}")
        text = f"When {condition}: " + "; ".join(parts) + f". Needs {needs}."
    if gate.segment is not None:
        text += f" Evaluated on segment {gate.segment} only."
    elif gate.by_segment:
        text += " Evaluated per segment; the affected segments are the breached ones."
    guard = getattr(gate, "guard", None)
    if guard is not None:
        if guard.method == "none":
            text += " No significance guard: the raw comparison decides once the minimum is reached."
        elif KINDS[gate.kind].detected(gate):
            text += (
                f" A breach counts only when its change detector confirms it: alpha {num(guard.alpha)} for"
                " any false rollback within the canary's duration, shared by the ticket's guarded gates."
            )
        else:
            text += " Its guard is not used: this gate runs no change detector, so the raw comparison decides."
    manual = [s.action for s in steps if not role_may_issue(ticket.authority, "automation", s.action)]
    for action in manual:
        who = ", ".join(issuers(ticket, action)) or "nobody"
        text += f" {ticket.owners.automation} may not {action.type} on its own: it pages {who}."
    return text


def _header(ticket: Ticket) -> str:
    head = f"Release ticket {ticket.ticket} (revision {ticket.revision}) for workflow {ticket.workflow}"
    return f"{head}\n{ticket.description}"


def _route_line(route: Route) -> str:
    parts = [f"{route.provider} {route.model_tier} ({route.model_id})"]
    if route.region:
        parts.append(f"region {route.region}")
    parts.append(f"prompt {route.prompt_version}")
    if route.retrieval:
        parts.append(f"retrieval {route.retrieval.index_build_id} (cutoff {route.retrieval.corpus_cutoff})")
    if route.tool_schema_version:
        parts.append(f"tools {route.tool_schema_version}")
    parts.append(f"output schema {route.output_schema_version}")
    parts.append(f"actions {route.action_mode}, {route.route_mode}")
    if route.approved_on:
        parts.append(f"approved {route.approved_on}")
    return f"{route.route}: " + ", ".join(parts)


def _routes(ticket: Ticket) -> str:
    control, candidate = ticket.control.model_dump(), ticket.candidate.model_dump()
    changed = [k for k in control if k not in ("route", "notes", "approved_on") and control[k] != candidate[k]]
    return (
        f"Routes\n  control:   {_route_line(ticket.control)}\n  candidate: {_route_line(ticket.candidate)}\n"
        f"  changed: {', '.join(changed) or 'nothing but the name'}"
    )


def _canary(ticket: Ticket) -> str:
    c = ticket.canary
    lines = [f"Canary\n  Plan: {c.plan}"]
    offline = f"Run {c.offline_tickets:,} offline tickets, then s" if c.offline_tickets else "S"
    lines.append(f"  {offline}tart at {num(c.start_percent)}% of traffic for {humanize_duration(c.duration)}.")
    p = c.promotion
    hold = f"every gate has been green for {humanize_duration(c.hold)}" if c.hold else "every gate is green"
    if isinstance(p, StepPromotion):
        steps = " -> ".join(f"{num(x)}%" for x in p.percents)
        lines.append(f"  Promote through {steps}, each step only after {hold} at the current one.")
    elif isinstance(p, DoublingPromotion):
        lines.append(
            f"  For each {humanize_duration(p.window)} window, compare the candidate's {METRIC_WORDS[p.metric]} "
            f"with the control's (at least {p.min_samples:,} each; higher is better): at or above "
            f"{pct(p.promote_at_ratio)} of the control's, double the percent up to {num(p.max_percent)}% "
            f"once {hold}; below {pct(p.rollback_below_ratio)} of it, set the percent to 0."
        )
    lines.append("  While any gate is breached, the rollout is not promoted.")
    lines.append(f"  Complaints are counted per release window of {humanize_duration(c.release_window)}.")
    return "\n".join(lines)


def _first_rollback(ticket: Ticket) -> str:
    lines = ["First rollback"]
    for i, action in enumerate(ticket.first_rollback, 1):
        change = flag_changes(ticket, action)
        flags = ", ".join(f"{k}={_flag(v)}" for k, v in change.flags.items()) or "no flag change"
        lines.append(f"  {i}. {cap(describe_action(ticket, action))}: {flags}.")
    return "\n".join(lines)


def _authority(ticket: Ticket) -> str:
    lines = ["Authority"]
    for role in ROLES:
        grant = grant_of(ticket.authority, role)
        if set(grant) == set(ACTION_TYPES):
            what = "any action"
        elif grant:
            what = ", ".join(grant)
        else:
            what = "no flag actions (advises)"
        lines.append(f"  {_role(role)} ({getattr(ticket.owners, role)}): {what}")
        lines.append(f"      ({ROLE_DUTIES[role]})")
    return "\n".join(lines)


def _messages(ticket: Ticket) -> str:
    texts = message_catalogue(ticket)
    lines = ["Customer messages"]
    for kind, key in ticket.customer_messages.on_action.items():
        lines.append(f'  {kind} -> {key}: "{texts.get(key, "?")}"')
    silent = [t for t in ACTION_TYPES if t not in ticket.customer_messages.on_action]
    if silent:
        lines.append(f"  No message (invisible to users): {', '.join(silent)}.")
    return "\n".join(lines)


def _fallbacks(ticket: Ticket) -> str:
    if not ticket.fallbacks:
        return ""
    lines = ["Fallback paths"]
    for path in FALLBACK_PATHS:
        note = ticket.fallbacks.get(path)
        if note is None:
            continue
        use, avoid = FALLBACK_NOTES[path]
        route = f" ({note.route})" if note.route else ""
        lines.append(
            f"  {path.replace('_', ' ')}{route}: use when {_clause(note.use_when or use)}; "
            f"do not use when {_clause(note.do_not_use_when or avoid)}."
        )
    return "\n".join(lines)


def _objective(ticket: Ticket) -> str:
    o = ticket.rollback_objective
    text = f"Rollback objective: restore the previous route and prompt within {humanize_duration(o.restore_within)}"
    if o.reduce_automation_within is not None:
        text += f"; reduce automation within {humanize_duration(o.reduce_automation_within)}"
    return text + "."


def _clause(text: str) -> str:
    """A note as a clause inside a sentence: no closing period, lower-case start unless an acronym."""
    text = text.rstrip(". ")
    return text if text[1:2].isupper() else text[:1].lower() + text[1:]


def _role(role: Role) -> str:
    return "automation" if role == "automation" else role.replace("_", " ")


def _flag(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return num(value)
    return str(value)
