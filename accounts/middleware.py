"""Request guards for signed-in people: their chosen language, support sessions end with their grant, MFA is enforced."""

from django.conf import settings
from django.contrib.auth import logout
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import translation

from tenants.selectors import language_offered, support_grant_active

MFA_ENROLLED_KEY = "baton.mfa_enrolled"
MFA_EXEMPT_PREFIXES = ("/accounts/", "/static/", "/healthz", "/readyz", "/metrics", "/brand/", "/api/")


class UserLanguageMiddleware:
    """The language of a page: the signed-in person's choice (on every host and device), else the
    one a visitor picked in the switcher (its cookie), else the workspace's default that its admin
    set, else the browser's Accept-Language, else English. LocaleMiddleware runs before
    authentication and knows neither the person nor the workspace's default; it has already applied
    the cookie and the browser, so this one only steps in for a choice or a default."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        language = getattr(user, "language", "") if user is not None and user.is_authenticated else ""
        if not language_offered(language):
            language = ""
        if not language and not language_offered(request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME)):
            language = getattr(getattr(request, "tenant", None), "default_language", "")
        if language and language_offered(language):
            translation.activate(language)
            request.LANGUAGE_CODE = translation.get_language()
        return self.get_response(request)


class SupportSessionMiddleware:
    """A support session is only as good as its grant: expired or revoked means signed out now."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and user.support_grant_id:
            tenant = getattr(request, "tenant", None)
            if tenant is None or support_grant_active(grant_id=user.support_grant_id, tenant=tenant) is None:
                logout(request)
                return redirect(reverse("account_login") + "?support=ended")
        return self.get_response(request)


class MfaRequiredMiddleware:
    """MSP staff and tenant admins must set up TOTP before they can do anything else."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and user.requires_mfa and not request.path.startswith(MFA_EXEMPT_PREFIXES):
            from allauth.mfa.models import Authenticator

            if not request.session.get(MFA_ENROLLED_KEY):
                if not Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists():
                    return redirect(reverse("mfa_activate_totp") + "?required=1")
                request.session[MFA_ENROLLED_KEY] = True  # checked once per session, not per request
        return self.get_response(request)
