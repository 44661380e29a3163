"""The tenant admin's texts for the customer portal (settings page with a preview), and the token
a tenant's hosts answer for custom-domain verification."""

from zoneinfo import ZoneInfo

from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy as _l

from accounts.models import Role
from portal.permissions import tenant_role_required
from tenants.domains import domain_token
from tenants.selectors import PortalCopy, portal_texts_stored
from tenants.services import (
    PORTAL_TEXT_LIMITS,
    PortalTextsInput,
    TenantError,
    portal_texts_clean,
    portal_texts_update,
    tenant_default_language_set,
)

_LABELS = {
    "welcome_headline": _l("Welcome headline"),
    "welcome_message": _l("Welcome message"),
    "support_email": _l("Support email"),
    "support_phone": _l("Support phone"),
    "support_hours": _l("Support hours"),
    "notice": _l("Notice"),
    "sign_in_message": _l("Sign-in message"),
}
_HELP = {
    "welcome_headline": _l("The big line on your customers' home page. Empty: “Welcome to” your product name."),
    "welcome_message": _l("A paragraph under it: what customers find here, who to call. Line breaks are kept."),
    "support_email": _l("Shown in the footer of every page and on error pages."),
    "support_phone": _l("Digits, spaces and + ( ) - . / such as +31 20 123 4567."),
    "support_hours": _l("When someone answers, e.g. “Mon–Fri 08:00–18:00 CET”."),
    "notice": _l("A banner at the top of every portal page and the sign-in page, e.g. planned maintenance."),
    "notice_expires_at": _l("The banner disappears at this time (your workspace's time zone). Empty: it stays until you clear it."),
    "sign_in_message": _l("Shown on the sign-in page above the form, e.g. who to ask for an account."),
}


def _text_field(name: str, *, rows: int = 0) -> forms.CharField:
    _label, limit = PORTAL_TEXT_LIMITS[name]
    widget = forms.Textarea(attrs={"rows": rows, "maxlength": limit}) if rows else forms.TextInput(attrs={"maxlength": limit})
    # No max_length on the field: the service says how long the text is and what fits.
    return forms.CharField(label=_LABELS[name], required=False, strip=False, widget=widget, help_text=_HELP[name])


class PortalTextsForm(forms.Form):
    welcome_headline = _text_field("welcome_headline")
    welcome_message = _text_field("welcome_message", rows=4)
    support_email = _text_field("support_email")
    support_phone = _text_field("support_phone")
    support_hours = _text_field("support_hours")
    notice = _text_field("notice", rows=2)
    notice_expires_at = forms.DateTimeField(
        label=_l("Notice ends"),
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        help_text=_HELP["notice_expires_at"],
    )
    sign_in_message = _text_field("sign_in_message", rows=3)

    def texts(self) -> PortalTextsInput:
        return PortalTextsInput(**self.cleaned_data)


BROWSER = "browser"  # the form's word for "no default" (tenants.Tenant.default_language blank)


class DefaultLanguageForm(forms.Form):
    """The workspace's language for people who chose none (tenants.Tenant.default_language)."""

    default_language = forms.ChoiceField(
        label=_l("Default language"),
        # Each language named in itself, as in the switcher; BROWSER: every visitor's browser decides.
        choices=[(BROWSER, _l("The browser's language")), *settings.LANGUAGES],
        help_text=_l(
            "For everyone who has not chosen a language themselves: pages, and emails such as invitations and "
            "shipment updates. A person's own choice in their account menu always wins."
        ),
        error_messages={"invalid_choice": _l("Choose one of the languages offered.")},
    )


def _initial(request) -> dict:
    row = portal_texts_stored(request.tenant)
    if row is None:
        return {}
    initial = {name: getattr(row, name) for name in PORTAL_TEXT_LIMITS}
    initial["notice_expires_at"] = row.notice_expires_at
    return initial


@tenant_role_required(Role.TENANT_ADMIN)
def portal_texts(request):
    """GET: the form, and beside it what customers see now. POST "preview": the form's texts
    shown as customers would see them, nothing saved. POST "save": saved, audited, shown at once.
    POST "language": the workspace's default language, saved and audited."""
    with timezone.override(ZoneInfo(request.tenant.time_zone or "UTC")):
        action = request.POST.get("action") if request.method == "POST" else None
        language_form = DefaultLanguageForm(
            request.POST if action == "language" else None, initial={"default_language": request.tenant.default_language or BROWSER}
        )
        form = PortalTextsForm(request.POST if request.method == "POST" and action != "language" else None, initial=_initial(request))
        preview = None
        if action == "language":
            if language_form.is_valid():
                try:
                    chosen = language_form.cleaned_data["default_language"]
                    tenant_default_language_set(tenant=request.tenant, language="" if chosen == BROWSER else chosen, actor=request.user)
                except TenantError as exc:
                    language_form.add_error("default_language", exc.message)
                else:
                    messages.success(request, _("Default language saved: people who chose none see it from now on."))
                    return redirect("portal:portal_texts")
        elif request.method == "POST" and form.is_valid():
            try:
                texts = portal_texts_clean(form.texts())
                if action == "preview":
                    preview = PortalCopy(**texts.__dict__)
                else:
                    portal_texts_update(tenant=request.tenant, texts=texts, actor=request.user)
                    messages.success(request, _("Portal texts saved: your customers see them from now on."))
                    return redirect("portal:portal_texts")
            except TenantError as exc:
                form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        context = {
            "form": form,
            "language_form": language_form,
            "preview": preview,
            "limits": {name: limit for name, (_label, limit) in PORTAL_TEXT_LIMITS.items()},
        }
        status = 400 if form.errors or language_form.errors else 200
        return render(request, "portal/portal_texts.html", context, status=status)


def domain_token_answer(request):
    """`/.well-known/baton-domain`: the tenant's token, so the console can check that a custom
    domain reaches this installation and this tenant (tenants.domains)."""
    return HttpResponse(domain_token(request.tenant), content_type="text/plain; charset=utf-8")
