from django import forms
from django.conf import settings

from tenants.models import Partner, Plan


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
