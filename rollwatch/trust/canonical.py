"""The bytes a signature covers: RFC 8785 (JSON Canonicalization Scheme) of the document.

Every signed document (command, release ticket, flag document) is a JSON object with a
``signature`` member. The signature covers the JCS serialization of that object *as it
was received*, with the ``signature`` member removed. JCS is a published standard with
implementations in Go, Java, Node and Rust, so a gateway in any language can verify what
rollwatch signs without reproducing Python's float formatting; the ``rfc8785`` package
(Trail of Bits) is the maintained Python implementation.

JCS admits only numbers exactly representable as IEEE-754 doubles and integers within
±2^53; a document outside that range cannot be signed or verified and is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import rfc8785

from rollwatch.trust.errors import SignatureError

__all__ = ["SIGNATURE_FIELD", "canonical_bytes"]

SIGNATURE_FIELD = "signature"


def canonical_bytes(document: Mapping[str, Any]) -> bytes:
    """JCS of ``document`` without its ``signature`` member."""
    body = {key: value for key, value in document.items() if key != SIGNATURE_FIELD}
    try:
        return rfc8785.dumps(body)
    except (rfc8785.CanonicalizationError, ValueError, TypeError) as exc:
        raise SignatureError("not_canonical", f"the document has no RFC 8785 form: {exc}") from None
