from django import forms

from accounts.models import Role

STAFF_ROLE_CHOICES = [(r.value, r.label) for r in (Role.TENANT_ADMIN, Role.PLANNER, Role.DISPATCHER, Role.CUSTOMER_SERVICE, Role.FINANCE)]
API_SCOPES = [("audit:read", "Read the audit log"), ("tenant:read", "Read tenant details")]


class InviteForm(forms.Form):
    email = forms.EmailField()
    full_name = forms.CharField(max_length=150, required=False)
    role = forms.ChoiceField(choices=STAFF_ROLE_CHOICES, initial=Role.PLANNER)


class ApiKeyForm(forms.Form):
    name = forms.CharField(max_length=80, help_text="What uses this key, e.g. 'ERP integration'.")
    scopes = forms.MultipleChoiceField(choices=API_SCOPES, widget=forms.CheckboxSelectMultiple, required=False)
