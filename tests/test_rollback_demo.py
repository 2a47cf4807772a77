"""`make demo` end to end: broker, a worker process with the production engine, real-time
traffic with a schema regression on the 5% canary, and a signed rollback on the control topic."""

from __future__ import annotations

import re

import pytest

from rollwatch.rollback_demo import run_rollback_demo

pytestmark = pytest.mark.integration


def test_the_canary_is_rolled_back_with_a_signed_command() -> None:
    lines: list[str] = []
    assert run_rollback_demo(lines.append, onset_s=5.0, deadline_s=90.0) == 0, "\n".join(lines)
    text = "\n".join(lines)
    assert "ROLLBACK on rollwatch.control: support-summary restore_route_and_prompt" in text
    assert "gate json-failures: schema_failure_rate" in text
    assert "signed hmac-sha256 by demo" in text
    onset = re.search(r"regression onset to rollback command: (-?[\d.]+)s", text)
    assert onset is not None and float(onset.group(1)) > 0  # never before the regression began
