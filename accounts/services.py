"""Every change to users, roles and API keys. Runs in whichever schema the caller is on."""

import hashlib
import secrets
from typing import Any

from allauth.account.forms import default_token_generator
from allauth.account.utils import user_pk_to_url_str
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from accounts.models import MSP_ROLES, TENANT_STAFF_ROLES, ApiKey, Role, User
from governance.services import audit_record
from tenants.db import connection
from tenants.selectors import recipient_language


class AccountError(Exception):
    def __init__(self, message: str, *, field: str = ""):
        super().__init__(message)
        self.message = message
        self.field = field


def _roles_allowed_here() -> frozenset[str]:
    """MSP roles exist only in the public schema, tenant roles only in tenant schemas."""
    if connection.schema_name == "public":
        return MSP_ROLES
    return TENANT_STAFF_ROLES | {Role.CUSTOMER}


def _check_role(role: str, customer_account_id: int | None) -> None:
    if role not in _roles_allowed_here():
        where = "the MSP console" if connection.schema_name == "public" else "a tenant"
        raise AccountError(f"Role {role!r} does not exist in {where}.", field="role")
    if role == Role.CUSTOMER and customer_account_id is None:
        raise AccountError("A customer user must belong to a customer account.", field="customer_account")


def user_create(
    *, email: str, role: str, actor: Any, password: str | None = None, full_name: str = "", customer_account_id: int | None = None
) -> User:
    _check_role(role, customer_account_id)
    email = User.objects.normalize_email(email).lower()
    if User.objects.filter(email__iexact=email).exists():
        raise AccountError(f"{email} already has an account here.", field="email")
    with transaction.atomic():
        user = User(email=email, role=role, full_name=full_name, customer_account_id=customer_account_id)
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.save()
        audit_record(actor=actor, action="user.created", target=user, data={"role": role})
    return user


def user_invite(*, email: str, role: str, actor: Any, site: Any, full_name: str = "", customer_account_id: int | None = None) -> User:
    """Create the user without a password and mail them a link to choose one, in the site's brand."""
    with transaction.atomic():
        user = user_create(email=email, role=role, actor=actor, full_name=full_name, customer_account_id=customer_account_id)
        user.invited_at = timezone.now()
        user.save(update_fields=["invited_at"])
        audit_record(actor=actor, action="user.invited", target=user, data={"role": role})
        link = site.base_url + reverse(
            "account_reset_password_from_key",
            kwargs={"uidb36": user_pk_to_url_str(user), "key": default_token_generator.make_token(user)},
        )
        # The invitee has chosen no language yet: the workspace's default (the console's: English).
        with translation.override(recipient_language(chosen="", tenant=getattr(connection, "tenant", None))):
            context = {
                "site": site,
                "user": user,
                "link": link,
                "role_label": _(Role(role).label),
                "admin_mfa": role == Role.TENANT_ADMIN,
                "inviter": getattr(actor, "display_name", ""),
            }
            message = EmailMultiAlternatives(
                subject=_("You're invited to %(product)s") % {"product": site.product_name},
                body=render_to_string("email/invitation.txt", context),
                from_email=site.from_email,
                to=[user.email],
            )
            message.attach_alternative(render_to_string("email/invitation.html", context), "text/html")
        transaction.on_commit(message.send)
    return user


def _is_self(user: User, actor: Any) -> bool:
    return isinstance(actor, User) and actor.pk == user.pk


def user_role_change(*, user: User, role: str, actor: Any, reason: str = "") -> User:
    if _is_self(user, actor):
        raise AccountError("You cannot change your own role: ask another admin.", field="role")
    if user.role == Role.CUSTOMER and role != Role.CUSTOMER:
        raise AccountError("A customer user keeps the customer role: invite a staff account instead.", field="role")
    _check_role(role, user.customer_account_id)
    with transaction.atomic():
        before = user.role
        user.role = role
        user.save(update_fields=["role"])
        audit_record(actor=actor, action="user.role_changed", target=user, reason=reason, data={"from": before, "to": role})
    return user


def user_deactivate(*, user: User, actor: Any, reason: str = "") -> User:
    if _is_self(user, actor):
        raise AccountError("You cannot deactivate yourself: ask another admin.", field="user")
    with transaction.atomic():
        user.is_active = False
        user.save(update_fields=["is_active"])
        audit_record(actor=actor, action="user.deactivated", target=user, reason=reason)
    return user


def api_key_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def api_key_create(*, name: str, scopes: list[str], actor: Any, customer_account_id: int | None = None) -> tuple[ApiKey, str]:
    """Return the key and its full secret; the secret is shown once and only its hash is kept."""
    if not name.strip():
        raise AccountError("Give the key a name that says what uses it.", field="name")
    prefix = "bk_" + secrets.token_hex(4)
    secret = f"{prefix}.{secrets.token_urlsafe(32)}"
    with transaction.atomic():
        key = ApiKey.objects.create(
            name=name.strip(),
            prefix=prefix,
            secret_hash=api_key_hash(secret),
            scopes=sorted(set(scopes)),
            customer_account_id=customer_account_id,
            created_by=actor if isinstance(actor, User) else None,
        )
        audit_record(actor=actor, action="api_key.created", target=key, data={"scopes": key.scopes})
    return key, secret


def api_key_revoke(*, key: ApiKey, actor: Any, reason: str = "") -> ApiKey:
    with transaction.atomic():
        if key.revoked_at is None:
            key.revoked_at = timezone.now()
            key.save(update_fields=["revoked_at"])
            audit_record(actor=actor, action="api_key.revoked", target=key, reason=reason)
    return key


def api_key_touch(*, key: ApiKey) -> None:
    """Record use at most once a minute, so the API's hot path rarely writes."""
    now = timezone.now()
    if key.last_used_at is None or (now - key.last_used_at).total_seconds() > 60:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)


def support_user_for_grant(*, grant_id: int, staff_email: str, actor: Any) -> User:
    """The tenant-side identity of MSP staff under a support grant; it cannot sign in by password."""
    with transaction.atomic():
        user, created = User.objects.get_or_create(
            email=f"support+{grant_id}.{staff_email}".lower()[:254],
            defaults={"role": Role.MSP_SUPPORT, "support_grant_id": grant_id, "full_name": f"{staff_email} (MSP support)"},
        )
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
        audit_record(actor=actor, action="support_access.session_started", target=user, data={"grant": grant_id, "staff": staff_email})
    return user


def user_mfa_totp_activate(*, user: User, secret: str, actor: Any) -> None:
    """Register a TOTP authenticator for the user (its seed is stored encrypted by our MFA adapter)."""
    from allauth.mfa.models import Authenticator
    from allauth.mfa.totp.internal.auth import TOTP

    with transaction.atomic():
        if Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists():
            return
        TOTP.activate(user, secret)
        audit_record(actor=actor, action="user.mfa_activated", target=user, data={"type": "totp"})


def mfa_secrets_rotate() -> int:
    """Re-encrypt every TOTP seed in the current schema under the first encryption key."""
    from allauth.mfa.models import Authenticator

    from config.encryption import secret_rotate

    rotated = 0
    with transaction.atomic():
        for authenticator in Authenticator.objects.select_for_update().filter(type=Authenticator.Type.TOTP):
            authenticator.data = {**authenticator.data, "secret": secret_rotate(authenticator.data["secret"])}
            authenticator.save(update_fields=["data"])
            rotated += 1
    return rotated


def user_language_set(*, user: User, language: str, actor: Any) -> User:
    """Keep the person's language for every device they sign in on; blank follows their browser."""
    from django.conf import settings

    if language and language not in dict(settings.LANGUAGES):
        raise AccountError(f"Language {language!r} is not offered here.", field="language")
    if user.language != language:
        with transaction.atomic():
            before = user.language
            user.language = language
            user.save(update_fields=["language"])
            audit_record(actor=actor, action="user.language_changed", target=user, data={"from": before, "to": language})
    return user
