"""Replay reports: the HTML opened in headless Chromium shows the charts; the PNG; the CLI option."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rollwatch.events import encode_events
from rollwatch.ops.charts import gate_series, nice_ticks
from rollwatch.ops.errors import ReportError
from rollwatch.ops.report import render_html, write_report
from rollwatch.replay import ReplayReport, replay_file
from rollwatch.synth import Traffic, generate
from rollwatch.tickets.load import load_ticket
from rollwatch.tickets.model import Ticket
from tests.ops.helpers import ROOT

TICKET = ROOT / "examples" / "support-summary.ticket.yaml"
CANDIDATE_RGB = (0xD6, 0x27, 0x28)
BREACHED_RGB = (0xFB, 0xD5, 0xD5)


def _colours(png: Path) -> list[tuple[int, tuple[int, int, int]]]:
    """(pixel count, RGB) of every colour of an image."""
    from PIL import Image

    found = Image.open(png).convert("RGB").getcolors(maxcolors=1 << 24) or []
    return [(n, (int(rgb[0]), int(rgb[1]), int(rgb[2]))) for n, rgb in found if isinstance(rgb, tuple)]


def _close(rgb: tuple[int, int, int], wanted: tuple[int, int, int]) -> bool:
    return all(abs(a - b) <= 12 for a, b in zip(rgb, wanted, strict=True))


def _chromium() -> str | None:
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


@pytest.fixture(scope="module")
def telemetry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An hour of traffic whose candidate starts failing its output schema after 20 minutes."""
    path = tmp_path_factory.mktemp("replay") / "telemetry.jsonl"
    traffic = Traffic(
        duration_ms=60 * 60_000, onset_ms=20 * 60_000, regression="schema", calls_per_second=4, candidate_share=0.3
    )
    events = list(generate(traffic))
    with path.open("wb") as handle:
        for i in range(0, len(events), 100):
            handle.write(encode_events(events[i : i + 100]) + b"\n")
    return path


@pytest.fixture(scope="module")
def replayed(telemetry: Path) -> tuple[Ticket, ReplayReport]:
    ticket = load_ticket(TICKET)
    return ticket, replay_file(ticket, telemetry, keep_samples=True)


@pytest.fixture
def chromium(tmp_path: Path) -> Iterator[list[str]]:
    binary = _chromium()
    if binary is None:
        pytest.skip("headless Chromium is not installed (Debian: apt-get install -y chromium)")
    pytest.importorskip("PIL", reason="reading the screenshot needs Pillow (the test extra installs it)")
    yield [
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ]


def test_the_replay_breaches_and_rolls_back(replayed: tuple[Ticket, ReplayReport]) -> None:
    """The fixture is what the report tests need: a breach, a decision, gates over time."""
    _, report = replayed
    assert [(e.decision.kind, e.decision.gate) for e in report.timeline] == [("rollback", "json-failures")]
    series = {s.gate: s for s in gate_series(report)}
    json_failures = series["json-failures"]
    assert len(json_failures.times) == len(report.samples) > 30
    assert json_failures.states[0] == "insufficient" and json_failures.final_state == "breached"
    assert [m.action for m in json_failures.markers] == ["restore_route_and_prompt"]
    # Over the threshold before the evidence confirms it: the gate shows suspect first, never healthy then.
    turns = json_failures.turns()
    assert [what for _, what in turns][:2] == ["suspect", "confirmed"], turns
    assert turns[0][0] < turns[1][0] == json_failures.markers[0].at_ms


def test_html_report_renders_its_charts_in_headless_chromium(
    replayed: tuple[Ticket, ReplayReport], tmp_path: Path, chromium: list[str]
) -> None:
    ticket, report = replayed
    html = tmp_path / "out.html"
    write_report(ticket, report, html)
    source = html.read_text()
    assert "http://" not in source.replace("http://www.w3.org/2000/svg", "")  # nothing fetched: works offline
    assert "https://" not in source and "<script" not in source

    dom = subprocess.run(
        [*chromium, "--dump-dom", html.as_uri()], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    # The browser parsed one chart per gate plus the decision timeline, with drawn series.
    assert len(re.findall(r'<svg[^>]*class="chart"', dom)) == len(ticket.gates)
    chart = re.search(r'<svg[^>]*data-gate="json-failures".*?</svg>', dom, re.S)
    assert chart is not None
    candidate = re.search(r'class="series candidate" d="([^"]+)"', chart.group(0))
    assert candidate is not None and candidate.group(1).count("L") > 30
    assert 'class="series threshold"' in chart.group(0) and 'class="band breached"' in chart.group(0)
    assert "rollback restore_route_and_prompt" in chart.group(0)

    shot = tmp_path / "shot.png"
    subprocess.run(
        [*chromium, "--window-size=1100,1400", f"--screenshot={shot}", html.as_uri()],
        capture_output=True,
        timeout=60,
        check=True,
    )
    colours = _colours(shot)

    def near(rgb: tuple[int, int, int]) -> int:
        return sum(n for n, p in colours if _close(p, rgb))

    # What a person sees: the candidate's red line and the shaded breach are on screen.
    assert near(CANDIDATE_RGB) > 300
    assert near(BREACHED_RGB) > 3000


def test_png_report(replayed: tuple[Ticket, ReplayReport], tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="the PNG needs the 'report' extra")
    ticket, report = replayed
    html, png = tmp_path / "r.html", tmp_path / "r.png"
    write_report(ticket, report, html, png)
    from PIL import Image

    image = Image.open(png)
    assert image.format == "PNG"
    width, height = image.size
    assert width >= 1000 and height >= 200 * len(ticket.gates)
    assert any(_close(rgb, CANDIDATE_RGB) for _, rgb in _colours(png))


def test_replay_cli_writes_the_report(telemetry: Path, tmp_path: Path) -> None:
    from rollwatch.cli import app

    out = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["replay", "--ticket", str(TICKET), str(telemetry), "--report", str(out)])
    assert result.exit_code == 0, result.output
    assert "ROLLBACK json-failures" in result.output
    assert out.read_text().count('class="chart"') == 11


def test_a_report_without_samples_says_why(replayed: tuple[Ticket, ReplayReport]) -> None:
    ticket, _ = replayed
    with pytest.raises(ReportError, match="keep_samples=True"):
        render_html(ticket, ReplayReport())


def test_nice_ticks_cover_the_range() -> None:
    assert nice_ticks(0, 0.075) == [0.0, 0.02, 0.04, 0.06, 0.08]
    assert nice_ticks(0, 3200) == [0.0, 1000.0, 2000.0, 3000.0, 4000.0]
    assert nice_ticks(0, 0) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
