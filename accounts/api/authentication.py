"""`Authorization: Api-Key <prefix.secret>` for machines; keys are per schema, hashed at rest."""

import hmac
from typing import Any

from rest_framework import authentication, exceptions

from accounts.models import ApiKey
from accounts.services import api_key_hash, api_key_touch


class ApiKeyPrincipal:
    """The 'user' of a request made with an API key."""

    is_authenticated = True
    is_active = True
    support_grant_id = None

    def __init__(self, key: ApiKey):
        self.key = key
        self.email = f"api-key:{key.prefix}"
        self.pk = None
        self.role = "api_key"
        self.customer_account_id = key.customer_account_id

    def __str__(self) -> str:
        return self.email


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Api-Key"

    def authenticate(self, request):  # type: ignore[override]
        header = authentication.get_authorization_header(request).decode(errors="replace")
        if not header.startswith(self.keyword + " "):
            return None
        secret = header[len(self.keyword) + 1 :].strip()
        prefix = secret.split(".", 1)[0]
        key = ApiKey.objects.filter(prefix=prefix).first()
        if key is None or not hmac.compare_digest(key.secret_hash, api_key_hash(secret)):
            raise exceptions.AuthenticationFailed("This API key is not valid on this host.")
        if key.revoked_at is not None:
            raise exceptions.AuthenticationFailed("This API key was revoked.")
        api_key_touch(key=key)
        return ApiKeyPrincipal(key), key

    def authenticate_header(self, request) -> str:  # type: ignore[override]
        return self.keyword


def request_actor(request: Any) -> Any:
    """Who a request acts as, for services and the audit log: an API key as such, a person as themselves."""
    from governance.services import Actor

    user = request.user
    if isinstance(user, ApiKeyPrincipal):
        return Actor(email=user.email, kind="api_key")
    return user
