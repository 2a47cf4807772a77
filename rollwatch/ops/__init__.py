"""Operator tools: ``rollwatch tail``, ``status``, ``traffic`` and replay reports.

Each command is a thin typer shell (:mod:`rollwatch.ops.cli`) over a library function,
so the tests drive the same code an SRE runs.
"""

from __future__ import annotations

__all__: list[str] = []
