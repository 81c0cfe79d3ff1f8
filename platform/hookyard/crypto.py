"""Encryption at rest for connection secrets, keyed from SECRET_KEY."""
from __future__ import annotations

import base64
import hashlib
import json

from cryptography.fernet import Fernet, InvalidToken


class SecretBox:
    def __init__(self, secret_key: str):
        # Fernet wants 32 url-safe base64 bytes; derive them so any SECRET_KEY string works.
        digest = hashlib.sha256(b"hookyard-secrets-v1:" + secret_key.encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(digest))

    def seal(self, values: dict) -> str:
        return self._fernet.encrypt(json.dumps(values, sort_keys=True).encode()).decode()

    def open(self, token: str | None) -> dict:
        if not token:
            return {}
        try:
            return json.loads(self._fernet.decrypt(token.encode()))
        except InvalidToken:
            raise RuntimeError("stored secrets cannot be decrypted: SECRET_KEY differs from the one they were saved with") from None
