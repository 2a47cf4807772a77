"""The keyring file and the release envelope agree with their JSON Schemas in ``schemas/``."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from rollwatch.trust import KeyringError, load_keyring, parse_signing_key
from rollwatch.trust.releases import retire_record, ticket_record
from tests.conftest import schema_validator
from tests.control.helpers import EXAMPLES, example_ticket, write_keyring

KEYRING = schema_validator("keyring.v1.json")
RELEASE = schema_validator("release-envelope.v1.json")


def test_a_keyring_the_consumers_load_is_valid_and_bad_ones_fail_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RW_TEST_CONTRACT_SECRET", "s3cret")
    good_path = write_keyring(tmp_path / "good.json", "own", "RW_TEST_CONTRACT_SECRET")
    good: dict[str, Any] = json.loads(good_path.read_text())
    KEYRING.validate(good)
    assert len(load_keyring(good_path)) == len(good["principals"])
    broken: list[dict[str, Any]] = []
    mutations: list[Callable[[dict[str, Any]], object]] = [
        lambda d: d["principals"][0].update(may_sign=["everything"]),
        lambda d: d["principals"][0].update(may_sign=[]),
        lambda d: d["principals"][1]["keys"][0].update(secret_env="X"),  # both a public key and a secret
        lambda d: d["principals"][1]["keys"][0].pop("public_key"),  # neither
        lambda d: d["principals"][1]["keys"][0].update(public_key="rsa:AAAA"),
        lambda d: d.update(format="rollwatch.keyring/v2"),
        lambda d: d["principals"][0].update(colour="red"),
    ]
    for mutate in mutations:
        doc = copy.deepcopy(good)
        mutate(doc)
        broken.append(doc)
    for n, doc in enumerate(broken):
        assert list(KEYRING.iter_errors(doc)), n
        path = tmp_path / f"bad-{n}.json"
        path.write_text(json.dumps(doc))
        with pytest.raises(KeyringError):
            load_keyring(path)


def test_release_records_are_valid_envelopes() -> None:
    ticket = example_ticket()
    key = parse_signing_key("rm", "secret", "release-bot")
    raw = (EXAMPLES / "support-summary.ticket.yaml").read_bytes()
    published = orjson.loads(ticket_record(raw, ticket, key))
    retired = orjson.loads(retire_record(ticket.workflow, ticket.ticket, ticket.revision, key, datetime.now(UTC)))
    for doc in (published, retired):
        RELEASE.validate(doc)
    assert published["text"].encode() == raw and published["media_type"] == "application/yaml"
    for bad in (
        {k: v for k, v in published.items() if k != "signature"},
        published | {"retired": True},
        {k: v for k, v in retired.items() if k != "retired"},
    ):
        assert list(RELEASE.iter_errors(bad))
