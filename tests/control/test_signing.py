"""Signing and verifying commands: RFC 8785 bytes, keys bound to principals, every forgery named."""

from __future__ import annotations

import base64
import json
import secrets
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from rollwatch.commands import Signature, decode_command, encode_command
from rollwatch.errors import ConfigError
from rollwatch.settings import Settings
from rollwatch.signing import SignatureError, legacy_bytes, sign_command, verify_command
from rollwatch.tickets import Ticket
from rollwatch.trust import (
    PURPOSES,
    Keyring,
    KeyringError,
    Purpose,
    TrustedKey,
    canonical_bytes,
    generate_ed25519,
    keyring_from_settings,
    load_keyring,
    parse_signing_key,
    parse_verify_key,
    sign_document,
    signing_key_from_settings,
)
from rollwatch.trust.keys import sign_bytes
from tests.control.helpers import command, example_ticket

TICKET: Ticket = example_ticket()
SECRET = secrets.token_hex(16)
WORKER = TICKET.owners.automation


def ring(*entries: tuple[str, str, str, tuple[Purpose, ...]]) -> Keyring:
    """(key_id, principal, verify key text, purposes) -> a keyring."""
    return Keyring(
        TrustedKey(key_id, principal, parse_verify_key(text, key_id), frozenset(purposes))
        for key_id, principal, text, purposes in entries
    )


def worker_ring(text: str = SECRET, key_id: str = "k1") -> Keyring:
    return ring((key_id, WORKER, text, ("commands",)))


def test_hmac_and_ed25519_signatures_verify_after_the_wire() -> None:
    cmd = command(TICKET, "reduce_rollout", {"ai.rollout.percent": 1})
    raw = encode_command(sign_command(cmd, key=parse_signing_key("k1", SECRET, WORKER)))
    assert verify_command(decode_command(raw), worker_ring(), raw).principal == WORKER
    private, public = generate_ed25519()
    ed_raw = encode_command(sign_command(cmd, key=parse_signing_key("k2", private, WORKER)))
    ed_signed = decode_command(ed_raw)
    assert ed_signed.signature is not None and ed_signed.signature.alg == "ed25519"
    assert ed_signed.signature.canon == "rfc8785"
    verify_command(ed_signed, worker_ring(public, "k2"), ed_raw)


def test_the_author_is_the_owner_of_the_key_never_a_claim() -> None:
    cmd = command(TICKET, "set_action_mode", {"ai.action.mode": "draft"}, issued_by="ic-rotation")
    signed = sign_command(cmd, key=parse_signing_key("k1", SECRET, WORKER))
    assert signed.issued_by == WORKER  # sign_command writes the key's owner
    # A forger holding the worker's key writes issued_by itself and signs the bytes.
    body = signed.model_dump(mode="json") | {"issued_by": "ic-rotation"}
    forged = sign_document(body, parse_signing_key("k1", SECRET, WORKER))
    raw = orjson.dumps(forged)
    with pytest.raises(SignatureError) as caught:
        verify_command(decode_command(raw), worker_ring(), raw)
    assert caught.value.problem == "issuer_mismatch"
    assert "belongs to 'rollwatch-worker'" in str(caught.value)


def test_the_signature_covers_the_json_as_received_in_any_encoding() -> None:
    cmd = sign_command(
        command(TICKET, "reduce_rollout", {"ai.rollout.percent": 1}), key=parse_signing_key("k1", SECRET)
    )
    wire = orjson.loads(encode_command(cmd))
    # Another producer: reversed key order, indentation, and 1.0 written as 1 (JCS makes both 1).
    text = json.dumps(dict(reversed(list(wire.items()))), indent=3)
    assert '"ai.rollout.percent": 1.0' in text
    text = text.replace('"ai.rollout.percent": 1.0', '"ai.rollout.percent": 1')
    verify_command(decode_command(text), worker_ring(), text.encode())
    assert b"signature" not in canonical_bytes(wire)
    assert canonical_bytes(orjson.loads(text)) == canonical_bytes(wire)


@given(
    field=st.sampled_from(["workflow", "segment", "action", "command_id", "issued_at"]),
    value=st.text(min_size=1, max_size=20),
)
def test_changing_any_field_breaks_the_signature(field: str, value: str) -> None:
    cmd = sign_command(
        command(TICKET, "rollback", {"ai.rollout.percent": 1}), key=parse_signing_key("k1", SECRET, WORKER)
    )
    wire = orjson.loads(encode_command(cmd))
    if wire[field] == value:
        return
    wire[field] = value
    with pytest.raises(SignatureError) as caught:
        verify_command(cmd, worker_ring(), wire)
    assert caught.value.problem == "bad_signature"


def test_forgeries_are_named() -> None:
    cmd = command(TICKET, "reduce_rollout", {"ai.rollout.percent": 1})
    keys = ring(("k1", WORKER, SECRET, ("commands",)), ("rm", WORKER, "other", ("tickets",)))
    cases = {
        "unsigned": cmd,
        "unknown_key": sign_command(cmd, key=parse_signing_key("k9", SECRET, WORKER)),
        "bad_signature": sign_command(cmd, key=parse_signing_key("k1", "another secret", WORKER)),
        "wrong_alg": cmd.model_copy(
            update={"signature": Signature(alg="ed25519", key_id="k1", canon="rfc8785", value="AAAA")}
        ),
        "key_not_allowed": sign_command(cmd, key=parse_signing_key("rm", "other", WORKER)),
    }
    for problem, forged in cases.items():
        with pytest.raises(SignatureError) as caught:
            verify_command(forged, keys)
        assert caught.value.problem == problem, problem
    garbled = cmd.model_copy(
        update={"signature": Signature(alg="hmac-sha256", key_id="k1", canon="rfc8785", value="not base64!")}
    )
    with pytest.raises(SignatureError, match="not valid base64"):
        verify_command(garbled, keys)


def test_the_old_signed_form_is_accepted_only_while_the_setting_allows() -> None:
    cmd = command(TICKET, "reduce_rollout", {"ai.rollout.percent": 1})
    key = parse_signing_key("k1", SECRET, WORKER)
    old = cmd.model_copy(
        update={
            "signature": Signature(
                alg="hmac-sha256", key_id="k1", value=base64.b64encode(sign_bytes(key, legacy_bytes(cmd))).decode()
            )
        }
    )
    raw = encode_command(old)
    verify_command(decode_command(raw), worker_ring(), raw, legacy=True)
    with pytest.raises(SignatureError) as caught:
        verify_command(decode_command(raw), worker_ring(), raw, legacy=False)
    assert caught.value.problem == "legacy_refused"


def test_an_ed25519_public_key_cannot_be_used_as_an_hmac_secret() -> None:
    _, public = generate_ed25519()
    cmd = command(TICKET, "reduce_rollout", {"ai.rollout.percent": 1})
    # A forger who knows the public key signs with it as an HMAC secret and claims hmac-sha256.
    raw = base64.b64decode(public.removeprefix("ed25519:"))
    for secret in (raw, public.encode()):  # bytes are always an HMAC secret to sign_command
        forged = sign_command(cmd, "ops", secret)
        assert forged.signature is not None and forged.signature.alg == "hmac-sha256"
        with pytest.raises(SignatureError) as caught:
            verify_command(forged, ring(("ops", WORKER, public, ("commands",))))
        assert caught.value.problem == "wrong_alg"


def test_keys_come_from_settings_in_development_mode() -> None:
    private, public = generate_ed25519()
    settings = Settings(signing_key_id="worker", signing_key=SecretStr(SECRET), verify_keys={"ops": SecretStr(public)})
    keys = keyring_from_settings(settings)
    assert sorted(keys) == ["ops", "worker"]
    assert (keys["worker"].key.alg, keys["ops"].key.alg) == ("hmac-sha256", "ed25519")
    # The own key is trusted for everything under ROLLWATCH_PRINCIPAL; the older verify_keys
    # entries sign commands only, as the principal named like the key id.
    assert (keys["worker"].principal, keys["worker"].may_sign) == (settings.principal, frozenset(PURPOSES))
    assert (keys["ops"].principal, sorted(keys["ops"].may_sign)) == ("ops", ["commands"])
    ed_settings = Settings(signing_key_id="ed", signing_key=SecretStr(private))
    assert keyring_from_settings(ed_settings)["ed"].key == parse_verify_key(public)
    assert SECRET not in repr(keys) and SECRET not in repr(parse_signing_key("k", SECRET))


def _write(path: Path, doc: Any) -> Path:
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def test_a_keyring_file_says_who_owns_each_key_and_what_it_may_sign(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    private, public = generate_ed25519()
    monkeypatch.setenv("RW_TEST_FLAGSTORE_SECRET", SECRET)
    path = _write(
        tmp_path / "keyring.json",
        {
            "format": "rollwatch.keyring/v1",
            "principals": [
                {
                    "name": "rollwatch-worker",
                    "may_sign": ["commands"],
                    "keys": [{"key_id": "w1", "public_key": public}],
                },
                {
                    "name": "rollwatch-flagstore",
                    "may_sign": ["flags"],
                    "keys": [{"key_id": "fs1", "secret_env": "RW_TEST_FLAGSTORE_SECRET"}],
                },
            ],
        },
    )
    keys = load_keyring(path)
    assert (keys["w1"].principal, sorted(keys["w1"].may_sign)) == ("rollwatch-worker", ["commands"])
    assert keys["fs1"].key == parse_verify_key(SECRET)
    # A process whose key the file lists signs as the file's principal, whatever ROLLWATCH_PRINCIPAL says.
    settings = Settings(signing_key_id="w1", signing_key=SecretStr(private), keyring_file=path, principal="someone")
    signing = signing_key_from_settings(settings)
    assert signing is not None and signing.principal == "rollwatch-worker"
    assert keyring_from_settings(settings)["w1"].may_sign == {"commands"}  # no implicit trust in the own key


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"format": "rollwatch.keyring/v1", "principals": [{"name": "a", "may_sign": ["all"], "keys": []}]},
         "field principals.0.may_sign.0"),
        ({"format": "rollwatch.keyring/v1", "principals": [{"name": "a", "may_sign": ["flags"],
          "keys": [{"key_id": "k", "public_key": "ed25519:%%"}]}]}, "field principals.0.keys.0.public_key"),
        ({"format": "rollwatch.keyring/v1", "principals": [{"name": "a", "may_sign": ["flags"],
          "keys": [{"key_id": "k", "secret_env": "RW_TEST_UNSET_VARIABLE"}]}]}, "RW_TEST_UNSET_VARIABLE is not set"),
        ({"format": "rollwatch.keyring/v1", "principals": [{"name": "a", "may_sign": ["flags"],
          "keys": [{"key_id": "k"}]}]}, "exactly one of public_key or secret_env"),
        ({"format": "other"}, "field format"),
    ],
)  # fmt: skip
def test_a_bad_keyring_file_names_the_file_and_field(tmp_path: Path, doc: Any, message: str) -> None:
    path = _write(tmp_path / "ring.json", doc)
    with pytest.raises(KeyringError) as caught:
        load_keyring(path)
    assert str(path) in str(caught.value) and message in str(caught.value)
    assert isinstance(caught.value, ConfigError)


def test_bad_key_text_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not valid base64"):
        parse_verify_key("ed25519:%%%")
    with pytest.raises(ConfigError, match="32 bytes"):
        parse_verify_key("ed25519:" + base64.b64encode(b"short").decode())
    with pytest.raises(ConfigError, match="empty HMAC secret"):
        parse_signing_key("k", "hmac-sha256:")
    with pytest.raises(ConfigError, match="no signing key"):
        sign_command(command(TICKET, "reduce_rollout", {"ai.rollout.percent": 1}), "k", None)
