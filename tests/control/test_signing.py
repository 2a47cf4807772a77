"""Signing and verifying commands: what verifies, and every way a forgery is caught."""

from __future__ import annotations

import base64
import secrets

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from rollwatch.commands import Signature, decode_command, encode_command
from rollwatch.errors import ConfigError
from rollwatch.settings import Settings
from rollwatch.signing import (
    SignatureError,
    canonical_bytes,
    generate_ed25519,
    keyring_from_settings,
    parse_signing_key,
    parse_verify_key,
    sign_command,
    verify_command,
)
from rollwatch.tickets import Ticket
from tests.control.helpers import command, example_ticket

TICKET: Ticket = example_ticket()
SECRET = secrets.token_hex(16)


def test_hmac_and_ed25519_signatures_verify_after_the_wire() -> None:
    cmd = command(TICKET, "reduce_rollout", {"ai.rollout.percent": 1})
    hmac_signed = decode_command(encode_command(sign_command(cmd, "k1", SECRET)))
    verify_command(hmac_signed, {"k1": parse_verify_key(SECRET)})
    private, public = generate_ed25519()
    ed_signed = decode_command(encode_command(sign_command(cmd, "k2", private)))
    assert ed_signed.signature is not None and ed_signed.signature.alg == "ed25519"
    verify_command(ed_signed, {"k2": parse_verify_key(public)})


def test_the_signature_covers_the_model_not_the_bytes() -> None:
    cmd = sign_command(command(TICKET, "reduce_rollout", {"ai.rollout.percent": 1}), "k1", SECRET)
    wire = orjson.loads(encode_command(cmd))
    del wire["segment"]  # absent and null are the same command
    reordered = orjson.dumps(dict(reversed(list(wire.items()))))
    verify_command(decode_command(reordered), {"k1": parse_verify_key(SECRET)})
    assert b"signature" not in canonical_bytes(cmd)


@given(
    field=st.sampled_from(["workflow", "segment", "action", "issued_by", "command_id"]),
    value=st.text(min_size=1, max_size=20),
)
def test_changing_any_field_breaks_the_signature(field: str, value: str) -> None:
    cmd = sign_command(command(TICKET, "rollback", {"ai.rollout.percent": 1}), "k1", SECRET)
    if field == "action":
        value = "promote"
    if getattr(cmd, field) == value:
        return
    tampered = cmd.model_copy(update={field: value})
    with pytest.raises(SignatureError) as caught:
        verify_command(tampered, {"k1": parse_verify_key(SECRET)})
    assert caught.value.problem == "bad_signature"


def test_forgeries_are_named() -> None:
    cmd = command(TICKET, "reduce_rollout", {"ai.rollout.percent": 1})
    keys = {"k1": parse_verify_key(SECRET)}
    cases = {
        "unsigned": cmd,
        "unknown_key": sign_command(cmd, "k9", SECRET),
        "bad_signature": sign_command(cmd, "k1", "another secret"),
        "wrong_alg": cmd.model_copy(update={"signature": Signature(alg="ed25519", key_id="k1", value="AAAA")}),
    }
    for problem, forged in cases.items():
        with pytest.raises(SignatureError) as caught:
            verify_command(forged, keys)
        assert caught.value.problem == problem
    garbled = cmd.model_copy(update={"signature": Signature(alg="hmac-sha256", key_id="k1", value="not base64!")})
    with pytest.raises(SignatureError, match="not valid base64"):
        verify_command(garbled, keys)


def test_an_ed25519_public_key_cannot_be_used_as_an_hmac_secret() -> None:
    _, public = generate_ed25519()
    cmd = command(TICKET, "reduce_rollout", {"ai.rollout.percent": 1})
    # A forger who knows the public key signs with it as an HMAC secret and claims hmac-sha256.
    raw = base64.b64decode(public.removeprefix("ed25519:"))
    for secret in (raw, public.encode()):  # bytes are always an HMAC secret to sign_command
        forged = sign_command(cmd, "ops", secret)
        assert forged.signature is not None and forged.signature.alg == "hmac-sha256"
        with pytest.raises(SignatureError) as caught:
            verify_command(forged, {"ops": parse_verify_key(public)})
        assert caught.value.problem == "wrong_alg"


def test_keys_come_from_settings() -> None:
    private, public = generate_ed25519()
    settings = Settings(signing_key_id="worker", signing_key=SecretStr(SECRET), verify_keys={"ops": SecretStr(public)})
    ring = keyring_from_settings(settings)
    assert sorted(ring) == ["ops", "worker"]
    assert (ring["worker"].alg, ring["ops"].alg) == ("hmac-sha256", "ed25519")
    ed_settings = Settings(signing_key_id="ed", signing_key=SecretStr(private))
    assert keyring_from_settings(ed_settings)["ed"] == parse_verify_key(public)
    assert SECRET not in repr(ring) and SECRET not in repr(parse_signing_key("k", SECRET))


def test_bad_key_text_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not valid base64"):
        parse_verify_key("ed25519:%%%")
    with pytest.raises(ConfigError, match="32 bytes"):
        parse_verify_key("ed25519:" + base64.b64encode(b"short").decode())
    with pytest.raises(ConfigError, match="empty HMAC secret"):
        parse_signing_key("k", "hmac-sha256:")
    with pytest.raises(ConfigError, match="no signing key"):
        sign_command(command(TICKET, "reduce_rollout", {"ai.rollout.percent": 1}), "k", None)
