"""Telemetry decode + validation speed: µs per call event against the 3 µs budget.

Prints, in one run, the cost of orjson alone and of decode + validate, for batched
messages (the emitter's form) and single-event messages, and the ratio to the budget;
then the hand-written validator alone (what every message the msgspec fast path
declines costs) and the fast path's speed-up over it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import orjson

from rollwatch.events import decode_checked, decode_message

BUDGET_US = 3.0


def call_event(i: int) -> dict[str, object]:
    return {
        "type": "call",
        "event_id": f"evt-{i:09d}",
        "ts": 1_763_900_000.0 + i / 1000,
        "workflow": "support-summary",
        "route": "openai/gpt-5-mini@prompt-42",
        "arm": "candidate" if i % 20 == 0 else "control",
        "latency_ms": 400.0 + (i % 977),
        "status": "ok",
        "schema_valid": i % 97 != 0,
        "safety_blocked": False,
        "task_success": True if i % 3 == 0 else None,
        "cost_usd": 0.0012 + (i % 7) / 10_000,
        "trace_id": f"tr-{i:09d}",
        "model": "gpt-5-mini",
        "input_tokens": 1200,
        "output_tokens": 240,
    }


def best_of(fn: Callable[[], object], repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    n = 100_000
    batches = [orjson.dumps([call_event(i) for i in range(b, b + 500)]) for b in range(0, n, 500)]
    singles = [orjson.dumps(call_event(i)) for i in range(n)]

    def decode_batches() -> None:
        for raw in batches:
            decode_message(raw)

    def decode_singles() -> None:
        for raw in singles:
            decode_message(raw)

    def checked_batches() -> None:
        for raw in batches:
            decode_checked(raw)

    raw_json = best_of(lambda: [orjson.loads(raw) for raw in batches]) / n * 1e6
    batched = best_of(decode_batches) / n * 1e6
    single = best_of(decode_singles) / n * 1e6
    checked = best_of(checked_batches) / n * 1e6
    print(f"orjson.loads alone (batched)       {raw_json:6.2f} µs/event")
    print(
        f"decode+validate, batches of 500    {batched:6.2f} µs/event  {1e6 / batched:10,.0f} events/s  "
        f"budget ratio {batched / BUDGET_US:.2f} (<= 1.00 meets {BUDGET_US} µs)"
    )
    print(
        f"decode+validate, one per message   {single:6.2f} µs/event  {1e6 / single:10,.0f} events/s  "
        f"budget ratio {single / BUDGET_US:.2f}"
    )
    print(
        f"hand-written validator, batches    {checked:6.2f} µs/event  {1e6 / checked:10,.0f} events/s  "
        f"fast path speed-up {checked / batched:.2f}x"
    )


if __name__ == "__main__":
    main()
