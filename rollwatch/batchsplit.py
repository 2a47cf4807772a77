"""Cut a JSON array into its top-level items without parsing them.

Why hand-written: orjson (like every JSON parser we have) refuses a whole document when
one item in it is nested deeper than its limit (1,024 levels), so a batch
``[good, deep, good]`` would cost its two good events. Finding the item boundaries needs
only strings, escapes and bracket depth, which a short scanner does; each item is then
parsed on its own, and only the deep one is refused. No library we use exposes the
boundaries of a document it refused to parse. This path runs only for a batch that
failed to parse for its depth, never for clean traffic.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["split_array"]

_SPECIAL: Final = re.compile(rb'["\[\]{},]')
_STRING: Final = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_WHITESPACE: Final = b" \t\n\r"


def split_array(raw: bytes) -> list[bytes] | None:
    """The raw bytes of each top-level item of the JSON array ``raw``.

    ``None`` when ``raw`` is not an array whose brackets, braces and strings balance (the
    items themselves are not checked: parsing each one does that). ``[]`` gives ``[]``.
    """
    text = raw.strip(_WHITESPACE)
    if not text.startswith(b"["):
        return None
    items: list[bytes] = []
    depth = 0
    pos = start = 1
    while True:
        found = _SPECIAL.search(text, pos)
        if found is None:
            return None
        at = found.start()
        char = text[at : at + 1]
        if char == b'"':
            string = _STRING.match(text, at)
            if string is None:
                return None
            pos = string.end()
            continue
        if char in (b"[", b"{"):
            depth += 1
        elif char in (b"]", b"}"):
            if depth == 0:
                if char != b"]" or at != len(text) - 1:
                    return None
                last = text[start:at]
                if items or last.strip(_WHITESPACE):
                    items.append(last)
                return items
            depth -= 1
        elif depth == 0:  # a comma between items
            items.append(text[start:at])
            start = at + 1
        pos = at + 1
