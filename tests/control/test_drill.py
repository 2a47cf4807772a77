"""The rollback drill against a running flag store and gateway subscriber."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import typer
from pydantic import SecretStr
from redis.asyncio import Redis
from typer.testing import CliRunner

from rollwatch.broker import free_port
from rollwatch.flagstore.cli import drill_command, serve_flagstore
from rollwatch.flagstore.drill import DRILL_SEGMENT, drill_flags, run_drill
from rollwatch.flagstore.errors import DrillError
from rollwatch.flagstore.redis_sink import RedisFlags
from rollwatch.flagstore.service import FlagStore
from rollwatch.gateway import ControlSubscriber, FlagCache
from rollwatch.settings import Settings
from rollwatch.tickets import Ticket, candidate_flags
from tests.control.helpers import PEOPLE

pytestmark = pytest.mark.integration

WF = "support-summary"


@pytest.fixture
async def consumers(topics: Settings) -> AsyncIterator[tuple[FlagStore, FlagCache]]:
    store = FlagStore(topics)
    cache = FlagCache()
    subscriber = ControlSubscriber(topics, cache, consumer_name="gateway-1")
    await store.start()
    await subscriber.start()
    try:
        yield store, cache
    finally:
        await subscriber.stop()
        await store.stop()


def test_the_drill_flips_the_tickets_first_rollback(ticket: Ticket) -> None:
    assert drill_flags(ticket) == {
        "ai.route.provider": "support-summary/stable",
        "ai.prompt.version": "support-summary-v14",
        "ai.action.mode": "draft",
    }


async def test_a_drill_reports_each_consumers_apply_time_and_restores(
    consumers: tuple[FlagStore, FlagCache], topics: Settings, ticket: Ticket
) -> None:
    store, cache = consumers
    before = cache.flags(WF, DRILL_SEGMENT)
    report = await run_drill(topics, WF, consumers=["flagstore", "gateway-1"], deadline_s=5)
    assert report.ok, report.lines()
    assert report.principal == "rollwatch-worker"  # the owner of the signing key, allowed all three flags
    for phase in (report.drill, report.restore):
        assert [r.consumer for r in phase.results] == ["flagstore", "gateway-1"]
        assert all(r.status == "applied" and r.apply_ms is not None and r.apply_ms >= 0 for r in phase.results)
    assert report.restore.flags == {k: candidate_flags(ticket)[k] for k in drill_flags(ticket)}  # type: ignore[index]
    assert cache.flags(WF, DRILL_SEGMENT) == before
    assert store.effective(WF, DRILL_SEGMENT) == before
    assert store.effective(WF) == candidate_flags(ticket)  # real traffic never moved
    audited = [(r.action, r.outcome) for r in store.audit]
    assert audited == [("drill", "applied"), ("drill_restore", "applied")]
    text = "\n".join(report.lines())
    assert "gateway-1" in text and text.endswith("result: ok")


async def test_a_consumer_that_never_acks_fails_the_drill_but_the_flags_are_restored(
    consumers: tuple[FlagStore, FlagCache], topics: Settings
) -> None:
    store, _ = consumers
    report = await run_drill(topics, WF, consumers=["flagstore", "gateway-9"], deadline_s=0.5, segment=None)
    assert not report.ok
    assert [(phase, r.consumer) for phase, r in report.missed] == [
        ("drill", "gateway-9"),
        ("drill_restore", "gateway-9"),
    ]
    assert [r.consumer for r in report.drill.others] == ["gateway-1"]  # acked, though not expected
    assert store.effective(WF)["ai.action.mode"] == "auto"  # type: ignore[index]


async def test_the_drill_refuses_an_issuer_without_authority(topics: Settings) -> None:
    support = topics.model_copy(
        update={"signing_key_id": "support-lead-key", "signing_key": SecretStr(PEOPLE["support-lead"][0])}
    )
    with pytest.raises(DrillError, match=r"support-lead \(owner of key 'support-lead-key'\) may not drill"):
        await run_drill(support, WF, deadline_s=0.5)
    with pytest.raises(DrillError, match="belongs to 'rollwatch-worker': sign with support-lead's own key"):
        await run_drill(topics, WF, principal="support-lead", deadline_s=0.5)
    with pytest.raises(DrillError, match="no ticket in force"):
        await run_drill(topics, "unknown-workflow", deadline_s=0.5)


async def test_the_cli_exits_non_zero_when_a_consumer_misses_the_deadline(
    consumers: tuple[FlagStore, FlagCache], topics: Settings, tmp_path: Path
) -> None:
    config = tmp_path / "rollwatch.toml"
    keys = ("bootstrap_servers", *(f"topic_{r}" for r in ("telemetry", "control", "acks", "releases", "flags")))
    lines = [f"{k} = {json.dumps(getattr(topics, k))}" for k in keys]
    lines.append(f'signing_key_id = "{topics.signing_key_id}"')
    lines.append(f'signing_key = "{topics.signing_key.get_secret_value()}"')  # type: ignore[union-attr]
    config.write_text("\n".join(lines) + "\n")
    app = typer.Typer()
    app.command("drill")(drill_command)
    app.command("noop")(lambda: None)  # a multi-command app, as in rollwatch.cli
    runner = CliRunner()

    def invoke(*args: str) -> tuple[int, str]:
        result = runner.invoke(app, ["drill", "--workflow", WF, "--config", str(config), *args])
        return result.exit_code, result.output

    code, output = await asyncio.to_thread(invoke, "--consumer", "flagstore", "--deadline", "5")
    assert code == 0, output
    assert output.strip().endswith("result: ok")
    code, output = await asyncio.to_thread(
        invoke, "--consumer", "flagstore", "--consumer", "nobody", "--deadline", "0.3"
    )
    assert code == 1
    assert "MISSED" in output
    code, output = await asyncio.to_thread(invoke, "--json", "--deadline", "5")
    assert code == 0 and json.loads(output)["ok"] is True


async def test_the_flagstore_command_wires_store_http_metrics_and_redis(topics: Settings, ticket: Ticket) -> None:
    settings = topics.model_copy(update={"flagstore_port": free_port()})
    stop = asyncio.Event()
    running = asyncio.create_task(serve_flagstore(settings, "flagstore", True, stop))
    base = f"http://127.0.0.1:{settings.flagstore_port}"
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(200):
                with contextlib.suppress(aiohttp.ClientConnectionError):
                    async with http.get(f"{base}/healthz") as resp:
                        if resp.status == 200:
                            break
                await asyncio.sleep(0.05)
            report = await run_drill(settings, WF, deadline_s=5)
            assert report.ok, report.lines()
            observed = 'rollwatch_decision_to_applied_seconds_count{consumer="flagstore"} 2.0'
            for _ in range(200):  # the ack monitor sees the acks a moment after the drill does
                async with http.get(f"{base}/metrics") as resp:
                    metrics = await resp.text()
                if observed in metrics:
                    break
                await asyncio.sleep(0.05)
            async with http.get(f"{base}/flags/{WF}") as resp:
                flags = (await resp.json())["flags"]
    finally:
        stop.set()
        await asyncio.wait_for(running, 10)
        redis = Redis.from_url(settings.redis_url)
        stored = await RedisFlags(redis, settings.redis_prefix).read(WF)
        await redis.delete(RedisFlags(redis, settings.redis_prefix).key(WF))
        await redis.aclose()
    assert observed in metrics  # the drill and its restore
    assert flags == candidate_flags(ticket)
    assert stored["segments"][DRILL_SEGMENT]["ai.action.mode"] == "auto"
