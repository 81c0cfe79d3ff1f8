"""Standard Webhooks signatures (https://www.standardwebhooks.com): the secret's format and the signature header.

Signed with the standard library's hmac rather than the ``standardwebhooks`` package: it is four lines, and the
tests verify with that package, so a mistake here cannot hide behind the same code signing and checking."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

from marshmallow import ValidationError

PREFIX = "whsec_"
SECRET_BYTES = 32  # Standard Webhooks: between 24 and 64 random bytes
MIN_BYTES, MAX_BYTES = 24, 64


def new_secret() -> str:
    """A fresh connection secret, ``whsec_<base64 of 32 random bytes>``."""
    return PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def key_of(secret: str) -> bytes:
    """The HMAC key: the secret's base64 part, decoded. ValueError for anything else."""
    if not secret.startswith(PREFIX):
        raise ValueError(f"must start with {PREFIX}")
    try:
        key = base64.b64decode(secret[len(PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"must be {PREFIX} followed by base64") from None
    if not MIN_BYTES <= len(key) <= MAX_BYTES:
        raise ValueError(f"its base64 part must decode to {MIN_BYTES} to {MAX_BYTES} bytes, not {len(key)}")
    return key


def validate_secret(secret: str) -> None:
    """marshmallow validator for a pasted secret."""
    try:
        key_of(secret)
    except ValueError as exc:
        raise ValidationError(
            f"A Standard Webhooks secret ({PREFIX}<base64 of {MIN_BYTES}-{MAX_BYTES} random "
            f"bytes>) is expected: it {exc}. Leave it out to have Hookyard generate one."
        ) from None


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header: ``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key_of(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, msg_id, timestamp, body),
        "Content-Type": "application/json",
    }
