"""Load, validate and serialise release tickets, reporting every problem with its line.

Structure is checked by the pydantic models, relations by :mod:`semantics`; both run
on every document and their findings are merged, sorted by line, so a broken ticket
comes back with the full list rather than the first complaint. Tickets arrive as YAML
files or as YAML/JSON bytes on a Kafka topic; both paths share this code.
"""

from __future__ import annotations

import difflib
import os
import re
from functools import cache
from pathlib import Path
from typing import Any, Final

import orjson
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from rollwatch.gates.kinds import GATE_KINDS
from rollwatch.tickets.errors import TicketError, TicketProblem
from rollwatch.tickets.fieldtypes import DATE_PATTERN, MESSAGE_KEY_PATTERN, StrictModel
from rollwatch.tickets.model import Ticket
from rollwatch.tickets.semantics import semantic_issues
from rollwatch.tickets.yamlsource import Loc, SourceMap, UnreadableYaml, map_lines, read_yaml

__all__ = [
    "check_ticket",
    "check_ticket_bytes",
    "check_ticket_data",
    "format_loc",
    "load_ticket",
    "load_ticket_bytes",
    "ticket_to_dict",
    "ticket_to_json",
    "validate_ticket_data",
]

_PLAIN_KEY: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_EXPECTED: Final = {
    "string_type": "a string",
    "int_type": "a whole number",
    "float_type": "a number",
    "bool_type": "true or false",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "tuple_type": "a list",
    "list_type": "a list",
}
_PATTERNS: Final = {
    DATE_PATTERN: "a date like 2026-04-10",
    MESSAGE_KEY_PATTERN: "a lowercase key like known_issue (letters, digits, _)",
}


def load_ticket(path: str | os.PathLike[str]) -> Ticket:
    """The ticket in a YAML (or JSON) file; raises :class:`TicketError` with every problem."""
    return _or_raise(check_ticket(path))


def load_ticket_bytes(data: bytes, source: str) -> Ticket:
    """A ticket from message bytes, YAML or JSON; ``source`` names it in problems."""
    return _or_raise(check_ticket_bytes(data, source))


def validate_ticket_data(data: Any, source: str = "<data>") -> Ticket:
    """A ticket from already-decoded data (no line numbers); raises :class:`TicketError`."""
    return _or_raise(check_ticket_data(data, source))


def check_ticket(path: str | os.PathLike[str]) -> Ticket | list[TicketProblem]:
    """Like :func:`load_ticket` but returns the problems instead of raising."""
    name = os.fspath(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        return [TicketProblem(name, 0, "", f"cannot read the file: {exc.strerror or exc}")]
    return check_ticket_bytes(raw, name)


def check_ticket_bytes(data: bytes, source: str) -> Ticket | list[TicketProblem]:
    """Like :func:`load_ticket_bytes` but returns the problems instead of raising."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        return [TicketProblem(source, line, "", f"not UTF-8 text (byte {exc.start})")]
    if text.lstrip().startswith("{"):
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            json_error = TicketProblem(source, exc.lineno, "", f"not valid JSON: {exc.msg}")
        else:
            # The line map costs a full YAML compose of the text (~20 ms for the example
            # ticket, 40x the validation itself) and only serves error messages: a worker
            # installing 10,000 tickets from the releases topic builds it only for a bad one.
            checked = _check(value, source, SourceMap())
            return checked if isinstance(checked, Ticket) else _check(value, source, map_lines(text))
        try:  # a YAML flow mapping also starts with "{"
            value, lines = read_yaml(text)
        except UnreadableYaml:
            return [json_error]
        return _check(value, source, lines)
    try:
        value, lines = read_yaml(text)
    except UnreadableYaml as exc:
        return [TicketProblem(source, exc.problem.line, "", exc.problem.message)]
    return _check(value, source, lines)


def check_ticket_data(data: Any, source: str = "<data>") -> Ticket | list[TicketProblem]:
    """Like :func:`validate_ticket_data` but returns the problems instead of raising."""
    return _check(data, source, SourceMap())


def ticket_to_dict(ticket: Ticket) -> dict[str, Any]:
    """The wire form: durations as strings, flag names dotted, unset optional fields left out."""
    dumped: dict[str, Any] = ticket.model_dump(mode="json", by_alias=True, exclude_none=True)
    return dumped


def ticket_to_json(ticket: Ticket) -> bytes:
    """JSON bytes that :func:`load_ticket_bytes` reads back to an equal ticket."""
    return orjson.dumps(ticket_to_dict(ticket))


def format_loc(loc: Loc) -> str:
    """``gates[2].ladder[0].wait``; keys that are not plain words are quoted: ``flags["ai.tools.enabled"]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.match(part):
            out += f".{part}" if out else part
        else:
            out += f'["{part}"]'
    return out


def _or_raise(result: Ticket | list[TicketProblem]) -> Ticket:
    if isinstance(result, Ticket):
        return result
    raise TicketError(result)


def _check(data: Any, source: str, lines: SourceMap) -> Ticket | list[TicketProblem]:
    found: dict[tuple[Loc, str], int] = {}
    for problem in lines.problems:
        found.setdefault((problem.loc, problem.message), problem.line)
    ticket: Ticket | None = None
    if not isinstance(data, dict):
        found[((), f"a ticket must be a mapping of fields, got {_kind(data)}")] = lines.line_of(())
    else:
        try:
            ticket = Ticket.model_validate(data)
        except ValidationError as exc:
            for error in exc.errors():
                loc, message = _describe(error, data)
                found.setdefault((loc, message), lines.line_of(loc))
        for loc, message in semantic_issues(data):
            found.setdefault((loc, message), lines.line_of(loc))
    if not found:
        assert ticket is not None
        return ticket
    problems = [TicketProblem(source, line, format_loc(loc), message) for (loc, message), line in found.items()]
    return sorted(problems, key=lambda p: (p.line, p.field))


def _clean_loc(loc: tuple[int | str, ...], data: Any) -> tuple[Loc, str]:
    """Follow a pydantic location through the data, dropping union tags and ``[key]`` markers.

    Also returns where the last union tag came from (``kind is complaints``), which says
    whose fields an unknown key was compared with.
    """
    out: list[str | int] = []
    current = data
    variant = ""
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        in_dict = isinstance(current, dict) and part in current
        in_list = isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current)
        if in_dict or in_list:
            out.append(part)
            current = current[part]
        elif isinstance(current, dict) and last and isinstance(part, str) and part != "[key]":
            out.append(part)  # a missing field
        elif isinstance(current, dict):
            variant = next((f"{key} is {part}" for key in _TAGS if current.get(key) == part), variant)
    return tuple(out), variant


def _describe(error: ErrorDetails, data: Any) -> tuple[Loc, str]:
    kind = error["type"]
    loc, variant = _clean_loc(error["loc"], data)
    value = error["input"]
    ctx = error.get("ctx", {})
    if error["loc"] and error["loc"][-1] == "[key]":
        return loc, f"{loc[-1]!r} is not allowed as a key here: {_must(error)}"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        tag = str(ctx.get("discriminator", "")).strip("'\"")
        if kind == "union_tag_not_found":
            return (*loc, tag), f"is required (one of {_TAGS.get(tag, 'the allowed values')})"
        return (*loc, tag), f"must be one of {ctx.get('expected_tags', '')}, got {ctx.get('tag')!r}"
    if kind == "missing":
        return loc, "is required"
    if kind == "extra_forbidden":
        name = str(loc[-1]) if loc else ""
        where = f"when {variant}" if variant else "here"
        if name in _known_fields():
            return loc, f"is not a field {where}"
        close = difflib.get_close_matches(name, _known_fields(), n=1, cutoff=0.75)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return loc, f"is not a field {where}{hint}"
    if kind in _EXPECTED:
        hint = ""
        if kind == "string_type" and isinstance(value, int | float) and not isinstance(value, bool):
            hint = f"; quote it if it is a name or version: '{value}'"
        return loc, f"must be {_EXPECTED[kind]}, got {_kind(value)}{hint}"
    if kind == "literal_error":
        return loc, f"must be one of {ctx.get('expected')}, got {_short(value)}"
    if kind == "string_pattern_mismatch":
        return loc, f"must be {_PATTERNS.get(str(ctx.get('pattern')), 'in the documented format')}, got {_short(value)}"
    if kind in ("too_short", "string_too_short"):
        return loc, "must not be empty"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal", "string_too_long"):
        return loc, f"{_must(error)}, got {_short(value)}"
    return loc, _must(error)


_TAGS: Final = {
    "kind": ", ".join(GATE_KINDS),
    "type": "an action or detector type",
    "rule": "steps or doubling",
    "method": "none, msprt or confidence_sequence",
}


def _must(error: ErrorDetails) -> str:
    message = error["msg"]
    for lead, replacement in (("Input should be", "must be"), ("Value should be", "must be"), ("Input should", "must")):
        if message.startswith(lead):
            return replacement + message[len(lead) :]
    return message


@cache
def _known_fields() -> tuple[str, ...]:
    names: set[str] = set()
    pending: list[type[BaseModel]] = [StrictModel]
    while pending:
        model = pending.pop()
        pending += model.__subclasses__()
        names |= {info.alias or name for name, info in model.model_fields.items()}
    return tuple(sorted(names))


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int | float):
        return f"a number ({value:g})" if isinstance(value, float) else f"a number ({value})"
    if isinstance(value, str):
        return f"a string ({_short(value)})"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
