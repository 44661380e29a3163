"""Secrets at rest (MFA seeds now, connector credentials later), encrypted with keys that are not SECRET_KEY.

MultiFernet: the first key of BATON_ENCRYPTION_KEYS encrypts, every key decrypts, so keys rotate
by putting a new one first. A wrong key raises; ciphertext is never handed back as plaintext.
"""

from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class SecretUnreadable(Exception):
    """No configured key opens this secret."""


@cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key) for key in keys])


def secret_encrypt(plaintext: str) -> str:
    return _fernet(tuple(settings.BATON_ENCRYPTION_KEYS)).encrypt(plaintext.encode()).decode()


def secret_decrypt(token: str) -> str:
    try:
        return _fernet(tuple(settings.BATON_ENCRYPTION_KEYS)).decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise SecretUnreadable("No key in BATON_ENCRYPTION_KEYS decrypts this secret.") from exc


def secret_rotate(token: str) -> str:
    """Re-encrypt under the first key."""
    return _fernet(tuple(settings.BATON_ENCRYPTION_KEYS)).rotate(token.encode()).decode()
