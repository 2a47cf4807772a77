"""Prometheus configuration and alert rules: promtool when it is installed, else their structure.

The test id says which ran (``[promtool]`` or ``[structure]``): Debian's ``prometheus``
package provides promtool, but ``make test`` installs only Python things, so a machine
without it still checks the rules' shape and every metric they use.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.metrics import exposed_metric_names, metric_names_in

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "deploy" / "prometheus"
RULES = sorted((PROM / "rules").glob("*.yml"))
UNIT_TESTS = sorted((PROM / "tests").glob("*.yml"))
PROMTOOL = shutil.which("promtool")
VALIDATOR = "promtool" if PROMTOOL else "structure"
DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")
RULE_KEYS = {"alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"}
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _check_structure(path: Path) -> int:
    """The rule-file format of Prometheus, as promtool would reject it; the number of rules."""
    doc = _load(path)
    assert isinstance(doc, dict) and set(doc) == {"groups"}, f"{path}: only `groups` at the top"
    names = [g["name"] for g in doc["groups"]]
    assert len(names) == len(set(names)), f"{path}: group names must be unique"
    count = 0
    for group in doc["groups"]:
        assert set(group) <= {"name", "interval", "limit", "rules"}, group.keys()
        if "interval" in group:
            assert DURATION.match(group["interval"])
        for rule in group["rules"]:
            count += 1
            where = f"{path.name}: {group['name']}/{rule.get('alert') or rule.get('record')}"
            assert set(rule) <= RULE_KEYS, f"{where}: unknown keys {set(rule) - RULE_KEYS}"
            assert ("alert" in rule) != ("record" in rule), f"{where}: exactly one of alert/record"
            assert isinstance(rule["expr"], str) and rule["expr"].strip(), where
            expr = rule["expr"]
            assert expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}"), where
            if "for" in rule:
                assert "alert" in rule and DURATION.match(rule["for"]), where
            for key in ("labels", "annotations"):
                mapping = rule.get(key, {})
                assert all(LABEL_NAME.match(k) and isinstance(v, str) for k, v in mapping.items()), where
            if "alert" in rule:
                assert {"summary", "description"} <= set(rule.get("annotations", {})), f"{where}: say what and why"
                assert rule.get("labels", {}).get("severity") in {"page", "ticket"}, f"{where}: severity"
    return count


def _promtool(*args: str) -> str:
    assert PROMTOOL is not None
    done = subprocess.run([PROMTOOL, *args], capture_output=True, text=True, cwd=PROM, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


@pytest.mark.parametrize("validator", [VALIDATOR])
def test_rules_are_valid(validator: str) -> None:
    assert RULES, "no rule files in deploy/prometheus/rules"
    if validator == "promtool":
        out = _promtool("check", "rules", *(str(p) for p in RULES))
        assert "SUCCESS" in out
    for path in RULES:
        assert _check_structure(path) >= 10


@pytest.mark.parametrize("validator", [VALIDATOR])
def test_prometheus_config_is_valid(validator: str) -> None:
    config = _load(PROM / "prometheus.yml")
    if validator == "promtool":
        assert "SUCCESS" in _promtool("check", "config", "prometheus.yml")
    assert config["rule_files"] == ["rules/*.yml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert len(jobs) == len(config["scrape_configs"])
    targets = {t for job in jobs.values() for c in job["static_configs"] for t in c["targets"]}
    compose = _load(ROOT / "docker-compose.yml")
    # Prometheus scrapes each worker and the flag store on the ports they serve /metrics on.
    from rollwatch.settings import Settings

    web, flags = Settings.model_fields["web_port"].default, Settings.model_fields["flagstore_port"].default
    workers = {f"{name}:{web}" for name in compose["services"] if name.startswith("worker-")}
    assert len(workers) >= 2 and set(jobs["rollwatch-worker"]["static_configs"][0]["targets"]) == workers
    assert f"flagstore:{flags}" in targets
    # The container reads this folder, so relative rule paths resolve the same in both places.
    service = compose["services"]["prometheus"]
    assert "./deploy/prometheus:/etc/prometheus:ro" in service["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in service["command"]


@pytest.mark.parametrize("validator", [VALIDATOR])
def test_alert_unit_tests(validator: str) -> None:
    """promtool runs the alerts against series; without it, the test file must at least match the rules."""
    assert UNIT_TESTS
    alerts = {rule["alert"] for path in RULES for g in _load(path)["groups"] for rule in g["rules"] if "alert" in rule}
    for path in UNIT_TESTS:
        doc = _load(path)
        for rule_file in doc["rule_files"]:
            assert (path.parent / rule_file).resolve() in {p.resolve() for p in RULES}
        tested = {t["alertname"] for case in doc["tests"] for t in case.get("alert_rule_test", [])}
        assert tested <= alerts, tested - alerts
        assert {"RollwatchRollbackIssued", "RollwatchCommandUnacknowledged", "RollwatchWorkerDown"} <= tested
        if validator == "promtool":
            assert "SUCCESS" in _promtool("test", "rules", str(path))


def test_rules_use_only_metrics_rollwatch_exposes() -> None:
    exposed = exposed_metric_names()
    for path in RULES:
        for group in _load(path)["groups"]:
            for rule in group["rules"]:
                unknown = metric_names_in(rule["expr"]) - exposed
                assert not unknown, f"{rule.get('alert')}: no such metric {sorted(unknown)}"
