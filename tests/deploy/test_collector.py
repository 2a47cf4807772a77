"""``deploy/otel-collector/collector.yaml``: documented Collector keys only; OTLP in, Kafka out to the worker."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import pytest
import yaml

from rollwatch.otlp.decode import Encoding
from rollwatch.otlp.names import OPERATION
from rollwatch.settings import load_settings

ROOT: Final = Path(__file__).resolve().parents[2]
CONFIG: Final = ROOT / "deploy" / "otel-collector" / "collector.yaml"
KEYS: Final[dict[str, Any]] = json.loads(Path(__file__).with_name("collector_keys.json").read_text())
SECTIONS: Final = ("receivers", "processors", "exporters")
_ENV: Final = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")


def load() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(CONFIG.read_text())
    return config


def undocumented(value: Any, spec: Any, path: str) -> Iterator[str]:
    """Paths in ``value`` that the documented tree ``spec`` does not have."""
    if spec is None or not isinstance(value, dict):
        return
    for key, child in value.items():
        if key in spec:
            yield from undocumented(child, spec[key], f"{path}.{key}")
        elif "*" in spec:
            yield from undocumented(child, spec["*"], f"{path}.{key}")
        else:
            yield f"{path}.{key}"


def problems(config: dict[str, Any]) -> list[str]:
    found: list[str] = []
    for section in SECTIONS:
        for component_id, settings in (config.get(section) or {}).items():
            kind = component_id.split("/", 1)[0]
            if kind not in KEYS[section]:
                found.append(f"{section}.{component_id}: no documented {section[:-1]} {kind!r}")
                continue
            found += undocumented(settings or {}, KEYS[section][kind], f"{section}.{component_id}")
    found += undocumented(config.get("service") or {}, KEYS["service"], "service")
    found += [f"{key}: not a top-level key" for key in config if key not in (*SECTIONS, "service", "extensions")]
    return found


def test_every_key_is_documented_by_its_component() -> None:
    assert problems(load()) == []


def test_the_key_check_catches_a_misspelt_key() -> None:
    config = load()
    config["exporters"]["kafka/rollwatch"]["traces"]["encodings"] = "otlp_json"
    config["processors"]["batch"]["timeout_ms"] = 200
    assert problems(config) == [
        "processors.batch.timeout_ms",
        "exporters.kafka/rollwatch.traces.encodings",
    ]


def test_the_traces_pipeline_goes_from_otlp_to_the_topic_the_worker_reads() -> None:
    config = load()
    [(name, pipeline)] = config["service"]["pipelines"].items()
    assert name.split("/")[0] == "traces"
    for section in SECTIONS:
        for component in pipeline[section]:
            assert component in config[section], f"{name} uses undefined {section[:-1]} {component}"
    assert pipeline["receivers"] == ["otlp"]
    [exporter] = pipeline["exporters"]
    kafka = config["exporters"][exporter]
    assert exporter.split("/")[0] == "kafka"
    encodings: tuple[Encoding, ...] = ("otlp_proto", "otlp_json")
    assert kafka["traces"]["encoding"] in encodings
    topic = kafka["traces"]["topic"]
    assert load_settings(None, topic_otlp=topic).topic_otlp == topic
    assert f"ROLLWATCH_TOPIC_OTLP={topic}" in (ROOT / "README.md").read_text()
    # The same SASL mechanism as rollwatch's own clients (rollwatch.kafka.client_options).
    assert kafka["auth"]["sasl"]["mechanism"] == "SCRAM-SHA-512"


def test_the_filter_keeps_exactly_the_spans_the_worker_converts() -> None:
    conditions = load()["processors"]["filter/genai"]["traces"]["span"]
    assert conditions == [f'attributes["{OPERATION}"] == nil']


def test_credentials_come_from_the_collectors_environment() -> None:
    sasl = load()["exporters"]["kafka/rollwatch"]["auth"]["sasl"]
    assert _ENV.fullmatch(sasl["password"]) and _ENV.fullmatch(sasl["username"])
    # Every other value is literal: no secret is written in the file.
    assert set(_ENV.findall(CONFIG.read_text())) == {
        "KAFKA_BROKERS",
        "KAFKA_COLLECTOR_USERNAME",
        "KAFKA_COLLECTOR_PASSWORD",
    }


@pytest.mark.parametrize("section", SECTIONS)
def test_every_defined_component_is_used(section: str) -> None:
    config = load()
    used = {c for pipeline in config["service"]["pipelines"].values() for c in pipeline.get(section, ())}
    assert set(config[section]) == used
