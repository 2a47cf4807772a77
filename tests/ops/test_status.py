"""The SRE loop end to end on the embedded broker: ``traffic`` publishes a ticket and a regression,
a real worker (the production engine) rolls back, ``status`` shows it from /status and the
control topic, and ``tail`` shows the command the worker issued."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from rollwatch.broker import free_port
from rollwatch.ops.status import StatusReport, collect_status, fetch_status, render_status
from rollwatch.settings import Settings
from tests.ops.helpers import ROOT, ops_argv, ops_env, write_config

pytestmark = pytest.mark.integration

TICKET = ROOT / "examples" / "support-summary.ticket.yaml"
ENGINE = "rollwatch.gates.engine:EngineFactoryImpl"


def _breached(url: str) -> dict[str, Any] | None:
    try:
        body = fetch_status(url, timeout=2)
    except OSError:
        return None
    engine = (body.get("workflows") or {}).get("support-summary", {}).get("engine") or {}
    if body.get("ready") and any(g["state"] == "breached" for g in engine.get("gates") or ()):
        return body
    return None


@pytest.fixture
def worker(kafka_settings: Settings, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real worker after ``rollwatch traffic`` sent it a ticket and a schema regression."""
    config = write_config(kafka_settings, tmp_path / "rollwatch.toml")
    sent = subprocess.run(
        ops_argv(
            "traffic", "--ticket", str(TICKET), "--backfill", "--duration", "30m", "--onset", "5m",
            "--regression", "schema", "--rate", "4", "--candidate-share", "0.3", "--seed", "7",
            "--batch", "200", "-c", str(config),
        ),
        capture_output=True, cwd=ROOT, env=ops_env(), timeout=60,
    )  # fmt: skip
    assert sent.returncode == 0, sent.stderr.decode()
    assert "sent 10,863 events in 55 messages" in sent.stdout.decode()
    port = free_port()
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "rollwatch.agents", "--config", str(config), "--name", "worker-1",
                "--engine", ENGINE, "--web-port", str(port), "--data-dir", str(tmp_path / "data"),
                "--session-timeout", "4", "--rebalance-timeout", "4",
            ],
            cwd=ROOT, env=ops_env(), stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        yield f"http://127.0.0.1:{port}", config
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def test_status_and_tail_show_a_worker_rolling_back(worker: tuple[str, Path]) -> None:
    url, config = worker
    deadline = time.monotonic() + 40
    while _breached(url) is None:
        assert time.monotonic() < deadline, "the worker did not breach json-failures within 40 s"
        await asyncio.sleep(0.5)

    def run(command: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ops_argv(command, "-c", str(config), *args), capture_output=True, text=True, cwd=ROOT, env=ops_env(),
            timeout=30,
        )  # fmt: skip

    # The worker publishes its command after the breach: wait until tail sees it.
    deadline = time.monotonic() + 20
    while True:
        tailed = run("tail", "--from-beginning", "--until-end")
        assert tailed.returncode == 0, tailed.stderr
        if "json-failures" in tailed.stdout:
            break
        assert time.monotonic() < deadline, f"no command on the control topic: {tailed.stdout!r}"
        await asyncio.sleep(0.5)
    line = tailed.stdout.splitlines()[0]
    shown_rate = re.search(
        r"CMD  support-summary  restore_route_and_prompt  gate json-failures  schema_failure_rate ([0-9.]+) vs 0.01",
        line,
    )
    # Confirmed by the change detector once the window is well over 1% (the traffic's candidate fails 10%).
    assert shown_rate is not None and float(shown_rate.group(1)) > 0.02, line
    assert "by rollwatch-worker" in line and "REL-2041 r3" in line

    shown = run("status", "--worker", url)
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    assert "\x1b[" not in text  # a pipe gets no colour
    lines = text.splitlines()
    assert lines[0].split() == ["WORKFLOW", "WORKER", "TICKET", "CONTROL", "ARM", "CANDIDATE", "ARM", "ROLLOUT",
                                "LAST", "DECISION"]  # fmt: skip
    row = lines[1]
    for cell in ("support-summary", "worker-1", "REL-2041 r3", "support-summary/stable", "support-summary/candidate"):
        assert cell in row
    assert "rollback restore_route_and_prompt (gate json-failures)" in row
    gate = next(line for line in lines if line.strip().startswith("json-failures"))
    assert gate.split()[:5] == ["json-failures", "breached", "0.11", "0.01", "0"]
    assert "last 200 calls" in gate
    log_e, needed = gate.split()[-1].split("/")  # the detector's evidence against what confirms a breach
    assert float(log_e) >= float(needed) > 0

    doc = orjson.loads(run("status", "--worker", url, "--json").stdout)
    view = doc["workflows"][0]
    assert view["workflow"] == "support-summary" and view["ready"] is True
    assert view["last_decision"]["gate"] == "json-failures"
    assert {g["gate"] for g in view["engine"]["gates"]} >= {"json-failures", "p95-latency", "cost-per-task"}


def test_unreachable_workers_are_named(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    report = StatusReport(unreachable={dead: "Connection refused"})
    assert f"worker {dead} did not answer" in render_status(report)
    from rollwatch.ops.errors import StatusError

    with pytest.raises(StatusError, match="no worker answered"):
        collect_status([dead], timeout=1)
    config = tmp_path / "rollwatch.toml"
    config.write_text(f"web_port = {free_port()}\n")
    done = subprocess.run(
        ops_argv("status", "--no-commands", "-c", str(config)), capture_output=True, text=True, cwd=ROOT,
        env=ops_env(), timeout=30,
    )  # fmt: skip
    assert done.returncode == 2 and "no worker answered" in done.stderr


def test_worker_urls_come_from_the_environment_as_in_compose(tmp_path: Path) -> None:
    """docker-compose.yml sets ROLLWATCH_STATUS_URLS to both workers, space-separated."""
    first, second = f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"
    done = subprocess.run(
        ops_argv("status", "--no-commands", "--timeout", "1"), capture_output=True, text=True, cwd=ROOT,
        env=ops_env(ROLLWATCH_STATUS_URLS=f"{first} {second}"), timeout=30,
    )  # fmt: skip
    assert done.returncode == 2
    assert first in done.stderr and second in done.stderr
