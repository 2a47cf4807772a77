"""Number and metric wording shared by the ticket explanation and each gate kind's sentences.

Its own module because both :mod:`rollwatch.tickets.explain` and the kind modules in
:mod:`rollwatch.gates.kinds` (which the ticket models are built from) word numbers the
same way; the explanation module imports the kinds, so the kinds cannot import it.
"""

from __future__ import annotations

from typing import Final

__all__ = ["METRIC_WORDS", "cap", "metric_value", "num", "pct", "usd"]

METRIC_WORDS: Final = {
    "error_rate": "error rate",
    "p95_latency_ms": "p95 latency",
    "avg_quality_score": "mean quality score",
    "cost_per_request": "cost per request",
    "task_success_rate": "task success rate",
    "review_approval_rate": "review approval rate",
}


def cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def num(value: float) -> str:
    return f"{value:,g}"


def pct(rate: float) -> str:
    text = f"{rate * 100:.2f}".rstrip("0")
    return (text + "0" if text.endswith(".") else text) + "%"


def usd(value: float) -> str:
    text = f"{value:.4f}".rstrip("0")
    whole, _, frac = text.partition(".")
    return f"${whole}.{frac.ljust(2, '0')}"


def metric_value(metric: str, value: float) -> str:
    if metric == "error_rate":
        return pct(value)
    if metric == "p95_latency_ms":
        return f"{num(value)} ms"
    if metric == "cost_per_request":
        return usd(value)
    return num(value)
