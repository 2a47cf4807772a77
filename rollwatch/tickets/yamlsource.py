"""Read ticket YAML into plain data plus a map from field path to source line.

The tree is composed first (``compose``) so every node keeps its mark; values are then
constructed from that same tree, which is how a pydantic error location becomes a line.

Scalars resolve the YAML 1.2 core way, not PyYAML's 1.1 way: only ``true``/``false``
are booleans (``region: no`` stays the string "no"), ``1e-3`` is a float, ``010`` is
ten, and dates stay strings (``approved_on: 2026-04-10`` is text, as the schema says).
Duplicate keys, which PyYAML silently collapses to the last one, are reported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Final, TypeAlias

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

__all__ = ["Loc", "SourceMap", "UnreadableYaml", "YamlProblem", "map_lines", "read_yaml"]

Loc: TypeAlias = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class YamlProblem:
    """A document that is not YAML at all, or a structural flaw in it (duplicate key)."""

    line: int
    loc: Loc
    message: str


class UnreadableYaml(Exception):
    """The text could not be parsed; carries the one problem that stopped the parser."""

    def __init__(self, problem: YamlProblem) -> None:
        self.problem = problem
        super().__init__(problem.message)


@dataclass(slots=True)
class SourceMap:
    """Lines (1-based) of every mapping key and sequence item, by path from the root."""

    lines: dict[Loc, int] = field(default_factory=dict)
    problems: list[YamlProblem] = field(default_factory=list)

    def line_of(self, loc: Loc) -> int:
        """Line of ``loc`` or of its nearest ancestor present in the document; 0 if unknown."""
        for end in range(len(loc), -1, -1):
            line = self.lines.get(loc[:end])
            if line is not None:
                return line
        return 0


class _CoreLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core-schema resolution of plain scalars."""

    yaml_implicit_resolvers: Final[dict[Any, list[tuple[str, re.Pattern[str]]]]] = {}  # type: ignore[misc]


_INT: Final = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT: Final = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)
_CoreLoader.add_implicit_resolver("tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""])
_BOOL: Final = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_CoreLoader.add_implicit_resolver("tag:yaml.org,2002:bool", _BOOL, list("tTfF"))
_CoreLoader.add_implicit_resolver("tag:yaml.org,2002:int", _INT, list("-+0123456789"))
_CoreLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+.0123456789"))
_CoreLoader.add_implicit_resolver("tag:yaml.org,2002:merge", re.compile(r"^(?:<<)$"), ["<"])


def _construct_int(loader: yaml.SafeLoader, node: Node) -> int:
    text = str(loader.construct_scalar(node))  # type: ignore[arg-type]
    try:
        if text.startswith(("0o", "0x")):
            return int(text[2:], 8 if text[1] == "o" else 16)
        return int(text, 10)
    except ValueError:
        raise yaml.constructor.ConstructorError(None, None, f"{text!r} is not an integer", node.start_mark) from None


def _construct_float(loader: yaml.SafeLoader, node: Node) -> float:
    text = str(loader.construct_scalar(node)).lower()  # type: ignore[arg-type]
    special = {".inf": "inf", "+.inf": "inf", "-.inf": "-inf", ".nan": "nan"}
    try:
        return float(special.get(text, text))
    except ValueError:
        raise yaml.constructor.ConstructorError(None, None, f"{text!r} is not a number", node.start_mark) from None


_CoreLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)
_CoreLoader.add_constructor("tag:yaml.org,2002:float", _construct_float)


def read_yaml(text: str) -> tuple[Any, SourceMap]:
    """Parse one YAML document; raises :class:`UnreadableYaml` if it cannot be read."""
    loader = _CoreLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise UnreadableYaml(YamlProblem(1, (), "the document is empty"))
        source = SourceMap()
        _walk(node, (), source, set())
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        raise UnreadableYaml(YamlProblem(line, (), f"not valid YAML: {_yaml_reason(exc)}")) from None
    except yaml.YAMLError as exc:
        raise UnreadableYaml(YamlProblem(0, (), f"not valid YAML: {exc}")) from None
    finally:
        loader.dispose()
    return data, source


def map_lines(text: str) -> SourceMap:
    """Best-effort line map of text already decoded another way (JSON); empty if unreadable."""
    try:
        return read_yaml(text)[1]
    except UnreadableYaml:
        return SourceMap()


def _yaml_reason(exc: yaml.MarkedYAMLError) -> str:
    parts = [p for p in (exc.context, exc.problem) if p]
    return "; ".join(parts) if parts else "syntax error"


def _walk(node: Node, loc: Loc, source: SourceMap, active: set[int]) -> None:
    if id(node) in active:  # a recursive alias; its contents were mapped where the anchor is
        return
    if not loc:
        source.lines[()] = node.start_mark.line + 1
    active.add(id(node))
    if isinstance(node, MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, ScalarNode):
                source.problems.append(YamlProblem(line, loc, "a key must be a plain string, not a list or mapping"))
                continue
            key = key_node.value
            if key == "<<":
                continue
            child = (*loc, key)
            if key in seen:
                message = f"duplicate key (first on line {seen[key]}); only the last value would be used"
                source.problems.append(YamlProblem(line, child, message))
            seen[key] = line
            source.lines[child] = line
            _walk(value_node, child, source, active)
    elif isinstance(node, SequenceNode):
        for index, item in enumerate(node.value):
            child = (*loc, index)
            source.lines[child] = item.start_mark.line + 1
            _walk(item, child, source, active)
    active.discard(id(node))
