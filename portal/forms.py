from django import forms
from django.utils.translation import gettext_lazy as _

from accounts.models import Role
from logistics.selectors import customer_accounts_all

# Role labels are gettext_noop in accounts.models: translated here, when a form shows them.
STAFF_ROLE_CHOICES = [
    (r.value, _(str(r.label))) for r in (Role.TENANT_ADMIN, Role.PLANNER, Role.DISPATCHER, Role.CUSTOMER_SERVICE, Role.FINANCE)
]
API_SCOPES = [
    ("audit:read", _("Read the audit log")),
    ("tenant:read", _("Read tenant details")),
    ("workflows:read", _("Read the workflow library and definitions")),
    ("workflows:write", _("Clone and change workflow definitions")),
    ("workflows:run", _("Start workflow runs")),
    ("workflows:operate", _("Pause, resume and cancel runs; retry and restart incidents")),
    ("workflows:approve", _("Read and decide workflow approvals")),
    ("events:write", _("Send events that wake waiting runs and start event-triggered ones")),
    ("connections:read", _("Read connections (secrets masked)")),
    ("connections:write", _("Create, change and test connections")),
    ("insights:read", _("Read outcome metrics")),
    ("shipments:read", _("Read shipments, tracking events, documents and invoices (Experience API)")),
    ("subscriptions:read", _("Read milestone subscriptions (Experience API)")),
    ("subscriptions:write", _("Create milestone subscriptions (Experience API)")),
]
# What a key bound to a customer account may hold: the Experience API's scopes, the only
# endpoints that take such keys (`scoped(..., customers=True)`) and narrow answers to the account.
CUSTOMER_KEY_SCOPES = [(value, label) for value, label in API_SCOPES if value.split(":")[0] in ("shipments", "subscriptions")]


class InviteForm(forms.Form):
    email = forms.EmailField(label=_("Email"))
    full_name = forms.CharField(max_length=150, required=False, label=_("Full name"))
    role = forms.ChoiceField(choices=STAFF_ROLE_CHOICES, initial=Role.PLANNER, label=_("Role"))


class ApiKeyForm(forms.Form):
    name = forms.CharField(max_length=80, label=_("Name"), help_text=_("What uses this key, e.g. 'ERP integration'."))
    scopes = forms.MultipleChoiceField(choices=API_SCOPES, widget=forms.CheckboxSelectMultiple, required=False, label=_("Scopes"))
    customer_account = forms.ModelChoiceField(
        queryset=customer_accounts_all(),
        required=False,
        empty_label=_("None: a key for this workspace"),
        label=_("Bind to a customer account"),
        help_text=_("A bound key reads only that account's shipments and subscriptions, through the Experience API."),
    )

    def clean(self):
        data = super().clean()
        account, scopes = data.get("customer_account"), data.get("scopes") or []
        allowed = {value for value, _label in CUSTOMER_KEY_SCOPES}
        if account is not None and not set(scopes) <= allowed:
            wrong = ", ".join(sorted(set(scopes) - allowed))
            self.add_error(
                "scopes",
                _("A key bound to a customer account holds Experience API scopes only (%(allowed)s); not %(wrong)s.")
                % {"allowed": ", ".join(sorted(allowed)), "wrong": wrong},
            )
        return data


class CustomerApiKeyForm(forms.Form):
    """A key of the customer's own account (staff choose the account)."""

    name = forms.CharField(max_length=80, label=_("Name"), help_text=_("What uses this key, e.g. 'our TMS'."))
    scopes = forms.MultipleChoiceField(
        choices=CUSTOMER_KEY_SCOPES,
        widget=forms.CheckboxSelectMultiple,
        label=_("Scopes"),
        help_text=_("What the key may do; nothing else is possible."),
    )
    customer_account = forms.ModelChoiceField(
        queryset=customer_accounts_all(), empty_label=_("Choose an account…"), label=_("Customer account")
    )

    def __init__(self, *args, for_account: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if for_account:  # a customer's own account, implied
            del self.fields["customer_account"]


class CustomerInviteForm(forms.Form):
    email = forms.EmailField(label=_("Email"))
    full_name = forms.CharField(max_length=150, required=False, label=_("Full name"))
    customer_account = forms.ModelChoiceField(
        queryset=customer_accounts_all(),
        empty_label=_("Choose an account…"),
        label=_("Customer account"),
        help_text=_("They see only this account's shipments."),
    )

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("auto_id", "id_customer_%s")  # shares the page with InviteForm: ids must differ
        super().__init__(*args, **kwargs)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=STAFF_ROLE_CHOICES, label=_("Role"))


class DeactivateForm(forms.Form):
    reason = forms.CharField(max_length=500, label=_("Reason"))
