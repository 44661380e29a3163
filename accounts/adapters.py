"""allauth adapters: invitation-only sign-up, mail in the host's brand, encrypted MFA seeds."""

from allauth.account.adapter import DefaultAccountAdapter
from allauth.mfa.adapter import DefaultMFAAdapter
from django.conf import settings
from django.utils import translation

from config.encryption import secret_decrypt, secret_encrypt
from tenants.selectors import site_current


class BatonAccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request) -> bool:  # type: ignore[override]
        return False  # people join by invitation from an admin

    def is_reauthentication_required(self, *, app: str, **kwargs) -> bool:
        """Enrolling a first authenticator right after signing in needs no second password prompt;
        changing or removing an existing one still does."""
        if app == "mfa" and self.request is not None and self.request.user.is_authenticated:
            from allauth.mfa.models import Authenticator

            if not Authenticator.objects.filter(user=self.request.user).exists():
                return False
        return super().is_reauthentication_required(app=app, **kwargs)

    def get_from_email(self) -> str:
        return site_current().from_email

    def send_mail(self, template_prefix, email, context):  # type: ignore[override]
        """In the recipient's language when they chose one; else the page's (UserLanguageMiddleware:
        the visitor's pick, the workspace's default or their browser)."""
        context = {**context, "site": site_current()}
        chosen = getattr(context.get("user"), "language", "")
        with translation.override(chosen if chosen in dict(settings.LANGUAGES) else translation.get_language()):
            return super().send_mail(template_prefix, email, context)


class BatonMFAAdapter(DefaultMFAAdapter):
    def encrypt(self, text: str) -> str:
        return secret_encrypt(text)

    def decrypt(self, encrypted_text: str) -> str:
        return secret_decrypt(encrypted_text)

    def get_totp_issuer(self) -> str:
        return site_current().product_name

    def can_delete_authenticator(self, authenticator) -> bool:
        """People whose role requires MFA cannot switch it off; they can only replace it."""
        return not authenticator.user.requires_mfa
