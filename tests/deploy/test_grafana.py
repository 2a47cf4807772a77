"""The provisioned Grafana: datasource, dashboard provider and a dashboard whose every query
reads a metric rollwatch exposes, through the provisioned datasource."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.metrics import exposed_metric_names, metric_names_in

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))


def _compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return doc


def _datasource() -> dict[str, Any]:
    doc = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    (source,) = doc["datasources"]
    result: dict[str, Any] = source
    return result


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def test_provisioning_matches_the_compose_mounts() -> None:
    grafana = _compose()["services"]["grafana"]
    mounts = {v.split(":")[0]: v.split(":")[1] for v in grafana["volumes"]}
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "rollwatch.yml").read_text())["providers"][0]
    assert provider["type"] == "file"
    assert mounts["./deploy/grafana/dashboards"] == provider["options"]["path"]
    source = _datasource()
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    assert "prometheus" in _compose()["services"]
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{provider['options']['path']}/{DASHBOARDS[0].name}"


def test_dashboard_queries_read_real_metrics_through_the_datasource() -> None:
    assert DASHBOARDS
    uid = _datasource()["uid"]
    exposed = exposed_metric_names()
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        assert dashboard["uid"] and dashboard["title"]
        variables = {v["name"] for v in dashboard["templating"]["list"]}
        panels = _panels(dashboard)
        assert len(panels) >= 10
        for panel in panels:
            assert panel["datasource"]["uid"] == uid, panel["title"]
            assert panel["targets"], f"{panel['title']}: no query"
            if "repeat" in panel:
                assert panel["repeat"] in variables
            for target in panel["targets"]:
                expr = target["expr"]
                assert target["datasource"]["uid"] == uid
                names = metric_names_in(expr) | ({"up"} if re.search(r"\bup\{", expr) else set())
                assert names, f"{panel['title']}: {expr} reads no metric"
                assert names <= exposed, f"{panel['title']}: no such metric {sorted(names - exposed)}"
                used = set(re.findall(r"\$(\w+)", expr)) - {"__rate_interval", "__interval", "__range"}
                assert used <= variables, f"{panel['title']}: undefined variables {used - variables}"
        # What an SRE opens it for: gate values against thresholds, commands, apply times, lag.
        exprs = " ".join(t["expr"] for p in panels for t in p["targets"])
        for metric in (
            "rollwatch_gate_value",
            "rollwatch_gate_threshold",
            "rollwatch_gate_state",
            "rollwatch_commands_emitted_total",
            "rollwatch_decision_to_applied_seconds_bucket",
            "rollwatch_consumer_lag",
        ):
            assert metric in exprs


def test_panels_do_not_overlap() -> None:
    for path in DASHBOARDS:
        cells: dict[tuple[int, int], str] = {}
        for panel in json.loads(path.read_text())["panels"]:
            g = panel["gridPos"]
            assert g["x"] + g["w"] <= 24, panel["title"]
            for x in range(g["x"], g["x"] + g["w"]):
                for y in range(g["y"], g["y"] + g["h"]):
                    assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                    cells[(x, y)] = panel["title"]
