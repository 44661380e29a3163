from django import forms
from django.conf import settings
from django.core.validators import FileExtensionValidator

from accounts.models import Role
from tenants.models import Partner, Plan
from workflows.forms import JsonObjectField
from workflows.models import TemplateCategory

MSP_ROLE_CHOICES = [(r.value, r.label) for r in (Role.MSP_ADMIN, Role.MSP_OPERATOR, Role.MSP_SUPPORT)]


class TenantForm(forms.Form):
    partner = forms.ModelChoiceField(queryset=Partner.objects.all(), empty_label=None)
    name = forms.CharField(max_length=120, help_text="The logistics company's name, as its users know it.")
    slug = forms.SlugField(max_length=40, help_text="Lowercase letters, digits and hyphens; used in the host name.")
    domain = forms.CharField(max_length=253, required=False, help_text=f"Leave empty for <slug>.{settings.BATON_TENANT_DOMAIN_SUFFIX}.")
    plan = forms.ChoiceField(choices=Plan.choices, initial=Plan.STANDARD)
    time_zone = forms.CharField(max_length=64, initial="UTC", help_text="IANA name, e.g. America/Chicago.")
    admin_email = forms.EmailField(required=False, help_text="Receives an invitation to set a password.")
    product_name = forms.CharField(max_length=80, help_text="Shown in the tenant's pages, titles and emails.")
    primary_color = forms.CharField(max_length=7, initial="#1f4e79", widget=forms.TextInput(attrs={"type": "color"}))
    on_primary_color = forms.CharField(max_length=7, initial="#ffffff", widget=forms.TextInput(attrs={"type": "color"}))
    accent_color = forms.CharField(max_length=7, initial="#b4490c", widget=forms.TextInput(attrs={"type": "color"}))
    email_sender_address = forms.EmailField(required=False)
    logo = forms.FileField(required=False)


class ReasonForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), max_length=500)


class SupportAccessForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), max_length=500, help_text="The tenant's admin reads this.")
    hours = forms.FloatField(min_value=0.25, max_value=settings.BATON_SUPPORT_ACCESS_MAX_HOURS, initial=1)


BRAND_IMAGE_EXTENSIONS = ["png", "jpg", "jpeg", "gif", "webp", "ico"]
BRAND_IMAGE_MAX_BYTES = 1024 * 1024


def _brand_image_size_validate(upload) -> None:
    if upload.size > BRAND_IMAGE_MAX_BYTES:
        raise forms.ValidationError(f"The file is {upload.size / 1024 / 1024:.1f} MB; use an image of at most 1 MB.")


def _brand_image_field(help_text: str) -> forms.FileField:
    # SVG is left out on purpose: served from the tenant's own host, it could carry script.
    return forms.FileField(
        required=False,
        help_text=help_text,
        validators=[FileExtensionValidator(BRAND_IMAGE_EXTENSIONS), _brand_image_size_validate],
        widget=forms.FileInput(attrs={"accept": ",".join(f".{ext}" for ext in BRAND_IMAGE_EXTENSIONS)}),
    )


class BrandingForm(forms.Form):
    """A tenant's brand. An empty logo or favicon keeps the current one."""

    product_name = forms.CharField(max_length=80, help_text="Shown in the tenant's pages, titles and emails.")
    primary_color = forms.CharField(max_length=7, widget=forms.TextInput(attrs={"type": "color"}))
    on_primary_color = forms.CharField(max_length=7, widget=forms.TextInput(attrs={"type": "color"}))
    accent_color = forms.CharField(max_length=7, widget=forms.TextInput(attrs={"type": "color"}))
    email_sender_name = forms.CharField(max_length=80, required=False, help_text="Defaults to the product name.")
    email_sender_address = forms.EmailField(required=False, help_text="Empty: the platform's address.")
    logo = _brand_image_field("PNG, JPEG, GIF, WebP or ICO, up to 1 MB; shown on white.")
    favicon = _brand_image_field("A square image, e.g. 64 × 64 px PNG or ICO.")


class PartnerForm(forms.Form):
    name = forms.CharField(max_length=120, help_text="The MSP organisation's name.")
    slug = forms.SlugField(max_length=40, help_text="Lowercase letters, digits and hyphens.")
    product_name = forms.CharField(max_length=80, label="Console product name", help_text="What its people see in the console.")


class StaffInviteForm(forms.Form):
    email = forms.EmailField()
    full_name = forms.CharField(max_length=150, required=False, label="Full name")
    role = forms.ChoiceField(choices=MSP_ROLE_CHOICES, initial=Role.MSP_OPERATOR)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=MSP_ROLE_CHOICES)


class WorkflowTemplateForm(forms.Form):
    """A new library template; its versions are published on its page."""

    key = forms.SlugField(
        max_length=80, help_text="Lowercase letters, digits, '-' and '_'. Tenants see it in their library; it never changes."
    )
    name = forms.CharField(max_length=120)
    category = forms.ChoiceField(choices=TemplateCategory.choices, initial=TemplateCategory.OTHER)
    description = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), required=False, help_text="One or two sentences for the library card."
    )
    partner = forms.ModelChoiceField(
        queryset=Partner.objects.all(),
        required=False,
        empty_label="Platform – every tenant",
        label="Owner",
        help_text="A partner's template is only in the library of that partner's tenants.",
    )


class TemplateVersionForm(forms.Form):
    """Publish an immutable version of a template."""

    version = forms.CharField(max_length=40, help_text="MAJOR.MINOR.PATCH, greater than the latest version.")
    definition = JsonObjectField(
        rows=22,
        label="Definition (JSON)",
        help_text="Steps, triggers and transitions; {{params.NAME}} placeholders are filled from the parameters.",
    )
    parameters_schema = JsonObjectField(
        rows=12,
        required=False,
        label="Parameters schema (JSON Schema)",
        help_text="An object schema; each property with a type, a default and a description. Empty: no parameters.",
    )
    documentation = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 6}),
        required=False,
        help_text="Shown on the template's page. # headings, - lists, **bold** and `code` work.",
    )
    changelog = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}),
        required=False,
        help_text="What changed since the previous version; tenants read it before upgrading.",
    )
