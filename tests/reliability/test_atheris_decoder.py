"""Coverage-guided fuzzing of the telemetry decoder with atheris (libFuzzer), bounded to seconds.

Hypothesis (``test_fuzz_ingest.py``, ``test_fuzz_worker.py``) generates what we thought
of; libFuzzer mutates towards new branches of ``rollwatch.events`` and ``rollwatch.wire``
(the msgspec fast path), which finds what we did not. libFuzzer ends its process when it
stops, so the run lives in a subprocess. Any exception from ``decode_message``, or a
broken invariant (a rejection without a reason, an input that yields nothing at all, a
fast-path verdict the contract's validator does not share), is a crash: the test fails
with the input libFuzzer saved. Skipped when atheris is not installed (``pip install
'rollwatch[fuzz]'``; wheels exist for CPython 3.11 on Linux x86_64).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

ROOT = Path(__file__).resolve().parents[2]
RUNS = int(os.environ.get("ROLLWATCH_ATHERIS_RUNS", "50000"))
SEED = int(os.environ.get("ROLLWATCH_ATHERIS_SEED", "1"))  # fixed: make test is reproducible; vary it to explore

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("atheris") is None, reason="atheris is not installed (pip install 'rollwatch[fuzz]')"
)

HARNESS = """
import sys
import atheris

with atheris.instrument_imports(include=["rollwatch.events", "rollwatch.wire", "rollwatch.records"]):
    from rollwatch.events import decode_checked, decode_message


def one_input(data: bytes) -> None:
    decoded = decode_message(data)
    if not decoded.events and not decoded.rejected:
        raise AssertionError("an input yielded neither an event nor a rejection")
    for rejected in decoded.rejected:
        if not str(rejected.error):
            raise AssertionError("a rejection without a reason")
    checked = decode_checked(data)
    if decoded.events != checked.events or [r.index for r in decoded.rejected] != [r.index for r in checked.rejected]:
        raise AssertionError("the fast path and the contract's validator disagree")


atheris.Setup(sys.argv, one_input)
atheris.Fuzz()
"""

GOOD = {
    "type": "call",
    "event_id": "e-1",
    "ts": 1_763_900_000.5,
    "workflow": "wf",
    "route": "r",
    "latency_ms": 5.0,
    "status": "ok",
    "schema_valid": True,
    "safety_blocked": False,
    "task_success": None,
    "cost_usd": 0.001,
    "arm": "candidate",
}


def test_libfuzzer_finds_no_crash_in_the_decoder(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    seeds = [
        orjson.dumps(GOOD),
        orjson.dumps([GOOD, GOOD | {"event_id": "e-2", "status": "error"}]),
        orjson.dumps({"type": "review", "event_id": "r", "ts": "2026-11-23T10:00:00Z", "workflow": "wf",
                      "route": "r", "verdict": "rejected"}),
        orjson.dumps([GOOD, {"type": "call"}, 5]),
        b"[]",
    ]  # fmt: skip
    for i, seed in enumerate(seeds):
        (corpus / f"seed-{i}").write_bytes(seed)
    script = tmp_path / "fuzz_decoder.py"
    script.write_text(HARNESS, encoding="utf-8")
    done = subprocess.run(
        [
            sys.executable, str(script), str(corpus), f"-runs={RUNS}", f"-seed={SEED}", "-max_len=4096",
            f"-artifact_prefix={tmp_path}/", "-print_final_stats=1",
        ],
        cwd=ROOT, env=os.environ | {"PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    crashes = sorted(p for p in tmp_path.iterdir() if p.name.startswith(("crash-", "timeout-", "oom-")))
    found = {p.name: p.read_bytes()[:300] for p in crashes}
    assert done.returncode == 0 and not crashes, f"libFuzzer found {found}:\n{done.stderr[-3000:]}"
    assert f"stat::number_of_executed_units: {RUNS}" in done.stderr, done.stderr[-2000:]
