"""Durations: the one-unit grammar, exact milliseconds, and the shortest spelling back."""

from __future__ import annotations

import pytest

from rollwatch.tickets import format_duration, parse_duration
from rollwatch.tickets.durations import humanize_duration


@pytest.mark.parametrize(
    ("text", "ms"),
    [("60s", 60_000), ("15m", 900_000), ("30m", 1_800_000), ("1h", 3_600_000), ("7d", 604_800_000), ("250ms", 250)],
)
def test_parse(text: str, ms: int) -> None:
    assert parse_duration(text) == ms


@pytest.mark.parametrize("text", ["30", "1h30m", "05m", "-5m", "5 m", "5M", "1.5h", "", "m", "5w"])
def test_refused(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


@pytest.mark.parametrize(("ms", "text"), [(60_000, "1m"), (3_600_000, "1h"), (90_000, "90s"), (1500, "1500ms")])
def test_format_is_shortest_and_round_trips(ms: int, text: str) -> None:
    assert format_duration(ms) == text
    assert parse_duration(text) == ms


def test_zero_has_a_spelling() -> None:
    assert format_duration(0) == "0ms" and parse_duration("0s") == 0


@pytest.mark.parametrize(
    ("ms", "words"), [(1_800_000, "30 min"), (86_400_000, "1 day"), (604_800_000, "7 days"), (7_200_000, "2 h")]
)
def test_humanize(ms: int, words: str) -> None:
    assert humanize_duration(ms) == words
