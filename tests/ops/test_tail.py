"""``rollwatch tail`` over the real embedded broker: a pseudo-terminal, pipes, filters and --since."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from rollwatch.ops.records import TailFilter
from rollwatch.ops.tail import StartAt, parse_since, tail
from rollwatch.settings import Settings
from tests.ops.helpers import ROOT, ack, ack_item, command, command_item, ops_argv, ops_env, produce, write_config

pytestmark = pytest.mark.integration

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _read_until(fd: int, wanted: list[str], timeout: float = 20.0) -> str:
    """Read the pseudo-terminal until every string of ``wanted`` appeared (ANSI codes ignored)."""
    buffer = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(w in ANSI.sub("", buffer.decode(errors="replace")) for w in wanted):
            return buffer.decode(errors="replace")
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            buffer += chunk
    text = ANSI.sub("", buffer.decode(errors="replace"))
    missing = [w for w in wanted if w not in text]
    raise AssertionError(f"not on the terminal within {timeout}s: {missing}\n--- screen ---\n{text}")


async def test_tail_on_a_terminal_is_coloured_and_follows_new_commands(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    first = command("cmd-route-1", "wf-a", "restore_route_and_prompt")
    second = command("cmd-cut-1", "wf-b", "reduce_rollout", gate="cost-per-task", observed=0.02, threshold=0.015)
    await produce(kafka_settings, [command_item(first), ack_item(ack("cmd-route-1", "wf-a")), command_item(second)])
    config = write_config(kafka_settings, tmp_path / "rollwatch.toml")
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        ops_argv("tail", "--from-beginning", "--acks", "-c", str(config)),
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env=ops_env(TERM="xterm-256color"),
    )
    os.close(slave)
    try:
        screen = _read_until(master, ["cmd-route-1", "applied", "cmd-cut-1"])
        plain = ANSI.sub("", screen).replace("\r", "")
        route = next(line for line in plain.splitlines() if "cmd-route-1" in line and "CMD" in line)
        # time, workflow, action, gate, observed vs threshold, issued by: all on one line
        assert re.match(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}Z  CMD  wf-a  restore_route_and_prompt  ", route)
        assert "gate json-failures" in route
        assert "schema_failure_rate 0.075 vs 0.01 (control 0.001, last 200 calls)" in route
        assert "by rollwatch-worker" in route
        assert "ai.route.provider=support-summary/stable" in route
        assert any("ACK" in line and "applied" in line and "by flagstore" in line for line in plain.splitlines())
        # Colour on a terminal: rollbacks red, rollout cuts yellow.
        assert "\x1b[31m\x1b[1mrestore_route_and_prompt" in screen
        assert "\x1b[33m\x1b[1mreduce_rollout" in screen
        # It follows: a command published now shows up without restarting.
        await produce(kafka_settings, [command_item(command("cmd-late-1", "wf-a", "disable_tools"))])
        assert "disable_tools" in _read_until(master, ["cmd-late-1"])
        proc.send_signal(signal.SIGINT)
        assert proc.wait(15) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


async def test_tail_json_in_a_pipe_has_no_colour_and_filters(kafka_settings: Settings, tmp_path: Path) -> None:
    await produce(
        kafka_settings,
        [
            command_item(command("c-a", "wf-a", "restore_route_and_prompt")),
            ack_item(ack("c-a", "wf-a")),
            command_item(command("c-b", "wf-b", "reduce_rollout")),
            ack_item(ack("c-b", "wf-b", "refused", "stale_ticket: REL-2041 r3 is not in force")),
            command_item(command("c-a2", "wf-a", "reduce_rollout")),
        ],
    )
    config = str(write_config(kafka_settings, tmp_path / "rollwatch.toml"))

    def run(*args: str) -> list[str]:
        done = subprocess.run(
            ops_argv("tail", "--from-beginning", "--until-end", "--acks", "-c", config, *args),
            capture_output=True,
            cwd=ROOT,
            env=ops_env(),
            timeout=30,
        )
        assert done.returncode == 0, done.stderr.decode()
        assert b"\x1b[" not in done.stdout
        return done.stdout.decode().splitlines()

    docs = [orjson.loads(line) for line in run("--json", "--workflow", "wf-a")]
    assert [(d["kind"], d["workflow"]) for d in docs] == [("command", "wf-a"), ("ack", "wf-a"), ("command", "wf-a")]
    assert docs[0]["command"]["command_id"] == "c-a"
    assert docs[0]["command"]["reason"] == {
        "gate": "json-failures",
        "metric": "schema_failure_rate",
        "observed": 0.075,
        "threshold": 0.01,
        "control": 0.001,
        "window": "last 200 calls",
        "samples": {"candidate": 200, "control": 3800},
        "detail": None,
    }
    assert docs[1]["ack"]["status"] == "applied"
    # An action filter keeps the acks of the commands it shows, and only those.
    cut = [orjson.loads(line) for line in run("--json", "--action", "reduce_rollout")]
    assert [(d["kind"], d["workflow"]) for d in cut] == [("command", "wf-b"), ("ack", "wf-b"), ("command", "wf-a")]
    assert cut[1]["ack"]["detail"].startswith("stale_ticket")
    # Without --json, a pipe still gets plain readable lines (auto colour is for terminals only).
    plain = run("--max", "2")
    assert len(plain) == 2
    assert "CMD  wf-a  restore_route_and_prompt" in plain[0]


async def test_since_starts_at_a_moment_and_bad_records_are_shown(kafka_settings: Settings) -> None:
    now = int(time.time() * 1000)
    old, recent = command("c-old", "wf"), command("c-new", "wf")
    dead = orjson.dumps(
        {"reason": "unknown field 'latency'", "field": "latency", "source": {"topic": "t", "partition": 1, "offset": 7}}
    )
    await produce(
        kafka_settings,
        [
            command_item(old, now - 2 * 3_600_000),
            command_item(recent, now - 60_000),
            ("control", b"{not json", "wf", now - 30_000),
            ("deadletter", dead, "wf", now - 20_000),
        ],
    )
    lines: list[str] = []
    shown = await tail(
        kafka_settings,
        lines.append,
        roles=("control", "deadletter"),
        start=StartAt.since(parse_since("30m", now)),
        until_end=True,
    )
    assert shown == 3
    assert "c-new" in lines[0] and not any("c-old" in line for line in lines)
    assert "BAD  wf  undecodable on" in lines[1] and "Invalid JSON" in lines[1]
    assert "DLQ  wf  rejected  latency: unknown field 'latency'  from t[1]@7" in lines[2]
    # A workflow filter applies to dead letters by their key.
    assert (
        await tail(
            kafka_settings,
            lines.append,
            roles=("deadletter",),
            start=StartAt("beginning"),
            selection=TailFilter(frozenset({"other"})),
            until_end=True,
        )
        == 0
    )


def test_since_accepts_durations_and_times() -> None:
    now = 1_700_000_000_000
    assert parse_since("15m", now) == now - 15 * 60_000
    assert parse_since("2026-04-10T12:00:00Z") == int(datetime(2026, 4, 10, 12, tzinfo=UTC).timestamp() * 1000)
    with pytest.raises(Exception, match="expected a duration"):
        parse_since("yesterday", now)


async def test_missing_topic_is_a_clear_error(kafka_settings: Settings, tmp_path: Path) -> None:
    config = write_config(kafka_settings, tmp_path / "rollwatch.toml")
    done = subprocess.run(
        ops_argv("tail", "--until-end", "-c", str(config)), capture_output=True, cwd=ROOT, env=ops_env(), timeout=30
    )
    assert done.returncode == 2
    assert "run `rollwatch topics create`" in done.stderr.decode()
