"""Signing and verifying rollback commands.

A rollback command makes flag stores and gateways change production behaviour, so a
consumer acts only on commands signed by a key it was told to trust. The signature
covers the canonical bytes of the *decoded model* (``model_dump(mode="json")`` without
``signature``, keys sorted, orjson), never the raw message bytes: two encodings of the
same command (``"segment": null`` or absent, other key order) verify alike, and
anything the model would normalise differently cannot slip past.

Key text, as it appears in settings:

- ``hmac-sha256:SECRET`` or a bare ``SECRET``: a shared HMAC-SHA256 secret (signs and verifies);
- ``ed25519:BASE64`` of the 32-byte private seed: signs;
- ``ed25519:BASE64`` of the 32-byte public key: verifies (in a keyring).

A key only verifies signatures of its own algorithm, so a public Ed25519 key can never
be used as an HMAC secret by a forger who claims ``alg: hmac-sha256``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat
from pydantic import SecretStr

from rollwatch.commands import RollbackCommand, Signature
from rollwatch.errors import ConfigError, RollwatchError
from rollwatch.settings import Settings

__all__ = [
    "Alg",
    "Keyring",
    "SignatureError",
    "SigningKey",
    "VerifyKey",
    "canonical_bytes",
    "generate_ed25519",
    "keyring_from_settings",
    "parse_signing_key",
    "parse_verify_key",
    "sign_command",
    "signing_key_from_settings",
    "verify_command",
]

Alg: TypeAlias = Literal["hmac-sha256", "ed25519"]
SignatureProblem: TypeAlias = Literal["unsigned", "unknown_key", "wrong_alg", "bad_signature"]
_ED = "ed25519:"
_HMAC = "hmac-sha256:"


class SignatureError(RollwatchError):
    """A command whose signature does not prove it came from a trusted key.

    ``problem`` is a stable code for audits and acks; the message says it in words.
    """

    def __init__(self, problem: SignatureProblem, message: str) -> None:
        self.problem = problem
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class SigningKey:
    """Key material able to sign; ``repr`` never shows the secret."""

    key_id: str
    alg: Alg
    material: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class VerifyKey:
    """Key material able to verify: an HMAC secret or a raw Ed25519 public key."""

    alg: Alg
    material: bytes = field(repr=False)


Keyring: TypeAlias = Mapping[str, VerifyKey]
"""``key_id`` -> key; the only keys a consumer trusts."""


def _secret_text(key: str | bytes | SecretStr) -> str | bytes:
    return key.get_secret_value() if isinstance(key, SecretStr) else key


def _b64_32(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{what}: not valid base64") from None
    if len(raw) != 32:
        raise ConfigError(f"{what}: an Ed25519 key is 32 bytes, got {len(raw)}")
    return raw


def parse_signing_key(key_id: str, key: str | bytes | SecretStr) -> SigningKey:
    """Signing key from its settings text (see the module docstring); bytes are an HMAC secret."""
    text = _secret_text(key)
    if isinstance(text, str) and text.startswith(_ED):
        return SigningKey(key_id, "ed25519", _b64_32(text[len(_ED) :], f"signing key {key_id!r}"))
    material = text if isinstance(text, bytes) else text.removeprefix(_HMAC).encode()
    if not material:
        raise ConfigError(f"signing key {key_id!r}: empty HMAC secret")
    return SigningKey(key_id, "hmac-sha256", material)


def parse_verify_key(key: str | bytes | SecretStr, key_id: str = "?") -> VerifyKey:
    """Verification key from its settings text: ``ed25519:`` public key, else an HMAC secret."""
    text = _secret_text(key)
    if isinstance(text, str) and text.startswith(_ED):
        return VerifyKey("ed25519", _b64_32(text[len(_ED) :], f"verify key {key_id!r}"))
    signing = parse_signing_key(key_id, text)
    return VerifyKey(signing.alg, signing.material)


def _public_of(key: SigningKey) -> VerifyKey:
    if key.alg == "hmac-sha256":
        return VerifyKey("hmac-sha256", key.material)
    public = Ed25519PrivateKey.from_private_bytes(key.material).public_key()
    return VerifyKey("ed25519", public.public_bytes(Encoding.Raw, PublicFormat.Raw))


def signing_key_from_settings(settings: Settings) -> SigningKey | None:
    """The key this process signs with (``signing_key_id``/``signing_key``), if any."""
    if settings.signing_key is None:
        return None
    return parse_signing_key(settings.signing_key_id, settings.signing_key)


def keyring_from_settings(settings: Settings) -> dict[str, VerifyKey]:
    """``verify_keys`` plus the verifying half of this process's own signing key.

    Including the own key lets a single shared HMAC secret configure a small
    deployment; ``verify_keys`` wins on a clash so rotation stays explicit.
    """
    keys: dict[str, VerifyKey] = {}
    own = signing_key_from_settings(settings)
    if own is not None:
        keys[own.key_id] = _public_of(own)
    for key_id, text in settings.verify_keys.items():
        keys[key_id] = parse_verify_key(text, key_id)
    return keys


def generate_ed25519() -> tuple[str, str]:
    """A fresh key pair as settings text: (private ``ed25519:...``, public ``ed25519:...``)."""
    private = Ed25519PrivateKey.generate()
    seed = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return _ED + base64.b64encode(seed).decode(), _ED + base64.b64encode(public).decode()


def canonical_bytes(command: RollbackCommand) -> bytes:
    """The bytes a signature covers: the JSON form of the model without ``signature``, keys sorted."""
    body = command.model_dump(mode="json")
    body.pop("signature", None)
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


def _mac(secret: bytes, data: bytes) -> bytes:
    return hmac.new(secret, data, hashlib.sha256).digest()


def sign_command(
    command: RollbackCommand, key_id: str | None = None, key: str | bytes | SecretStr | SigningKey | None = None
) -> RollbackCommand:
    """A copy of ``command`` carrying a signature by ``key`` (a :class:`SigningKey` or its text).

    Raises :class:`ConfigError` when there is no key: an unsigned command would be
    refused by every consumer, so failing at the producer is the useful place.
    """
    if isinstance(key, SigningKey):
        signing = key
    elif key is None or key_id is None:
        raise ConfigError("no signing key: set ROLLWATCH_SIGNING_KEY (and ROLLWATCH_SIGNING_KEY_ID)")
    else:
        signing = parse_signing_key(key_id, key)
    data = canonical_bytes(command)
    if signing.alg == "hmac-sha256":
        raw = _mac(signing.material, data)
    else:
        raw = Ed25519PrivateKey.from_private_bytes(signing.material).sign(data)
    signature = Signature(alg=signing.alg, key_id=signing.key_id, value=base64.b64encode(raw).decode())
    return command.model_copy(update={"signature": signature})


def verify_command(command: RollbackCommand, keys: Keyring) -> None:
    """Return if ``command`` is signed by a key in ``keys``; else raise :class:`SignatureError`."""
    signature = command.signature
    if signature is None:
        raise SignatureError("unsigned", "the command carries no signature")
    key = keys.get(signature.key_id)
    if key is None:
        raise SignatureError("unknown_key", f"key {signature.key_id!r} is not trusted here")
    if key.alg != signature.alg:
        raise SignatureError("wrong_alg", f"key {signature.key_id!r} is {key.alg}, the command claims {signature.alg}")
    try:
        raw = base64.b64decode(signature.value, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("bad_signature", "the signature is not valid base64") from None
    data = canonical_bytes(command)
    if key.alg == "hmac-sha256":
        if not hmac.compare_digest(raw, _mac(key.material, data)):
            raise SignatureError("bad_signature", f"the signature does not match key {signature.key_id!r}")
        return
    try:
        Ed25519PublicKey.from_public_bytes(key.material).verify(raw, data)
    except InvalidSignature:
        raise SignatureError("bad_signature", f"the signature does not match key {signature.key_id!r}") from None
