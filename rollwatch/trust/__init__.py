"""Trust: who may sign what, and the one signing scheme for everything that changes flags.

Commands, release tickets and flag documents are all JSON objects signed the same way
(RFC 8785 canonical bytes, HMAC-SHA256 or Ed25519; :mod:`~rollwatch.trust.signatures`),
by keys whose owners and rights a keyring lists (:mod:`~rollwatch.trust.keyring`).
``docs/trust-model.md`` explains the principals and what each consumer verifies.
"""

from rollwatch.trust.canonical import canonical_bytes
from rollwatch.trust.errors import KeyringError, SignatureError, SignatureProblem, TrustError
from rollwatch.trust.keyring import (
    KEYRING_FORMAT,
    PURPOSES,
    Keyring,
    Purpose,
    TrustedKey,
    keyring_entry,
    keyring_from_settings,
    load_keyring,
    signing_key_from_settings,
)
from rollwatch.trust.keys import (
    Alg,
    SigningKey,
    VerifyKey,
    generate_ed25519,
    parse_signing_key,
    parse_verify_key,
    public_of,
)
from rollwatch.trust.signatures import CANON, sign_document, signature_for, verify_document

__all__ = [
    "CANON",
    "KEYRING_FORMAT",
    "PURPOSES",
    "Alg",
    "Keyring",
    "KeyringError",
    "Purpose",
    "SignatureError",
    "SignatureProblem",
    "SigningKey",
    "TrustError",
    "TrustedKey",
    "VerifyKey",
    "canonical_bytes",
    "generate_ed25519",
    "keyring_entry",
    "keyring_from_settings",
    "load_keyring",
    "parse_signing_key",
    "parse_verify_key",
    "public_of",
    "sign_document",
    "signature_for",
    "signing_key_from_settings",
    "verify_document",
]
