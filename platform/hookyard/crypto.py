"""Encryption at rest for connection secrets, keyed from SECRET_KEY (and HOOKYARD_OLD_SECRET_KEYS while rotating)."""

from __future__ import annotations

import base64
import hashlib
import json

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

UNREADABLE = (
    "stored secrets cannot be decrypted with SECRET_KEY or any key in HOOKYARD_OLD_SECRET_KEYS: "
    "they were saved under another key"
)


def _fernet(secret_key: str) -> Fernet:
    # Fernet wants 32 url-safe base64 bytes; derive them so any SECRET_KEY string works.
    digest = hashlib.sha256(b"hookyard-secrets-v1:" + secret_key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


class SecretBox:
    """Seals under the current key; opens with the current key or any old one, so a key can be rotated
    while processes keep running (see `hookyard keys rotate`)."""

    def __init__(self, secret_key: str, old_keys: tuple[str, ...] | list[str] = ()):
        self._current = _fernet(secret_key)
        self._any = MultiFernet([self._current, *map(_fernet, old_keys)])

    def seal(self, values: dict) -> str:
        return self._current.encrypt(json.dumps(values, sort_keys=True).encode()).decode()

    def open(self, token: str | None) -> dict:
        if not token:
            return {}
        try:
            return json.loads(self._any.decrypt(token.encode()))
        except InvalidToken:
            raise RuntimeError(UNREADABLE) from None

    def rotate(self, token: str) -> str:
        """The token re-encrypted under the current key; the same token when it already is, so rotating
        twice writes nothing the second time."""
        try:
            self._current.decrypt(token.encode())
            return token
        except InvalidToken:
            pass
        try:
            return self._any.rotate(token.encode()).decode()
        except InvalidToken:
            raise RuntimeError(UNREADABLE) from None
