"""The README's layout section names every package, so a newcomer finds where code lives."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _layout_block() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```\n(.*?)```", section, re.S)
    assert match, "the Layout section has no code block"
    return match.group(1)


def _listed() -> set[str]:
    """Package paths as the block nests them: indentation gives the parent."""
    listed: set[str] = set()
    stack: list[tuple[int, str]] = []
    for line in _layout_block().splitlines():
        found = re.match(r"^( *)([\w.-]+/)", line)
        if not found:
            continue
        depth, name = len(found.group(1)), found.group(2)
        while stack and stack[-1][0] >= depth:
            stack.pop()
        path = "".join(part for _, part in stack) + name
        stack.append((depth, name))
        listed.add(path.rstrip("/"))
    return listed


def test_every_package_is_in_the_readme_layout() -> None:
    packages = {str(init.parent.relative_to(ROOT)) for init in (ROOT / "rollwatch").rglob("__init__.py")}
    missing = sorted(packages - _listed())
    assert not missing, f"README.md's Layout section does not list: {missing}"
    assert {"rollwatch/control", "rollwatch/gates/kinds"} <= _listed()
