"""Signing and verifying JSON documents: one scheme for commands, tickets and flag documents.

A signed document is a JSON object with a ``signature`` member::

    "signature": {"alg": "ed25519" | "hmac-sha256", "key_id": "...", "canon": "rfc8785",
                  "value": "<base64 of the signature>"}

``value`` signs the RFC 8785 bytes of the document without ``signature``
(:mod:`rollwatch.trust.canonical`). The verifier looks ``key_id`` up in its keyring
(:mod:`rollwatch.trust.keyring`), checks that the key's owner may sign this kind of
document, and returns the key, whose ``principal`` is the document's author.

Commands signed before the scheme existed carry no ``canon``; they verify only through
the ``legacy`` bytes a caller passes (the old canonical form), which consumers accept
for one release behind ``ROLLWATCH_LEGACY_COMMAND_SIGNATURES``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from typing import Any, Final

from rollwatch.trust.canonical import SIGNATURE_FIELD, canonical_bytes
from rollwatch.trust.errors import SignatureError
from rollwatch.trust.keyring import Keyring, Purpose, TrustedKey
from rollwatch.trust.keys import SigningKey, sign_bytes, verify_bytes

__all__ = ["CANON", "sign_document", "signature_for", "verify_document"]

CANON: Final = "rfc8785"


def signature_for(document: Mapping[str, Any], key: SigningKey) -> dict[str, str]:
    """The ``signature`` member ``key`` gives ``document``."""
    raw = sign_bytes(key, canonical_bytes(document))
    return {"alg": key.alg, "key_id": key.key_id, "canon": CANON, "value": base64.b64encode(raw).decode()}


def sign_document(document: Mapping[str, Any], key: SigningKey) -> dict[str, Any]:
    """A copy of ``document`` carrying a signature by ``key`` (any old signature dropped)."""
    body = {k: v for k, v in document.items() if k != SIGNATURE_FIELD}
    return {**body, SIGNATURE_FIELD: signature_for(body, key)}


def _field(signature: Mapping[str, Any], name: str) -> str:
    value = signature.get(name)
    if not isinstance(value, str) or not value:
        raise SignatureError("unsigned", f"signature.{name} is missing or not a string")
    return value


def verify_document(
    document: Mapping[str, Any],
    keyring: Keyring,
    purpose: Purpose,
    *,
    legacy: Callable[[], bytes] | None = None,
) -> TrustedKey:
    """The trusted key that signed ``document`` for ``purpose``; else :class:`SignatureError`."""
    signature = document.get(SIGNATURE_FIELD)
    if signature is None:
        raise SignatureError("unsigned", f"the {purpose[:-1]} carries no signature")
    if not isinstance(signature, Mapping):
        raise SignatureError("unsigned", "signature: expected an object")
    key_id = _field(signature, "key_id")
    alg = _field(signature, "alg")
    trusted = keyring.get(key_id)
    if trusted is None:
        raise SignatureError("unknown_key", f"key {key_id!r} is not trusted here")
    if trusted.key.alg != alg:
        raise SignatureError("wrong_alg", f"key {key_id!r} is {trusted.key.alg}, the signature claims {alg}")
    if purpose not in trusted.may_sign:
        raise SignatureError(
            "key_not_allowed", f"key {key_id!r} of {trusted.principal!r} may not sign {purpose} (keyring)"
        )
    try:
        raw = base64.b64decode(_field(signature, "value"), validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("bad_signature", "the signature is not valid base64") from None
    canon = signature.get("canon")
    if canon == CANON:
        data = canonical_bytes(document)
    elif canon is None and legacy is not None:
        data = legacy()
    elif canon is None:
        raise SignatureError("legacy_refused", f"the {purpose[:-1]} is signed in the old form (no canon), refused here")
    else:
        raise SignatureError("bad_signature", f"unknown canonical form {canon!r} (expected {CANON!r})")
    if not verify_bytes(trusted.key, data, raw):
        raise SignatureError("bad_signature", f"the signature does not match key {key_id!r}")
    return trusted
