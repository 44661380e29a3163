"""The tenant admin's texts for the customer portal (settings page with a preview), and the token
a tenant's hosts answer for custom-domain verification."""

from zoneinfo import ZoneInfo

from django import forms
from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone

from accounts.models import Role
from portal.permissions import tenant_role_required
from tenants.domains import domain_token
from tenants.selectors import PortalCopy, portal_texts_stored
from tenants.services import PORTAL_TEXT_LIMITS, PortalTextsInput, TenantError, portal_texts_clean, portal_texts_update

_HELP = {
    "welcome_headline": "The big line on your customers' home page. Empty: “Welcome to” your product name.",
    "welcome_message": "A paragraph under it: what customers find here, who to call. Line breaks are kept.",
    "support_email": "Shown in the footer of every page and on error pages.",
    "support_phone": "Digits, spaces and + ( ) - . / such as +31 20 123 4567.",
    "support_hours": "When someone answers, e.g. “Mon–Fri 08:00–18:00 CET”.",
    "notice": "A banner at the top of every portal page and the sign-in page, e.g. planned maintenance.",
    "notice_expires_at": "The banner disappears at this time (your workspace's time zone). Empty: it stays until you clear it.",
    "sign_in_message": "Shown on the sign-in page above the form, e.g. who to ask for an account.",
}


def _text_field(name: str, *, rows: int = 0) -> forms.CharField:
    label, limit = PORTAL_TEXT_LIMITS[name]
    widget = forms.Textarea(attrs={"rows": rows, "maxlength": limit}) if rows else forms.TextInput(attrs={"maxlength": limit})
    # No max_length on the field: the service says how long the text is and what fits.
    return forms.CharField(label=label, required=False, strip=False, widget=widget, help_text=_HELP[name])


class PortalTextsForm(forms.Form):
    welcome_headline = _text_field("welcome_headline")
    welcome_message = _text_field("welcome_message", rows=4)
    support_email = _text_field("support_email")
    support_phone = _text_field("support_phone")
    support_hours = _text_field("support_hours")
    notice = _text_field("notice", rows=2)
    notice_expires_at = forms.DateTimeField(
        label="Notice ends",
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        help_text=_HELP["notice_expires_at"],
    )
    sign_in_message = _text_field("sign_in_message", rows=3)

    def texts(self) -> PortalTextsInput:
        return PortalTextsInput(**self.cleaned_data)


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
    shown as customers would see them, nothing saved. POST "save": saved, audited, shown at once."""
    with timezone.override(ZoneInfo(request.tenant.time_zone or "UTC")):
        form = PortalTextsForm(request.POST or None, initial=_initial(request))
        preview = None
        if request.method == "POST" and form.is_valid():
            try:
                texts = portal_texts_clean(form.texts())
                if request.POST.get("action") == "preview":
                    preview = PortalCopy(**texts.__dict__)
                else:
                    portal_texts_update(tenant=request.tenant, texts=texts, actor=request.user)
                    messages.success(request, "Portal texts saved: your customers see them from now on.")
                    return redirect("portal:portal_texts")
            except TenantError as exc:
                form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        context = {"form": form, "preview": preview, "limits": {name: limit for name, (_label, limit) in PORTAL_TEXT_LIMITS.items()}}
        return render(request, "portal/portal_texts.html", context, status=400 if form.errors else 200)


def domain_token_answer(request):
    """`/.well-known/baton-domain`: the tenant's token, so the console can check that a custom
    domain reaches this installation and this tenant (tenants.domains)."""
    return HttpResponse(domain_token(request.tenant), content_type="text/plain; charset=utf-8")
