"""Release tickets: the written rollback plan a canary is held to.

A ticket names the control and candidate routes, the canary plan, the gates (trigger,
parameters, direction, minimum evidence) and what each gate does when breached, plus
who may act and what users are told. It is written before the canary starts so that a
breach is an operational decision rather than a debate.

Load with :func:`load_ticket` / :func:`load_ticket_bytes` (every problem, with lines),
turn actions into flag writes with :func:`flag_changes`, check authority with
:func:`may_issue`, and read a ticket back with :func:`explain`.
"""

from rollwatch.tickets.actions import (
    Action,
    AnyAction,
    DisableSegment,
    DisableTools,
    FlagOverrides,
    FreezeRollout,
    ReduceRollout,
    RestorePrompt,
    RestoreRoute,
    RestoreRouteAndPrompt,
    SetActionMode,
    SetRouteMode,
)
from rollwatch.tickets.authority import issuers, may_issue, role_may_issue, roles_of
from rollwatch.tickets.catalogue import (
    ACTION_TYPES,
    CUSTOMER_MESSAGES,
    FALLBACK_NOTES,
    FLAG_NAMES,
    ROLES,
    TICKET_FORMAT,
    ActionType,
    FlagName,
    Role,
)
from rollwatch.tickets.durations import format_duration, parse_duration
from rollwatch.tickets.errors import TicketError, TicketProblem
from rollwatch.tickets.explain import explain
from rollwatch.tickets.flags import (
    FlagChange,
    FlagValue,
    apply_changes,
    candidate_flags,
    control_flags,
    flag_changes,
    next_rollout_percent,
)
from rollwatch.tickets.gates import (
    AnyGate,
    ComplaintsGate,
    CostPerTaskGate,
    DriftGate,
    Gate,
    LadderStep,
    LatencyRegressionGate,
    ReviewRejectionGate,
    SafetyBlocksGate,
    SchemaFailureGate,
    ThresholdGate,
)
from rollwatch.tickets.load import (
    check_ticket,
    check_ticket_bytes,
    check_ticket_data,
    load_ticket,
    load_ticket_bytes,
    ticket_to_dict,
    ticket_to_json,
    validate_ticket_data,
)
from rollwatch.tickets.messages import CustomerMessage, customer_message
from rollwatch.tickets.model import Canary, Route, Ticket

__all__ = [
    "ACTION_TYPES",
    "CUSTOMER_MESSAGES",
    "FALLBACK_NOTES",
    "FLAG_NAMES",
    "ROLES",
    "TICKET_FORMAT",
    "Action",
    "ActionType",
    "AnyAction",
    "AnyGate",
    "Canary",
    "ComplaintsGate",
    "CostPerTaskGate",
    "CustomerMessage",
    "DisableSegment",
    "DisableTools",
    "DriftGate",
    "FlagChange",
    "FlagName",
    "FlagOverrides",
    "FlagValue",
    "FreezeRollout",
    "Gate",
    "LadderStep",
    "LatencyRegressionGate",
    "ReduceRollout",
    "RestorePrompt",
    "RestoreRoute",
    "RestoreRouteAndPrompt",
    "ReviewRejectionGate",
    "Role",
    "Route",
    "SafetyBlocksGate",
    "SchemaFailureGate",
    "SetActionMode",
    "SetRouteMode",
    "ThresholdGate",
    "Ticket",
    "TicketError",
    "TicketProblem",
    "apply_changes",
    "candidate_flags",
    "check_ticket",
    "check_ticket_bytes",
    "check_ticket_data",
    "control_flags",
    "customer_message",
    "explain",
    "flag_changes",
    "next_rollout_percent",
    "format_duration",
    "issuers",
    "load_ticket",
    "load_ticket_bytes",
    "may_issue",
    "parse_duration",
    "role_may_issue",
    "roles_of",
    "ticket_to_dict",
    "ticket_to_json",
    "validate_ticket_data",
]
