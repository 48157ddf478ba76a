"""Secrets at rest: MultiFernet encryption as SQLAlchemy column types.

Values are encrypted with the newest key and decrypted with any configured key, so keys can be
rotated (`synchronizer rotate-keys`) without downtime. The key ring is process-wide because
column types are created at import time, long before the settings are known.
"""

from __future__ import annotations

import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import Text
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class SecretsNotConfigured(RuntimeError):
    """Raised when an encrypted column is used before `configure_keys` was called."""


class UndecryptableSecret(RuntimeError):
    """Raised when a stored value was encrypted with a key that is no longer configured."""


class KeyRing:
    """The configured encryption keys, newest first."""

    def __init__(self) -> None:
        self._fernet: MultiFernet | None = None

    def configure(self, keys: list[str]) -> None:
        if not keys:
            raise ValueError("at least one encryption key is needed")
        self._fernet = MultiFernet([Fernet(k.encode("ascii")) for k in keys])

    @property
    def fernet(self) -> MultiFernet:
        if self._fernet is None:
            raise SecretsNotConfigured("encryption keys are not configured")
        return self._fernet

    def encrypt(self, plaintext: str) -> str:
        return self.fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            return self.fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except InvalidToken as exc:
            raise UndecryptableSecret(
                "a stored secret cannot be decrypted with the configured ENCRYPTION_KEYS "
                "(was a key removed before `synchronizer rotate-keys` ran?)"
            ) from exc

    def rotate(self, token: str) -> str:
        """Re-encrypt a token with the newest key (it may have been made with any key)."""
        try:
            return self.fernet.rotate(token.encode("ascii")).decode("ascii")
        except InvalidToken as exc:
            raise UndecryptableSecret("a stored secret cannot be decrypted for rotation") from exc


key_ring = KeyRing()


def configure_keys(keys: list[str]) -> None:
    key_ring.configure(keys)


def generate_key() -> str:
    return Fernet.generate_key().decode("ascii")


def is_valid_key(key: str) -> bool:
    try:
        Fernet(key.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        return False
    return True


class EncryptedText(TypeDecorator[str]):
    """A string stored as a Fernet token; only ciphertext reaches the database."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return key_ring.encrypt(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return key_ring.decrypt(value)


class EncryptedJSON(TypeDecorator[Any]):
    """A JSON document (token sets, credentials) stored as one Fernet token."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return key_ring.encrypt(json.dumps(value, sort_keys=True))

    def process_result_value(self, value: str | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        return json.loads(key_ring.decrypt(value))
