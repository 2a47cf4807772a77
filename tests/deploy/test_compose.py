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
KEYRING_EXAMPLE = ROOT / "deploy" / "keyring.example.json"
KEYRING_SCHEMA = ROOT / "schemas" / "keyring.v1.json"
ACLS = ROOT / "deploy" / "kafka" / "acls.txt"
SECRETS = {
    "KAFKA_ADMIN_PASSWORD",
    "KAFKA_WORKER_PASSWORD",
    "KAFKA_FLAGSTORE_PASSWORD",
    "KAFKA_RELEASE_PASSWORD",
    "KAFKA_TRAFFIC_PASSWORD",
    "REDIS_PASSWORD",
    "GRAFANA_ADMIN_PASSWORD",
    "ROLLWATCH_WORKER_SIGNING_KEY",
    "ROLLWATCH_FLAGSTORE_SIGNING_KEY",
    "ROLLWATCH_RELEASE_SIGNING_KEY",
}
# service -> (Kafka user, the .env variable holding its password); topics and ACLs are set
# up by the admin, everything else by its own user.
KAFKA_USERS = {
    "topics": ("admin", "KAFKA_ADMIN_PASSWORD"),
    "worker-1": ("rollwatch-worker", "KAFKA_WORKER_PASSWORD"),
    "worker-2": ("rollwatch-worker", "KAFKA_WORKER_PASSWORD"),
    "flagstore": ("rollwatch-flagstore", "KAFKA_FLAGSTORE_PASSWORD"),
    "release": ("rollwatch-release", "KAFKA_RELEASE_PASSWORD"),
    "traffic": ("rollwatch-traffic", "KAFKA_TRAFFIC_PASSWORD"),
}
# service -> (keyring principal, purpose) of the key it signs with.
SIGNERS = {
    "worker-1": ("rollwatch-worker", "commands"),
    "worker-2": ("rollwatch-worker", "commands"),
    "flagstore": ("rollwatch-flagstore", "flags"),
    "release": ("release-bot", "tickets"),
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
        # The PLAINTEXT controller listener (whose anonymous principal is a super user) is
        # reachable only from inside the broker's container.
        "listeners=SASL_PLAINTEXT://:9092,CONTROLLER://127.0.0.1:9093",
        "controller.quorum.voters=1@127.0.0.1:9093",
        "sasl.enabled.mechanisms=SCRAM-SHA-512",
        "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512",
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "allow.everyone.if.no.acl.found=false",
        "super.users=User:admin;User:ANONYMOUS",
        "--add-scram",
    ):
        assert line in start.splitlines() or line in start
    assert "./deploy/kafka/start.sh:/opt/rollwatch/start.sh:ro" in kafka["volumes"]


def _load_service_settings(service: Mapping[str, Any], monkeypatch: pytest.MonkeyPatch) -> Any:
    from rollwatch.settings import load_settings

    env: dict[str, str] = service["environment"]
    for key in [k for k in os.environ if k.startswith(ENV_PREFIX)]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, str(value))
    # The keyring the container mounts at /etc/rollwatch/keyring.json: the shipped example.
    assert env["ROLLWATCH_KEYRING_FILE"] == "/etc/rollwatch/keyring.json"
    monkeypatch.setenv("ROLLWATCH_KEYRING_FILE", str(KEYRING_EXAMPLE))
    return load_settings(None)


def test_rollwatch_services_authenticate_as_their_own_user_and_their_settings_load(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from rollwatch.kafka import client_options

    services = rollwatch_services(compose)
    example = env_example()
    assert set(KAFKA_USERS) == set(services)
    known = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields} | {"ROLLWATCH_STATUS_URLS"}
    for name, service in services.items():
        env: dict[str, str] = service["environment"]
        unknown = sorted(k for k in env if k.startswith(ENV_PREFIX) and k not in known)
        assert not unknown, f"{name}: not a rollwatch setting: {unknown}"
        assert "ROLLWATCH_VERIFY_KEYS" not in env, f"{name}: production trusts the keyring, not ROLLWATCH_VERIFY_KEYS"
        settings = _load_service_settings(service, monkeypatch)
        options = client_options(settings)
        user, password_var = KAFKA_USERS[name]
        assert options["bootstrap_servers"] == "kafka:9092", name
        assert options["sasl_mechanism"] == "SCRAM-SHA-512" and options["security_protocol"] == "SASL_PLAINTEXT"
        assert options["sasl_plain_username"] == user, name
        assert options["sasl_plain_password"] == example[password_var], name
        assert settings.keyring_file == KEYRING_EXAMPLE, name
        if name.startswith("worker"):
            # Prometheus scrapes the workers from its own container.
            assert settings.web_host == "0.0.0.0"
        if name == "flagstore":
            assert settings.flagstore_host == "0.0.0.0"
            assert settings.redis_url.endswith("@redis:6379/0")
    # No two services share a password variable, except the two workers (one user).
    by_var: dict[str, set[str]] = {}
    for user, var in KAFKA_USERS.values():
        by_var.setdefault(var, set()).add(user)
    assert all(len(users) == 1 for users in by_var.values())
    assert len({var for _, var in KAFKA_USERS.values()}) == 5


def test_each_signer_has_its_own_key_owned_by_its_principal(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from rollwatch.trust.keyring import load_keyring

    keyring = load_keyring(KEYRING_EXAMPLE)
    services = rollwatch_services(compose)
    secrets = {}
    for name, (principal, purpose) in SIGNERS.items():
        settings = _load_service_settings(services[name], monkeypatch)
        trusted = keyring[settings.signing_key_id]
        assert trusted.principal == principal and purpose in trusted.may_sign, name
        assert settings.signing_key, name
        secrets[name] = services[name]["environment"]["ROLLWATCH_SIGNING_KEY"]
    # Three keys: the workers share one, nobody else shares any.
    assert secrets["worker-1"] == secrets["worker-2"]
    assert len({secrets["worker-1"], secrets["flagstore"], secrets["release"]}) == 3
    # Traffic signs nothing (its ticket comes from the release service).
    assert "ROLLWATCH_SIGNING_KEY" not in services["traffic"]["environment"]


def test_the_keyring_example_is_valid_and_loads() -> None:
    from rollwatch.trust.keyring import load_keyring

    doc = json.loads(KEYRING_EXAMPLE.read_text())
    schema = json.loads(KEYRING_SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    errors = list(validator.iter_errors(doc))
    assert not errors, [e.message for e in errors]
    keyring = load_keyring(KEYRING_EXAMPLE)
    rights = {p: {purpose for key in keys for purpose in key.may_sign} for p, keys in keyring.principals().items()}
    assert rights == {"rollwatch-worker": {"commands"}, "rollwatch-flagstore": {"flags"}, "release-bot": {"tickets"}}
    # Public keys only, each clearly an example to replace.
    assert all(key.key.alg == "ed25519" for key in keyring.values())
    assert all("EXAMPLE" in p["description"] for p in doc["principals"])
    # The validator is live: a secret in the file is refused.
    broken = copy.deepcopy(doc)
    broken["principals"][0]["keys"][0]["private_key"] = "ed25519:AAAA"
    assert not validator.is_valid(broken)


def _acls() -> list[tuple[str, str, str, str, str]]:
    """(user, operation, resource, pattern, name) rows of acls.txt, as acls.sh reads them."""
    rows = []
    for line in ACLS.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        user, operation, resource, pattern, name = line.split()
        rows.append((user, operation, resource, pattern, name))
    return rows


def _allowed(user: str, operation: str, resource: str, name: str) -> bool:
    """Kafka's rule for allow ACLs: literal match, prefix match; Read/Write imply Describe."""
    implied = {"Describe": {"Describe", "Read", "Write", "Delete", "Alter"}}.get(operation, {operation})
    for u, op, res, pattern, pat_name in _acls():
        if u != user or res != resource or op not in (implied | {"All"}):
            continue
        if (pattern == "literal" and pat_name in (name, "*")) or (pattern == "prefixed" and name.startswith(pat_name)):
            return True
    return False


def test_acls_let_only_the_right_service_write_each_topic(compose: dict[str, Any]) -> None:
    roles = ("telemetry", "control", "acks", "deadletter", "releases", "flags")
    defaults = {role: Settings.model_fields[f"topic_{role}"].default for role in roles}
    users = {"rollwatch-worker", "rollwatch-flagstore", "rollwatch-release", "rollwatch-traffic"}
    rows = _acls()
    assert {row[0] for row in rows} == users
    assert all(row[1] in {"Read", "Write", "Describe", "Create", "DescribeConfigs"} for row in rows)
    assert all(row[2] in {"topic", "group"} and row[3] in {"literal", "prefixed"} for row in rows)
    writers = {topic: {u for u in users if _allowed(u, "Write", "topic", topic)} for topic in defaults.values()}
    assert writers == {
        "rollwatch.telemetry": {"rollwatch-traffic"},
        "rollwatch.control": {"rollwatch-worker"},
        "rollwatch.deadletter": {"rollwatch-worker"},
        "rollwatch.releases": {"rollwatch-release"},
        "rollwatch.flags": {"rollwatch-flagstore"},
        "rollwatch.acks": {"rollwatch-flagstore"},
    }
    # Nobody but the admin creates or reconfigures the rollwatch.* topics.
    for user in users:
        for topic in defaults.values():
            assert not _allowed(user, "Create", "topic", topic), (user, topic)
    # What each reads, and the consumer groups they join.
    readers = {topic: {u for u in users if _allowed(u, "Read", "topic", topic)} for topic in defaults.values()}
    assert readers["rollwatch.telemetry"] == {"rollwatch-worker"}
    assert readers["rollwatch.releases"] == {"rollwatch-worker", "rollwatch-flagstore", "rollwatch-release"}
    assert not any(_allowed("rollwatch-traffic", "Read", "topic", t) for t in defaults.values())
    # Workers read commands, acks and dead letters too: `rollwatch tail` and `drill` run in their container.
    assert readers["rollwatch.control"] == {"rollwatch-flagstore", "rollwatch-worker"}
    assert readers["rollwatch.acks"] == {"rollwatch-flagstore", "rollwatch-worker"}
    assert readers["rollwatch.flags"] == {"rollwatch-flagstore"}
    assert _allowed("rollwatch-worker", "Read", "group", "rollwatch-worker")
    assert _allowed("rollwatch-flagstore", "Read", "group", "rollwatch.flagstore.flagstore")
    assert not _allowed("rollwatch-traffic", "Read", "group", "rollwatch-worker")
    # faust's changelog and leader topics belong to the workers alone.
    changelog = "rollwatch-worker-gates-changelog"
    for op in ("Create", "Read", "Write"):
        assert {u for u in users if _allowed(u, op, "topic", changelog)} == {"rollwatch-worker"}, op
    # Every process can see the topics it checks at start.
    assert all(_allowed(u, "Describe", "topic", t) for u in users for t in defaults.values())


def test_acls_are_applied_before_any_service_starts(compose: dict[str, Any]) -> None:
    services = compose["services"]
    acls = services["acls"]
    assert acls["image"] == services["kafka"]["image"] and acls["restart"] == "no"
    assert "./deploy/kafka/acls.sh:/opt/rollwatch/acls.sh:ro" in acls["volumes"]
    assert "./deploy/kafka/acls.txt:/opt/rollwatch/acls.txt:ro" in acls["volumes"]
    script = (ROOT / "deploy" / "kafka" / "acls.sh").read_text()
    # Every user of acls.txt gets its password from the environment the service passes.
    for user, var in {v for k, v in KAFKA_USERS.items() if k != "topics"}:
        assert f'user {user} "${var}"' in script, user
        assert var in acls["environment"]
    for flag in ("--add", "--allow-principal", "--operation", "--resource-pattern-type", "--command-config"):
        assert flag in script
    for name in ("worker-1", "worker-2", "flagstore", "release"):
        assert services[name]["depends_on"]["acls"] == {"condition": "service_completed_successfully"}, name
    assert services["traffic"]["depends_on"]["release"] == {"condition": "service_completed_successfully"}


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
        if name == "traffic":
            # It writes telemetry only: the release service publishes the ticket.
            assert ctx.params["publish_ticket"] is False and ctx.params["ticket"] is not None
        if name == "release":
            assert path == ["ticket", "publish"]
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
            if isinstance(volume, dict):
                # The operator's keyring (documented in the compose file); the repository ships its example.
                assert volume["target"] == "/etc/rollwatch/keyring.json" and "bind" not in volume
                assert volume["source"] == env_example()["ROLLWATCH_KEYRING"] == "./deploy/keyring.json"
                assert KEYRING_EXAMPLE.exists()
                continue
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name}: {source} does not exist"
    assert {"prometheus", "grafana", "redis", "kafka"} <= set(compose["services"])
    assert compose["services"]["traffic"]["profiles"] == ["demo"]
    assert compose["services"]["release"]["profiles"] == ["demo"]
    for name, service in rollwatch_services(compose).items():
        assert {"target": "/etc/rollwatch/keyring.json"}.items() <= next(
            v for v in service["volumes"] if isinstance(v, dict)
        ).items(), name
