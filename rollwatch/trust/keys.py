"""Key material: parsing key text, signing and verifying bytes.

Key text, as it appears in settings and keyring files:

- ``hmac-sha256:SECRET`` (or a bare ``SECRET`` in settings): a shared HMAC-SHA256 secret.
  The HMAC key is the UTF-8 bytes of ``SECRET`` (the text after the prefix);
- ``ed25519:BASE64`` of the 32-byte private seed: signs (settings only);
- ``ed25519:BASE64`` of the 32-byte public key: verifies (keyring).

A key only verifies signatures of its own algorithm, so a public Ed25519 key can never be
used as an HMAC secret by a forger who claims ``alg: hmac-sha256``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat
from pydantic import SecretStr

from rollwatch.trust.errors import KeyringError

__all__ = [
    "ALGS",
    "Alg",
    "SigningKey",
    "VerifyKey",
    "generate_ed25519",
    "parse_signing_key",
    "parse_verify_key",
    "public_of",
    "sign_bytes",
    "verify_bytes",
]

Alg: TypeAlias = Literal["hmac-sha256", "ed25519"]
ALGS: tuple[Alg, ...] = ("hmac-sha256", "ed25519")
ED = "ed25519:"
HMAC = "hmac-sha256:"


@dataclass(frozen=True, slots=True)
class SigningKey:
    """Key material able to sign, and the principal that owns it; ``repr`` never shows the secret."""

    key_id: str
    alg: Alg
    material: bytes = field(repr=False)
    principal: str | None = None


@dataclass(frozen=True, slots=True)
class VerifyKey:
    """Key material able to verify: an HMAC secret or a raw Ed25519 public key."""

    alg: Alg
    material: bytes = field(repr=False)


def _secret_text(key: str | bytes | SecretStr) -> str | bytes:
    return key.get_secret_value() if isinstance(key, SecretStr) else key


def _b64_32(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise KeyringError(f"{what}: not valid base64") from None
    if len(raw) != 32:
        raise KeyringError(f"{what}: an Ed25519 key is 32 bytes, got {len(raw)}")
    return raw


def parse_signing_key(key_id: str, key: str | bytes | SecretStr, principal: str | None = None) -> SigningKey:
    """Signing key from its text (see the module docstring); bytes are an HMAC secret."""
    text = _secret_text(key)
    if isinstance(text, str) and text.startswith(ED):
        return SigningKey(key_id, "ed25519", _b64_32(text[len(ED) :], f"signing key {key_id!r}"), principal)
    material = text if isinstance(text, bytes) else text.removeprefix(HMAC).encode()
    if not material:
        raise KeyringError(f"signing key {key_id!r}: empty HMAC secret")
    return SigningKey(key_id, "hmac-sha256", material, principal)


def parse_verify_key(key: str | bytes | SecretStr, key_id: str = "?") -> VerifyKey:
    """Verification key from its text: ``ed25519:`` public key, else an HMAC secret."""
    text = _secret_text(key)
    if isinstance(text, str) and text.startswith(ED):
        return VerifyKey("ed25519", _b64_32(text[len(ED) :], f"verify key {key_id!r}"))
    signing = parse_signing_key(key_id, text)
    return VerifyKey(signing.alg, signing.material)


def public_of(key: SigningKey) -> VerifyKey:
    """The verifying half of ``key`` (the secret itself for HMAC)."""
    if key.alg == "hmac-sha256":
        return VerifyKey("hmac-sha256", key.material)
    public = Ed25519PrivateKey.from_private_bytes(key.material).public_key()
    return VerifyKey("ed25519", public.public_bytes(Encoding.Raw, PublicFormat.Raw))


def generate_ed25519() -> tuple[str, str]:
    """A fresh key pair as key text: (private ``ed25519:...``, public ``ed25519:...``)."""
    private = Ed25519PrivateKey.generate()
    seed = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return ED + base64.b64encode(seed).decode(), ED + base64.b64encode(public).decode()


def sign_bytes(key: SigningKey, data: bytes) -> bytes:
    if key.alg == "hmac-sha256":
        return hmac.new(key.material, data, hashlib.sha256).digest()
    return Ed25519PrivateKey.from_private_bytes(key.material).sign(data)


def verify_bytes(key: VerifyKey, data: bytes, signature: bytes) -> bool:
    if key.alg == "hmac-sha256":
        return hmac.compare_digest(signature, hmac.new(key.material, data, hashlib.sha256).digest())
    try:
        Ed25519PublicKey.from_public_bytes(key.material).verify(signature, data)
    except InvalidSignature:
        return False
    return True
