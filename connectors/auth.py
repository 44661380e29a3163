"""A connection's auth method as request headers, and its secrets sealed at rest.

Shared by "Test connection" and the outbound calls: `request_headers` turns a connection into the
headers a request needs, `authorized_send` sends one and, for OAuth2, fetches a fresh token and
tries once more when the partner answers 401 (a token revoked before its expiry).

Auth methods:
- API key: the key in the configured header (`X-Api-Key` by default).
- Basic: `Authorization: Basic base64(user:password)`.
- OAuth2 client credentials: a token from the token URL (client id and secret in HTTP Basic, or in
  the form body when the provider wants them there), cached per connection until shortly before
  it expires – encrypted, in the schema's cache – and sent as `Authorization: Bearer …`.
- HMAC: `<header>: t=<unix time>,<algorithm>=<hex HMAC of "<t>." + body>`, so a partner can both
  check the body and refuse stale replays.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import ssl
import time
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

import requests
from django.core.cache import cache
from urllib3.exceptions import NameResolutionError

from config.encryption import secret_decrypt, secret_encrypt
from connectors.models import AuthMethod
from connectors.safety import HostUnresolved, OutboundRefused, url_check
from connectors.signatures import SigningSecret

if TYPE_CHECKING:
    from connectors.models import Connection

# The non-secret and the secret fields of each auth method.
AUTH_SETTINGS: dict[str, tuple[str, ...]] = {
    AuthMethod.NONE: (),
    AuthMethod.API_KEY: ("header",),
    AuthMethod.BASIC: ("username",),
    AuthMethod.OAUTH2: ("token_url", "client_id", "scope", "audience", "client_auth"),
    AuthMethod.HMAC: ("header", "algorithm"),
}
AUTH_SECRETS: dict[str, tuple[str, ...]] = {
    AuthMethod.NONE: (),
    AuthMethod.API_KEY: ("key",),
    AuthMethod.BASIC: ("password",),
    AuthMethod.OAUTH2: ("client_secret",),
    AuthMethod.HMAC: ("secret",),
}
HMAC_ALGORITHMS = ("sha256", "sha512", "sha1")
CLIENT_AUTH = ("basic", "body")  # where the client id and secret go in the token request
DEFAULT_API_KEY_HEADER = "X-Api-Key"
DEFAULT_HMAC_HEADER = "X-Baton-Signature"
MASK = "••••"
# A token is used until this long before it expires (or a tenth of its life, if shorter).
TOKEN_EXPIRY_MARGIN_SECONDS = 60
TOKEN_DEFAULT_LIFETIME_SECONDS = 300  # when the token endpoint does not say


def secret_mask(secret: str) -> str:
    """What may be shown of a secret: its last four characters, if it is long enough to spare them."""
    return MASK + secret[-4:] if len(secret) >= 12 else MASK


def credentials_seal(secrets: dict[str, str]) -> str:
    return secret_encrypt(json.dumps(secrets, sort_keys=True)) if secrets else ""


def signing_secrets_seal(secrets: list[SigningSecret]) -> str:
    """Webhook signing secrets (the current one first, a previous one with its expiry) as one token."""
    data = [{"value": item.value, "expires_at": item.expires_at.isoformat() if item.expires_at else None} for item in secrets]
    return secret_encrypt(json.dumps(data)) if data else ""


def signing_secrets_open(token: str) -> list[SigningSecret]:
    """`signing_secrets_seal` undone; `SecretUnreadable` when no configured key opens it."""
    if not token:
        return []
    return [
        SigningSecret(item["value"], datetime.fromisoformat(item["expires_at"]) if item.get("expires_at") else None)
        for item in json.loads(secret_decrypt(token))
    ]


def connection_secrets(connection: Connection) -> dict[str, str]:
    """The decrypted secrets; `SecretUnreadable` when no configured key opens them."""
    if not connection.credentials:
        return {}
    opened: dict[str, str] = json.loads(secret_decrypt(connection.credentials))
    return opened


def secrets_redacted(text: str, secrets: dict[str, str]) -> str:
    """`text` with every secret replaced by its mask: for messages built from a partner's answer,
    which might echo what it was sent."""
    for secret in secrets.values():
        if secret:
            text = text.replace(secret, secret_mask(secret))
    return text


# ---------- describing failures ------------------------------------------------------------------


def _causes(error: BaseException) -> Iterator[BaseException]:
    """The error and everything that led to it (requests wraps urllib3, which wraps the socket's)."""
    seen: set[int] = set()
    pending: list[BaseException] = [error]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None), *current.args]
        pending.extend(item for item in linked if isinstance(item, BaseException))


def failure_text(error: BaseException, *, connect_timeout: float, read_timeout: float) -> str:
    """A network failure in words: what a person can act on, not a stack of wrapped exceptions."""
    causes = list(_causes(error))
    for cause in causes:
        if isinstance(cause, OutboundRefused):
            return f"Refused: {cause}"
        if isinstance(cause, HostUnresolved):
            return f"Could not connect: {cause}"
        if isinstance(cause, NameResolutionError):
            return f"Could not connect: the host name {cause.conn.host} does not resolve"
    if isinstance(error, requests.ConnectTimeout):
        return f"Timed out after {connect_timeout:g} s waiting to connect"
    if isinstance(error, requests.Timeout):
        return f"Timed out after {read_timeout:g} s waiting for an answer"
    for cause in causes:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS certificate not trusted: {cause.verify_message or cause.reason}"
    for cause in causes:
        if isinstance(cause, ssl.SSLError):
            return f"TLS handshake failed: {cause.reason or cause}"
        if isinstance(cause, ConnectionRefusedError):
            return "Could not connect: connection refused"
        if isinstance(cause, ConnectionResetError):
            return "Could not connect: the connection was reset"
        if isinstance(cause, TimeoutError):
            return f"Timed out after {connect_timeout:g} s waiting to connect"
    return f"Could not connect: {type(error).__name__}"


# ---------- OAuth2 client credentials ---------------------------------------------------------------


class TokenError(Exception):
    """No token: the message says what the token endpoint did."""


class TokenRefused(TokenError):
    """The token endpoint answered and refused."""


class TokenUnavailable(TokenError):
    """The token endpoint could not be reached or gave no usable answer."""


def _token_cache_key(connection: Connection) -> str:
    """Per connection and per credential: a changed secret or token URL never reads an old token."""
    settings = connection.auth_settings
    material = json.dumps([settings.get(name, "") for name in AUTH_SETTINGS[AuthMethod.OAUTH2]]) + connection.credentials
    return f"connectors:oauth2:{connection.pk}:{hashlib.sha256(material.encode()).hexdigest()[:16]}"


def oauth2_token_forget(connection: Connection) -> None:
    cache.delete(_token_cache_key(connection))


def _token_answer(response: requests.Response) -> tuple[str, int]:
    token_url = response.request.url
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    if response.status_code >= 400:
        error = str(body.get("error", "")) if isinstance(body, dict) else ""
        description = str(body.get("error_description", ""))[:200] if isinstance(body, dict) else ""
        said = f"HTTP {response.status_code}" + (f" {error}" if error else "") + (f" ({description})" if description else "")
        if response.status_code >= 500:
            raise TokenUnavailable(f"The token endpoint failed: {said}")
        if response.status_code in (401, 403) or error in ("invalid_client", "unauthorized_client"):
            raise TokenRefused(f"The token endpoint refused the client credentials: {said}")
        raise TokenRefused(f"The token endpoint refused the request: {said}")
    if not isinstance(body, dict) or not isinstance(body.get("access_token"), str) or not body["access_token"]:
        raise TokenUnavailable(f"The token endpoint {token_url} answered HTTP {response.status_code} without an access_token")
    token_type = str(body.get("token_type", "bearer"))
    if token_type.lower() != "bearer":
        raise TokenUnavailable(f"The token endpoint gave a '{token_type}' token; only bearer tokens can be sent")
    try:
        lifetime = int(body.get("expires_in", TOKEN_DEFAULT_LIFETIME_SECONDS))
    except (TypeError, ValueError):
        lifetime = TOKEN_DEFAULT_LIFETIME_SECONDS
    return body["access_token"], lifetime


def oauth2_token(connection: Connection, *, session: requests.Session, refresh: bool = False) -> str:
    """The connection's access token: the cached one, or a new one from its token URL."""
    key = _token_cache_key(connection)
    if not refresh and (cached := cache.get(key)):
        return secret_decrypt(cached)  # the cache key follows the sealed credentials, which a key rotation re-seals
    settings = connection.auth_settings
    token_url = settings.get("token_url", "")
    secret = connection_secrets(connection).get("client_secret", "")
    form = {"grant_type": "client_credentials"}
    form |= {name: settings[name] for name in ("scope", "audience") if settings.get(name)}
    auth: tuple[str, str] | None = (settings.get("client_id", ""), secret)
    if settings.get("client_auth") == "body":
        form |= {"client_id": settings.get("client_id", ""), "client_secret": secret}
        auth = None
    try:
        url_check(token_url)
        response = session.post(
            token_url,
            data=form,
            auth=auth,
            headers={"Accept": "application/json"},
            timeout=(connection.connect_timeout, connection.read_timeout),
            allow_redirects=False,
        )
    except (OutboundRefused, HostUnresolved, requests.RequestException) as error:
        said = failure_text(error, connect_timeout=connection.connect_timeout, read_timeout=connection.read_timeout)
        raise TokenUnavailable(f"Could not get a token from {token_url}: {said[0].lower()}{said[1:]}") from error
    token, lifetime = _token_answer(response)
    keep = int(lifetime - min(TOKEN_EXPIRY_MARGIN_SECONDS, lifetime / 10))
    if keep >= 1:
        cache.set(key, secret_encrypt(token), keep)
    return token


# ---------- headers and sending ---------------------------------------------------------------------


def _hmac_signature(secret: str, algorithm: str, body: bytes, now: float) -> str:
    stamp = str(int(now))
    digest = hmac.new(secret.encode(), stamp.encode() + b"." + body, algorithm).hexdigest()
    return f"t={stamp},{algorithm}={digest}"


def request_headers(connection: Connection, *, session: requests.Session, body: bytes = b"", refresh: bool = False) -> dict[str, str]:
    """The headers that authenticate a request with `body` to the connection's partner.

    Raises `SecretUnreadable` when the stored secrets cannot be decrypted and `TokenError` when an
    OAuth2 token cannot be had."""
    method, settings = connection.auth_method, connection.auth_settings
    if method == AuthMethod.NONE:
        return {}
    if method == AuthMethod.OAUTH2:
        return {"Authorization": f"Bearer {oauth2_token(connection, session=session, refresh=refresh)}"}
    secrets = connection_secrets(connection)
    if method == AuthMethod.API_KEY:
        return {settings.get("header") or DEFAULT_API_KEY_HEADER: secrets.get("key", "")}
    if method == AuthMethod.BASIC:
        pair = f"{settings.get('username', '')}:{secrets.get('password', '')}".encode()
        return {"Authorization": "Basic " + base64.b64encode(pair).decode()}
    if method == AuthMethod.HMAC:
        algorithm = settings.get("algorithm") or HMAC_ALGORITHMS[0]
        return {settings.get("header") or DEFAULT_HMAC_HEADER: _hmac_signature(secrets.get("secret", ""), algorithm, body, time.time())}
    raise ValueError(f"unknown auth method {method!r}")


def authorized_send(
    connection: Connection,
    *,
    session: requests.Session,
    method: str,
    url: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> requests.Response:
    """Send one request with the connection's auth, never following redirects; with OAuth2, a 401
    gets one more try with a fresh token. The answer is streamed: read what you need, then close it."""

    def send(refresh: bool) -> requests.Response:
        sent = {**(headers or {}), **request_headers(connection, session=session, body=body, refresh=refresh)}
        return session.request(
            method,
            url,
            data=body or None,
            headers=sent,
            timeout=(connection.connect_timeout, connection.read_timeout),
            allow_redirects=False,
            stream=True,
        )

    response = send(refresh=False)
    if response.status_code == 401 and connection.auth_method == AuthMethod.OAUTH2:
        response.close()
        oauth2_token_forget(connection)
        response = send(refresh=True)
    return response
