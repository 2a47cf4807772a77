"""``docker-compose.yml``: valid by the Compose Specification's JSON Schema, secrets only from
the environment, and every rollwatch service runs a command the CLI really has.

Compose interpolates ``${VAR}`` after parsing the YAML and before validating, so the tests
do the same with the placeholders of ``.env.example`` (which must name every variable).
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import typer
import yaml

from rollwatch.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
SCHEMA = Path(__file__).with_name("compose_spec.json")
ROLLWATCH_IMAGE = "rollwatch:latest"
SECRETS = {
    "KAFKA_ADMIN_PASSWORD",
    "KAFKA_CLIENT_PASSWORD",
    "REDIS_PASSWORD",
    "GRAFANA_ADMIN_PASSWORD",
    "ROLLWATCH_SIGNING_KEY",
    "ROLLWATCH_VERIFY_KEY",
}
_VAR = re.compile(
    r"\$(?:\$|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?])?(?P<arg>[^}]*)\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


class MissingVariable(Exception):
    pass


def _substitute(text: str, env: Mapping[str, str]) -> str:
    """Compose's interpolation: ``$$``, ``$VAR``, ``${VAR}``, ``${VAR:-default}``, ``${VAR:?error}``."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("braced") or match.group("bare")
        op, arg = match.group("op"), match.group("arg") or ""
        value = env.get(name)
        unset = value is None or (op is not None and op.startswith(":") and value == "")
        if op in (":?", "?") and unset:
            raise MissingVariable(f"{name}: {arg}")
        if op in (":-", "-") and unset:
            return _substitute(arg, env)
        return value or ""

    return _VAR.sub(one, text)


def interpolate(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return _substitute(node, env)
    if isinstance(node, list):
        return [interpolate(item, env) for item in node]
    if isinstance(node, dict):
        return {key: interpolate(value, env) for key, value in node.items()}
    return node


def variables(node: Any) -> Iterator[tuple[str, str | None]]:
    """(name, operator) of every variable reference in the document."""
    if isinstance(node, str):
        for match in _VAR.finditer(node):
            if match.group(0) != "$$":
                yield match.group("braced") or match.group("bare"), match.group("op")
    elif isinstance(node, list):
        for item in node:
            yield from variables(item)
    elif isinstance(node, dict):
        for value in node.values():
            yield from variables(value)


def env_example() -> dict[str, str]:
    pairs = (line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines() if line and not line.startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return doc


@pytest.fixture(scope="module")
def compose(raw: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = interpolate(raw, env_example())
    return result


def rollwatch_services(compose: Mapping[str, Any]) -> dict[str, Any]:
    return {name: svc for name, svc in compose["services"].items() if svc.get("image") == ROLLWATCH_IMAGE}


def test_the_compose_file_is_valid_by_the_compose_spec_schema(compose: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA.read_text())
    # The schema declares draft 2019-09 (under the http:// meta-schema URL jsonschema does not map).
    assert schema["$schema"].startswith("http://json-schema.org/draft/2019-09/schema")
    jsonschema.Draft201909Validator.check_schema(schema)
    validator = jsonschema.Draft201909Validator(schema)
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)
    # The validator is live: a typo in a service key is caught.
    broken = copy.deepcopy(compose)
    broken["services"]["worker-1"]["comand"] = broken["services"]["worker-1"].pop("command")
    assert not validator.is_valid(broken)


def test_secrets_come_only_from_the_environment(raw: dict[str, Any]) -> None:
    refs = list(variables(raw))
    example = env_example()
    undocumented = sorted({name for name, _ in refs} - set(example))
    assert not undocumented, f"variables missing from .env.example: {undocumented}"
    for secret in SECRETS:
        ops = {op for name, op in refs if name == secret}
        assert ops == {":?"}, f"{secret} must be required (${{{secret}:?...}}), never defaulted: {ops}"
        assert re.fullmatch(r"<[^>]+>", example[secret]), f".env.example must hold a placeholder for {secret}"
    # Without a .env, compose refuses to start rather than running with empty credentials.
    with pytest.raises(MissingVariable):
        interpolate(raw, {})
    # No credential is written into the file itself.
    text = COMPOSE.read_text()
    assert not re.search(r"(?i)(password|secret|key)\s*[:=]\s*['\"]?[A-Za-z0-9+/]{12,}", text)


def test_kafka_is_apache_kafka_kraft_with_scram(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:") and not kafka["image"].endswith(":latest")
    start = (ROOT / "deploy" / "kafka" / "start.sh").read_text()
    for line in (
        "process.roles=broker,controller",
        "listeners=SASL_PLAINTEXT://:9092,CONTROLLER://:9093",
        "sasl.enabled.mechanisms=SCRAM-SHA-512",
        "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512",
        "--add-scram",
    ):
        assert line in start
    assert "./deploy/kafka/start.sh:/opt/rollwatch/start.sh:ro" in kafka["volumes"]


def test_rollwatch_services_authenticate_and_their_settings_load(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from rollwatch.kafka import client_options
    from rollwatch.settings import load_settings

    services = rollwatch_services(compose)
    example = env_example()
    assert {"topics", "worker-1", "worker-2", "flagstore", "traffic"} <= set(services)
    known = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields} | {"ROLLWATCH_STATUS_URLS"}
    for name, service in services.items():
        env: dict[str, str] = service["environment"]
        unknown = sorted(k for k in env if k.startswith(ENV_PREFIX) and k not in known)
        assert not unknown, f"{name}: not a rollwatch setting: {unknown}"
        for key in [k for k in os.environ if k.startswith(ENV_PREFIX)]:
            monkeypatch.delenv(key)
        for key, value in env.items():
            monkeypatch.setenv(key, str(value))
        settings = load_settings(None)
        options = client_options(settings)
        assert options["bootstrap_servers"] == "kafka:9092", name
        assert options["sasl_mechanism"] == "SCRAM-SHA-512" and options["security_protocol"] == "SASL_PLAINTEXT"
        assert options["sasl_plain_password"] == env_example()["KAFKA_CLIENT_PASSWORD"], name
        if name.startswith("worker"):
            assert settings.signing_key_id == example["ROLLWATCH_SIGNING_KEY_ID"] and settings.signing_key
        if name == "flagstore":
            # It trusts the key id the workers sign with.
            assert set(settings.verify_keys) == {example["ROLLWATCH_SIGNING_KEY_ID"]}
            assert settings.redis_url.endswith("@redis:6379/0")


def _resolve(root: Any, argv: list[str]) -> tuple[Any, list[str], list[str]]:
    """Walk groups along ``argv``: the leaf command, the path taken and the leaf's arguments.

    Groups are recognised by their ``commands`` (typer bundles its own click, whose classes
    are not the ``click`` package's).
    """
    command: Any = root
    path: list[str] = []
    args = list(argv)
    while isinstance(getattr(command, "commands", None), dict) and args:
        name = args.pop(0)
        sub = command.commands.get(name)
        if sub is None:
            raise LookupError(f"`rollwatch {' '.join([*path, name])}`: no such command (mount it on rollwatch.cli.app)")
        command, path = sub, [*path, name]
    return command, path, args


def test_every_service_command_exists_in_the_cli(compose: dict[str, Any]) -> None:
    """Parsed by the real typer app: the command path, each option and its value must be accepted.

    This fails until ``worker``, ``flagstore`` and ``traffic`` are mounted on ``rollwatch.cli.app``.
    """
    from rollwatch.cli import app

    root = typer.main.get_command(app)
    services = rollwatch_services(compose)
    missing = []
    for name, service in services.items():
        argv = [str(a) for a in service["command"]]
        try:
            command, path, args = _resolve(root, argv)
        except LookupError as exc:
            missing.append(f"{name}: {exc}")
            continue
        # The image's WORKDIR is /app, holding the checkout's examples/ (deploy/Dockerfile).
        args = [str(ROOT / a.removeprefix("/app/")) if a.startswith("/app/") else a for a in args]
        with command.make_context(" ".join(["rollwatch", *path]), args) as ctx:
            assert ctx.params is not None
        engine = ctx.params.get("engine")
        if engine:
            from rollwatch.agents.cli import load_engine_factory

            load_engine_factory(engine)
    assert not missing, "\n".join(missing)
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    assert "COPY examples ./examples" in dockerfile and "WORKDIR /app" in dockerfile


def test_bind_mounts_exist_and_images_are_pinned(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        image = service["image"]
        if image != ROLLWATCH_IMAGE:
            assert ":" in image and not image.endswith(":latest"), f"{name}: pin {image}"
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name}: {source} does not exist"
    assert {"prometheus", "grafana", "redis", "kafka"} <= set(compose["services"])
    assert compose["services"]["traffic"]["profiles"] == ["demo"]
