from django import forms
from django.conf import settings
from django.core.validators import FileExtensionValidator
from django.utils.functional import lazy
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from accounts.models import Role
from tenants.models import Partner, Plan
from workflows.forms import JsonObjectField
from workflows.models import TemplateCategory

MSP_ROLE_CHOICES = [(r.value, r.label) for r in (Role.MSP_ADMIN, Role.MSP_OPERATOR, Role.MSP_SUPPORT)]


def _domain_help() -> str:
    return gettext("Leave empty for <slug>.%(suffix)s.") % {"suffix": settings.BATON_TENANT_DOMAIN_SUFFIX}


class TenantForm(forms.Form):
    partner = forms.ModelChoiceField(label=_("Partner"), queryset=Partner.objects.all(), empty_label=None)
    name = forms.CharField(label=_("Name"), max_length=120, help_text=_("The logistics company's name, as its users know it."))
    slug = forms.SlugField(label=_("Slug"), max_length=40, help_text=_("Lowercase letters, digits and hyphens; used in the host name."))
    domain = forms.CharField(label=_("Domain"), max_length=253, required=False, help_text=lazy(_domain_help, str)())
    plan = forms.ChoiceField(label=_("Plan"), choices=Plan.choices, initial=Plan.STANDARD)
    time_zone = forms.CharField(label=_("Time zone"), max_length=64, initial="UTC", help_text=_("IANA name, e.g. America/Chicago."))
    admin_email = forms.EmailField(label=_("Admin email"), required=False, help_text=_("Receives an invitation to set a password."))
    product_name = forms.CharField(label=_("Product name"), max_length=80, help_text=_("Shown in the tenant's pages, titles and emails."))
    primary_color = forms.CharField(
        label=_("Primary color"), max_length=7, initial="#1f4e79", widget=forms.TextInput(attrs={"type": "color"})
    )
    on_primary_color = forms.CharField(
        label=_("On primary color"), max_length=7, initial="#ffffff", widget=forms.TextInput(attrs={"type": "color"})
    )
    accent_color = forms.CharField(
        label=_("Accent color"), max_length=7, initial="#b4490c", widget=forms.TextInput(attrs={"type": "color"})
    )
    email_sender_address = forms.EmailField(label=_("Email sender address"), required=False)
    logo = forms.FileField(label=_("Logo"), required=False)


class ReasonForm(forms.Form):
    reason = forms.CharField(label=_("Reason"), widget=forms.Textarea(attrs={"rows": 2}), max_length=500)


class SupportAccessForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason"), widget=forms.Textarea(attrs={"rows": 2}), max_length=500, help_text=_("The tenant's admin reads this.")
    )
    hours = forms.FloatField(label=_("Hours"), min_value=0.25, max_value=settings.BATON_SUPPORT_ACCESS_MAX_HOURS, initial=1)


BRAND_IMAGE_EXTENSIONS = ["png", "jpg", "jpeg", "gif", "webp", "ico"]
BRAND_IMAGE_MAX_BYTES = 1024 * 1024


def _brand_image_size_validate(upload) -> None:
    if upload.size > BRAND_IMAGE_MAX_BYTES:
        raise forms.ValidationError(
            gettext("The file is %(size)s MB; use an image of at most 1 MB.") % {"size": f"{upload.size / 1024 / 1024:.1f}"}
        )


def _brand_image_field(label, help_text) -> forms.FileField:
    # SVG is left out on purpose: served from the tenant's own host, it could carry script.
    return forms.FileField(
        label=label,
        required=False,
        help_text=help_text,
        validators=[FileExtensionValidator(BRAND_IMAGE_EXTENSIONS), _brand_image_size_validate],
        widget=forms.FileInput(attrs={"accept": ",".join(f".{ext}" for ext in BRAND_IMAGE_EXTENSIONS)}),
    )


class BrandingForm(forms.Form):
    """A tenant's brand. An empty logo or favicon keeps the current one."""

    product_name = forms.CharField(label=_("Product name"), max_length=80, help_text=_("Shown in the tenant's pages, titles and emails."))
    primary_color = forms.CharField(label=_("Primary color"), max_length=7, widget=forms.TextInput(attrs={"type": "color"}))
    on_primary_color = forms.CharField(label=_("On primary color"), max_length=7, widget=forms.TextInput(attrs={"type": "color"}))
    accent_color = forms.CharField(label=_("Accent color"), max_length=7, widget=forms.TextInput(attrs={"type": "color"}))
    email_sender_name = forms.CharField(
        label=_("Email sender name"), max_length=80, required=False, help_text=_("Defaults to the product name.")
    )
    email_sender_address = forms.EmailField(label=_("Email sender address"), required=False, help_text=_("Empty: the platform's address."))
    logo = _brand_image_field(_("Logo"), _("PNG, JPEG, GIF, WebP or ICO, up to 1 MB; shown on white."))
    favicon = _brand_image_field(_("Favicon"), _("A square image, e.g. 64 × 64 px PNG or ICO."))


class PartnerForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=120, help_text=_("The MSP organisation's name."))
    slug = forms.SlugField(label=_("Slug"), max_length=40, help_text=_("Lowercase letters, digits and hyphens."))
    product_name = forms.CharField(max_length=80, label=_("Console product name"), help_text=_("What its people see in the console."))


class StaffInviteForm(forms.Form):
    email = forms.EmailField(label=_("Email"))
    full_name = forms.CharField(max_length=150, required=False, label=_("Full name"))
    role = forms.ChoiceField(label=_("Role"), choices=MSP_ROLE_CHOICES, initial=Role.MSP_OPERATOR)


class RoleForm(forms.Form):
    role = forms.ChoiceField(label=_("Role"), choices=MSP_ROLE_CHOICES)


class WorkflowTemplateForm(forms.Form):
    """A new library template; its versions are published on its page."""

    key = forms.SlugField(
        label=_("Key"),
        max_length=80,
        help_text=_("Lowercase letters, digits, '-' and '_'. Tenants see it in their library; it never changes."),
    )
    name = forms.CharField(label=_("Name"), max_length=120)
    category = forms.ChoiceField(label=_("Category"), choices=TemplateCategory.choices, initial=TemplateCategory.OTHER)
    description = forms.CharField(
        label=_("Description"),
        widget=forms.Textarea(attrs={"rows": 3}),
        required=False,
        help_text=_("One or two sentences for the library card."),
    )
    partner = forms.ModelChoiceField(
        queryset=Partner.objects.all(),
        required=False,
        empty_label=_("Platform – every tenant"),
        label=_("Owner"),
        help_text=_("A partner's template is only in the library of that partner's tenants."),
    )


class TemplateVersionForm(forms.Form):
    """Publish an immutable version of a template."""

    version = forms.CharField(label=_("Version"), max_length=40, help_text=_("MAJOR.MINOR.PATCH, greater than the latest version."))
    definition = JsonObjectField(
        rows=22,
        label=_("Definition (JSON)"),
        help_text=_("Steps, triggers and transitions; {{params.NAME}} placeholders are filled from the parameters."),
    )
    parameters_schema = JsonObjectField(
        rows=12,
        required=False,
        label=_("Parameters schema (JSON Schema)"),
        help_text=_("An object schema; each property with a type, a default and a description. Empty: no parameters."),
    )
    documentation = forms.CharField(
        label=_("Documentation"),
        widget=forms.Textarea(attrs={"rows": 6}),
        required=False,
        help_text=_("Shown on the template's page. # headings, - lists, **bold** and `code` work."),
    )
    changelog = forms.CharField(
        label=_("Changelog"),
        widget=forms.Textarea(attrs={"rows": 2}),
        required=False,
        help_text=_("What changed since the previous version; tenants read it before upgrading."),
    )
