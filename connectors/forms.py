"""The connection form: one set of fields per auth method (the page shows the chosen method's),
mapped to and from `ConnectionInput`; secrets are never rendered back into their inputs. And the
inbox's forms: a connection's inbound webhook settings, a secret rotation, the log's filters, a
quarantined event's fixed body. And customer webhook endpoints: new, edit, disable, the delivery
log's filters."""

from __future__ import annotations

import dataclasses
import json
from datetime import date
from typing import Any

from django import forms
from django.conf import settings
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from connectors.auth import AUTH_SECRETS, AUTH_SETTINGS, CLIENT_AUTH, HMAC_ALGORITHMS
from connectors.edi_transport import CONTROL_NUMBER_MAX, PARTNER_FIELDS, SSH_KEY_MAX_CHARS, EdiPartnerInput
from connectors.inbox import signature_scheme
from connectors.models import (
    AuthMethod,
    Connection,
    ConnectionKind,
    DeliveryStatus,
    EdiPartner,
    EdiUsage,
    HealthMethod,
    InboundMapper,
    InboundScheme,
    InboundStatus,
    Transport,
)
from connectors.selectors import INBOUND_CHANNELS, InboxFilters
from connectors.services import KIND_DEFAULTS, ConnectionInput, ConnectionProblem
from connectors.signatures import HmacScheme, standard_secret_key
from logistics.selectors import customer_accounts_all

# Form field of each auth method's setting or secret (the service names them within the method).
AUTH_FIELDS: dict[str, dict[str, str]] = {
    AuthMethod.NONE: {},
    AuthMethod.API_KEY: {"header": "api_key_header", "key": "api_key"},
    AuthMethod.BASIC: {"username": "basic_username", "password": "basic_password"},
    AuthMethod.OAUTH2: {
        "token_url": "oauth2_token_url",
        "client_id": "oauth2_client_id",
        "client_secret": "oauth2_client_secret",
        "scope": "oauth2_scope",
        "audience": "oauth2_audience",
        "client_auth": "oauth2_client_auth",
    },
    AuthMethod.HMAC: {"header": "hmac_header", "algorithm": "hmac_algorithm", "secret": "hmac_secret"},
}
# Fields an auth method cannot do without (secrets only until one is stored).
_NEEDED = {"key", "password", "client_secret", "secret", "username", "token_url", "client_id"}
_PLAIN_POINTERS = {
    "/name": "name",
    "/key": "key",
    "/kind": "kind",
    "/transport": "transport",
    "/base_url": "base_url",
    "/health_path": "health_path",
    "/health_method": "health_method",
    "/connect_timeout": "connect_timeout",
    "/read_timeout": "read_timeout",
    "/auth/method": "auth_method",
}


def _secret_input() -> forms.PasswordInput:
    return forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password", "spellcheck": "false"})


def _text(**attrs: str) -> forms.TextInput:
    return forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false", **attrs})


class ConnectionForm(forms.Form):
    use_required_attribute = False  # the other auth methods' inputs are hidden: the browser must not insist on them

    name = forms.CharField(label=_("Name"), max_length=120, help_text=_("What people call it, e.g. “Acme TMS (production)”."))
    key = forms.CharField(
        label=_("Key"),
        max_length=80,
        help_text=_("How workflows name it: lowercase letters, digits, '-' and '_'. It cannot change later."),
        widget=_text(),
    )
    kind = forms.ChoiceField(label=_("Kind"), choices=ConnectionKind.choices)
    transport = forms.ChoiceField(label=_("Transport"), choices=Transport.choices)
    base_url = forms.CharField(label=_("Base URL"), max_length=500, widget=_text(inputmode="url"))
    health_path = forms.CharField(
        label=_("Health path"),
        max_length=200,
        required=False,
        help_text=_("What “Test connection” requests, under the base URL (e.g. /health). Empty: the base URL itself."),
        widget=_text(placeholder="/health"),
    )
    health_method = forms.ChoiceField(label=_("Test with"), choices=HealthMethod.choices)
    connect_timeout = forms.FloatField(label=_("Connect timeout (seconds)"), min_value=0.1, max_value=60)
    read_timeout = forms.FloatField(label=_("Read timeout (seconds)"), min_value=0.1, max_value=300)
    settings = forms.CharField(
        label=_("Other settings (JSON)"),
        required=False,
        help_text=_("Non-secret options as a JSON object. Stored in plain text: secrets go in the auth fields."),
        widget=forms.Textarea(attrs={"rows": 3, "class": "code-input", "spellcheck": "false", "autocapitalize": "off"}),
    )
    auth_method = forms.ChoiceField(label=_("Auth method"), choices=AuthMethod.choices)

    api_key_header = forms.CharField(label=_("Header"), max_length=100, required=False, widget=_text(placeholder="X-Api-Key"))
    api_key = forms.CharField(label=_("API key"), max_length=4096, required=False, widget=_secret_input())
    basic_username = forms.CharField(label=_("User name"), max_length=500, required=False, widget=_text())
    basic_password = forms.CharField(label=_("Password"), max_length=4096, required=False, widget=_secret_input())
    oauth2_token_url = forms.CharField(label=_("Token URL"), max_length=500, required=False, widget=_text(inputmode="url"))
    oauth2_client_id = forms.CharField(label=_("Client id"), max_length=500, required=False, widget=_text())
    oauth2_client_secret = forms.CharField(label=_("Client secret"), max_length=4096, required=False, widget=_secret_input())
    oauth2_scope = forms.CharField(label=_("Scope"), max_length=500, required=False, widget=_text())
    oauth2_audience = forms.CharField(label=_("Audience"), max_length=500, required=False, widget=_text())
    oauth2_client_auth = forms.ChoiceField(
        label=_("Send the client id and secret"),
        choices=[("basic", _("In an Authorization: Basic header")), ("body", _("In the form body"))],
        required=False,
    )
    hmac_header = forms.CharField(label=_("Header"), max_length=100, required=False, widget=_text(placeholder="X-Baton-Signature"))
    hmac_algorithm = forms.ChoiceField(label=_("Algorithm"), choices=[(name, name.upper()) for name in HMAC_ALGORITHMS], required=False)
    hmac_secret = forms.CharField(label=_("Signing secret"), max_length=4096, required=False, widget=_secret_input())

    def __init__(self, *args: Any, editing: bool = False, masks: dict[str, str] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.editing = editing
        masks = masks or {}
        if editing:
            del self.fields["key"]
        chosen = (self.data.get("auth_method") if self.is_bound else None) or self.initial.get("auth_method", "")
        for method, fields in AUTH_FIELDS.items():
            for name, field_name in fields.items():
                field = self.fields[field_name]
                stored = masks.get(name, "") if method == chosen or not self.is_bound else ""
                if name in AUTH_SECRETS[method] and stored:
                    field.help_text = gettext("Stored: %(mask)s. Leave empty to keep it; type a new one to replace it.") % {"mask": stored}
                # Shown without "(optional)" when the method needs it; checked only for the chosen method.
                field.required = name in _NEEDED and not stored and (method == chosen or not self.is_bound)

    def full_clean(self) -> None:
        """Leave "required" to the service, which checks everything at once and knows which fields
        the chosen auth method needs; the flags stay as they were for rendering."""
        required = {name: field.required for name, field in self.fields.items()}
        for field in self.fields.values():
            field.required = False
        try:
            super().full_clean()
        finally:
            for name, flag in required.items():
                self.fields[name].required = flag

    def auth_groups(self) -> list[tuple[str, str, list[forms.BoundField]]]:
        """(method, label, its fields) for each method that has fields, in the choices' order."""
        return [
            (method, str(AuthMethod(method).label), [self[name] for name in fields.values()])
            for method, fields in AUTH_FIELDS.items()
            if fields
        ]

    def clean_settings(self) -> dict[str, Any]:
        text = self.cleaned_data.get("settings", "").strip()
        if not text:
            return {}
        try:
            value = json.loads(text)
        except json.JSONDecodeError as error:
            raise forms.ValidationError(_not_json(error)) from error
        if not isinstance(value, dict):
            raise forms.ValidationError(gettext("Write a JSON object, like %(example)s.") % {"example": '{"account": "ACME01"}'})
        return value

    def connection_input(self, key: str) -> ConnectionInput:
        data = self.cleaned_data
        method = data["auth_method"] or AuthMethod.NONE
        fields = AUTH_FIELDS.get(method, {})
        timeouts = {name: data[name] for name in ("connect_timeout", "read_timeout") if data.get(name) is not None}
        return ConnectionInput(
            key=data.get("key", key),
            name=data["name"],
            kind=data["kind"],
            transport=data["transport"],
            base_url=data["base_url"],
            health_path=data["health_path"],
            health_method=data["health_method"] or HealthMethod.GET,
            settings=data["settings"],
            auth_method=method,
            **timeouts,
            auth_settings={name: data.get(fields[name], "") or "" for name in AUTH_SETTINGS[method]},
            secrets={name: data.get(fields[name], "") or "" for name in AUTH_SECRETS[method]},
        )

    def add_problems(self, problems: list[ConnectionProblem], method: str) -> None:
        """Each problem from the service next to the input it concerns."""
        for problem in problems:
            field = _PLAIN_POINTERS.get(problem.pointer)
            if problem.pointer.startswith("/auth/") and field is None:
                field = AUTH_FIELDS.get(method, {}).get(problem.pointer.removeprefix("/auth/"))
            if problem.pointer.startswith("/settings"):
                name = problem.pointer.removeprefix("/settings").lstrip("/")
                self.add_error("settings", f"“{name}” {problem.reason}." if name else f"{problem.reason.capitalize()}.")
                continue
            if field is not None and field in self.fields:
                reason = (
                    gettext("This field is required.")
                    if problem.reason == "is required"
                    else problem.reason[0].upper() + problem.reason[1:] + "."
                )
                self.add_error(field, reason)
            else:
                self.add_error(None, f"{problem.pointer}: {problem.reason}.")


def _not_json(error: json.JSONDecodeError, *, replay: bool = False) -> str:
    """Where the text stops being JSON (the parser's own words, then the position)."""
    values = {"message": error.msg, "line": error.lineno, "column": error.colno}
    if replay:
        return gettext("Not JSON: %(message)s at line %(line)s, column %(column)s. Nothing was replayed.") % values
    return gettext("Not JSON: %(message)s at line %(line)s, column %(column)s.") % values


def _seconds(value: float) -> float | int:
    """5 rather than 5.0 in the input."""
    return int(value) if float(value).is_integer() else value


def form_initial(connection_input: ConnectionInput) -> dict[str, Any]:
    """The form's initial values for a connection (secrets are never put back in an input)."""
    initial: dict[str, Any] = {
        "name": connection_input.name,
        "key": connection_input.key,
        "kind": connection_input.kind,
        "transport": connection_input.transport,
        "base_url": connection_input.base_url,
        "health_path": connection_input.health_path,
        "health_method": connection_input.health_method,
        "connect_timeout": _seconds(connection_input.connect_timeout),
        "read_timeout": _seconds(connection_input.read_timeout),
        "settings": json.dumps(connection_input.settings, indent=2) if connection_input.settings else "",
        "auth_method": connection_input.auth_method,
    }
    fields = AUTH_FIELDS[connection_input.auth_method]
    initial |= {fields[name]: value for name, value in connection_input.auth_settings.items() if name in fields}
    return initial


def kind_initial(kind: str) -> dict[str, Any]:
    """What a new connection of `kind` starts with."""
    defaults = KIND_DEFAULTS[kind]
    start = ConnectionInput(
        key="",
        name="",
        kind=kind,
        base_url="",
        transport=defaults.transport,
        auth_method=defaults.auth_method,
        health_path=defaults.health_path,
        auth_settings=dict(defaults.auth_settings),
    )
    return form_initial(start) | {"oauth2_client_auth": CLIENT_AUTH[0], "hmac_algorithm": HMAC_ALGORITHMS[0]}


# --- the inbox ------------------------------------------------------------------------------------


def _json_object(text: str, example: str) -> dict[str, Any]:
    """The text as a JSON object ({} when empty), or a ValidationError saying where it stops being one."""
    text = text.strip()
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise forms.ValidationError(_not_json(error)) from error
    if not isinstance(value, dict):
        raise forms.ValidationError(gettext("Write a JSON object, like %(example)s.") % {"example": example})
    return value


def _code_area(rows: int) -> forms.Textarea:
    return forms.Textarea(
        attrs={"rows": rows, "class": "code-input", "spellcheck": "false", "autocapitalize": "off", "autocomplete": "off"}
    )


CUSTOM_SCHEME_FIELDS = tuple(field.name for field in dataclasses.fields(HmacScheme) if field.name != "name")
CUSTOM_SCHEME_EXAMPLE = '{"signature_header": "X-Partner-Signature", "algorithm": "sha256", "encoding": "hex", "prefix": "sha256="}'
MAPPING_EXAMPLE = '{"event_type": "shipment.milestone", "event_id": "$.id", "correlation": {"pro": "$.data.pro"}, "payload": "$.data"}'


class InboundSettingsForm(forms.Form):
    """How a connection takes webhooks: the signature scheme (a custom one as JSON), the mapper and
    its mapping, and optionally the partner's own signing secret."""

    use_required_attribute = False

    scheme = forms.ChoiceField(
        label=_("Signature scheme"),
        choices=[("", _("No webhooks")), *InboundScheme.choices],
        required=False,
        help_text=_("How the partner signs what it sends. “No webhooks” closes the endpoint."),
    )
    scheme_settings = forms.CharField(
        label=_("Custom scheme (JSON)"),
        required=False,
        widget=_code_area(5),
    )
    mapper = forms.ChoiceField(label=_("Turn bodies into events with"), choices=InboundMapper.choices)
    mapping = forms.CharField(
        label=_("Mapping (JSON)"),
        required=False,
        widget=_code_area(6),
        help_text=_(
            "For “A mapping of JSON paths”: event_type, event_id, correlation and payload, each a literal or a $.path into the body."
        ),
    )
    secret = forms.CharField(
        label=_("The partner's signing secret"),
        required=False,
        max_length=4096,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password", "spellcheck": "false"}),
        help_text=_(
            "Only when the partner gives you the secret (Shopify, Stripe, GitHub apps…); it becomes the current one and the "
            "previous one keeps working for 24 hours. Leave empty: Baton generates the secret and shows it once."
        ),
    )

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.fields["scheme_settings"].widget.attrs["placeholder"] = CUSTOM_SCHEME_EXAMPLE
        self.fields["scheme_settings"].help_text = gettext("For “Custom HMAC” only: %(fields)s. signature_header is required.") % {
            "fields": ", ".join(CUSTOM_SCHEME_FIELDS)
        }
        self.fields["mapping"].widget.attrs["placeholder"] = MAPPING_EXAMPLE

    @classmethod
    def for_connection(cls, connection: Connection) -> InboundSettingsForm:
        return cls(
            initial={
                "scheme": connection.inbound_scheme,
                "scheme_settings": json.dumps(connection.inbound_scheme_settings, indent=2) if connection.inbound_scheme_settings else "",
                "mapper": connection.inbound_mapper,
                "mapping": json.dumps(connection.inbound_mapping, indent=2) if connection.inbound_mapping else "",
            }
        )

    def clean_scheme_settings(self) -> dict[str, Any]:
        return _json_object(self.cleaned_data.get("scheme_settings", ""), '{"signature_header": "X-Signature"}')

    def clean_mapping(self) -> dict[str, Any]:
        return _json_object(self.cleaned_data.get("mapping", ""), '{"event_type": "order.received", "event_id": "$.id"}')

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        scheme = data.get("scheme", "")
        if scheme == InboundScheme.CUSTOM and "scheme_settings" in data:
            settings = data["scheme_settings"]
            unknown = sorted(set(settings) - set(CUSTOM_SCHEME_FIELDS))
            if unknown:
                self.add_error(
                    "scheme_settings",
                    gettext("“%(name)s” is not a field of a custom scheme; use %(fields)s.")
                    % {"name": unknown[0], "fields": ", ".join(CUSTOM_SCHEME_FIELDS)},
                )
            else:
                try:
                    signature_scheme(scheme, settings)
                except (ValueError, TypeError) as error:
                    self.add_error("scheme_settings", str(error).removeprefix("webhook scheme 'custom': ").capitalize() + ".")
        if data.get("mapper") == InboundMapper.MAPPING and "mapping" in data:
            missing = [name for name in ("event_type", "event_id") if not data["mapping"].get(name)]
            if missing:
                needed = gettext(" and ").join(missing)
                self.add_error(
                    "mapping", gettext("The mapping needs %(fields)s, e.g. %(example)s.") % {"fields": needed, "example": MAPPING_EXAMPLE}
                )
        secret = data.get("secret", "")
        if secret and not scheme:
            self.add_error("secret", gettext("Choose a signature scheme first: without one the connection takes no webhooks."))
        elif secret and scheme and not self.has_error("scheme_settings"):
            try:
                checked = signature_scheme(scheme, data.get("scheme_settings", {}))
                checked.key(secret) if isinstance(checked, HmacScheme) else standard_secret_key(secret)
            except ValueError as error:
                self.add_error("secret", gettext("This secret cannot sign with this scheme: %(error)s.") % {"error": error})
        return data


class InboundRotateForm(forms.Form):
    overlap_hours = forms.IntegerField(
        label=_("Keep the previous secret working for (hours)"),
        min_value=0,
        max_value=168,
        initial=24,
        help_text=_("Time to give the partner the new secret. 0 stops the previous one at once."),
    )


class InboxFilterForm(forms.Form):
    """The inbound event log's filters; an invalid value is left out rather than refused."""

    q = forms.CharField(required=False, max_length=200)
    connection = forms.CharField(required=False, max_length=80)
    status = forms.ChoiceField(required=False, choices=[("", _("Any status")), *InboundStatus.choices])
    channel = forms.ChoiceField(
        required=False,
        choices=[("", _("Any channel"))]
        + [(name, name.upper() if name in ("api", "sftp", "mqtt") else name.capitalize()) for name in INBOUND_CHANNELS],
    )
    received_from = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    received_to = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def filters(self) -> InboxFilters:
        self.is_valid()
        data = getattr(self, "cleaned_data", {})

        def kept(name: str) -> Any:
            return None if name in self.errors else data.get(name)

        received_from: date | None = kept("received_from")
        received_to: date | None = kept("received_to")
        return InboxFilters(
            connection=kept("connection") or "",
            status=kept("status") or "",
            channel=kept("channel") or "",
            received_from=received_from,
            received_to=received_to,
            query=kept("q") or "",
        )


class ReplayForm(forms.Form):
    """A quarantined event sent through again: as it is, or with the operator's fixed body (which
    must be JSON when the event is)."""

    body = forms.CharField(label=_("Body"), required=False, strip=False, max_length=settings.BATON_WEBHOOK_MAX_BYTES, widget=_code_area(16))

    def __init__(self, *args: Any, json_body: bool, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.json_body = json_body

    def clean_body(self) -> str | None:
        body = self.cleaned_data.get("body", "")
        if not body.strip():
            return None
        if self.json_body:
            try:
                json.loads(body)
            except json.JSONDecodeError as error:
                raise forms.ValidationError(_not_json(error, replay=True)) from error
        return body


# --- customer webhook endpoints ---------------------------------------------------------------------

EVENT_TYPES_HELP = _(
    "One a line (or separated by commas): an event type such as shipment.milestone, a pattern such as "
    "shipment.* or notification.*, or * for every event."
)


class EventTypesField(forms.CharField):
    """Event types typed one a line or comma-separated, as a sorted list without repeats."""

    widget = forms.Textarea(attrs={"rows": 4, "spellcheck": "false", "placeholder": "shipment.milestone\ninvoice.*"})

    def to_python(self, value: Any) -> list[str]:  # type: ignore[override]
        text = super().to_python(value) or ""
        return sorted({item.strip() for line in text.splitlines() for item in line.split(",") if item.strip()})

    def prepare_value(self, value: Any) -> Any:
        return "\n".join(value) if isinstance(value, list) else value

    def validate(self, value: Any) -> None:
        if not value:
            raise forms.ValidationError(gettext("Subscribe to at least one event type, or write * for every event."), code="required")
        refused = [item for item in value if " " in item or len(item) > 120]
        if refused:
            raise forms.ValidationError(
                gettext("“%(value)s” is not an event type: no spaces, at most 120 characters.") % {"value": refused[0][:60]}
            )


class WebhookEndpointEditForm(forms.Form):
    event_types = EventTypesField(label=_("Event types"), help_text=EVENT_TYPES_HELP)
    description = forms.CharField(label=_("Description"), required=False, max_length=200, help_text=_("Who receives it and why; optional."))


class WebhookEndpointForm(WebhookEndpointEditForm):
    url = forms.CharField(
        label=_("URL"),
        max_length=500,
        widget=forms.URLInput(attrs={"placeholder": "https://customer.example.com/baton-webhooks", "spellcheck": "false"}),
        help_text=_("Where Baton POSTs each event, signed with Standard Webhooks. https:// (http:// only for a test receiver)."),
    )
    customer_account = forms.ModelChoiceField(
        label=_("For"),
        queryset=customer_accounts_all(),
        required=False,
        empty_label=_("This workspace (no customer)"),
        help_text=_("A customer's endpoint gets that customer's events only; without one, the workspace's own events."),
    )
    field_order = ["url", "customer_account", "event_types", "description"]


class WebhookDisableForm(forms.Form):
    reason = forms.CharField(label=_("Why"), required=False, max_length=300, help_text=_("Kept with the endpoint and in the audit log."))


class WebhookRotateForm(InboundRotateForm):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.fields["overlap_hours"].label = gettext("Keep signing with the previous secret for (hours)")
        self.fields["overlap_hours"].help_text = gettext(
            "Time for the receiver to switch to the new secret. 0 stops the previous one at once."
        )


class DeliveryFilterForm(forms.Form):
    """The delivery log's filters; an invalid value is left out rather than refused."""

    status = forms.ChoiceField(required=False, choices=[("", _("Any status")), *DeliveryStatus.choices])
    event_type = forms.CharField(required=False, max_length=120)

    def values(self) -> tuple[str, str]:
        self.is_valid()
        data = getattr(self, "cleaned_data", {})
        return ("" if "status" in self.errors else data.get("status", "")), (
            "" if "event_type" in self.errors else data.get("event_type", "")
        )


# --- EDI partners ------------------------------------------------------------------------------------


def _code(label: Any, max_length: int, help_text: Any = "", *, required: bool = True, size: str = "") -> forms.CharField:
    attrs = {"autocomplete": "off", "spellcheck": "false", **({"size": size} if size else {})}
    return forms.CharField(label=label, max_length=max_length, help_text=help_text, required=required, widget=forms.TextInput(attrs=attrs))


class _SecretTextarea(forms.Textarea):
    """A textarea that never renders a value back (a private key), as PasswordInput(render_value=False) does."""

    def format_value(self, value: Any) -> str | None:
        return None


def _control_number(label: Any, help_text: Any) -> forms.IntegerField:
    return forms.IntegerField(
        label=label,
        required=False,
        min_value=1,
        max_value=CONTROL_NUMBER_MAX,
        help_text=help_text,
        widget=forms.NumberInput(attrs={"autocomplete": "off", "inputmode": "numeric"}),
    )


class EdiPartnerForm(forms.Form):
    """A partner's settings (`EdiPartnerInput`): its ISA ids and ours, GS application ids, version,
    delimiters, usage, 997s, SFTP folders, the SFTP server's host key and our SSH private key, and
    where the control numbers continue. Secrets are never rendered back; what is stored is shown by
    the card. Problems from `edi_partner_configure` go back onto their fields with `add_problems`."""

    use_required_attribute = False

    their_qualifier = _code(_("Their ISA qualifier"), 2, _("ISA05 they send, like ZZ, 01 or 12."), size="3")
    their_id = _code(_("Their ISA id"), 15, _("ISA06 they send (up to 15 characters)."))
    our_qualifier = _code(_("Our ISA qualifier"), 2, size="3")
    our_id = _code(_("Our ISA id"), 15, _("ISA08 they address us with."))
    their_application_id = _code(_("Their GS application id"), 15, _("GS02 they send; empty: their ISA id."), required=False)
    our_application_id = _code(_("Our GS application id"), 15, _("GS03 they send us; empty: our ISA id."), required=False)
    version = _code(_("Interchange version (ISA12)"), 5, _("00401 for 4010, 00501 for 5010."), size="6")
    group_version = _code(_("Group version (GS08)"), 12, _("Like 004010 or 005010."), size="12")
    usage = forms.ChoiceField(label=_("Usage (ISA15)"), choices=EdiUsage.choices)
    element_separator = _code(_("Element separator"), 1, size="2")
    component_separator = _code(_("Component separator"), 1, size="2")
    segment_terminator = _code(_("Segment terminator"), 1, size="2")
    repetition_separator = _code(_("Repetition separator"), 1, _("ISA11 from version 00402 on."), size="2")
    wants_997 = forms.BooleanField(label=_("Answer every interchange with a 997"), required=False)
    inbound_folder = _code(_("Inbound folder"), 300, _("Where the partner drops files for Baton (SFTP)."))
    archive_folder = _code(_("Archive folder"), 300, _("Where taken files are moved."))
    error_folder = _code(_("Error folder"), 300, _("Where files that could not be stored go, with a .reason.txt beside each."))
    outbound_folder = _code(_("Outbound folder"), 300, _("Where Baton writes 997s for the partner."))
    sftp_host_key = forms.CharField(
        label=_("Server host key"),
        required=False,
        max_length=SSH_KEY_MAX_CHARS,
        help_text=_(
            "The SFTP server's public key, as ssh-keyscan prints it or a known_hosts line. Empty: keep the one pinned; "
            "with none pinned, the key the server presents at the first poll is pinned."
        ),
        widget=forms.Textarea(attrs={"rows": 2, "class": "code-input", "spellcheck": "false", "autocomplete": "off"}),
    )
    private_key = forms.CharField(
        label=_("SSH private key"),
        required=False,
        strip=False,
        max_length=SSH_KEY_MAX_CHARS,
        help_text=_(
            "To log in with a key: the whole key file (OpenSSH, PEM or PuTTY). Stored encrypted and never shown again. "
            "Empty: keep the stored one."
        ),
        widget=_SecretTextarea(
            attrs={
                "rows": 4,
                "class": "code-input",
                "spellcheck": "false",
                "autocomplete": "off",
                "autocapitalize": "off",
                "placeholder": "-----BEGIN OPENSSH PRIVATE KEY-----",
            }
        ),
    )
    passphrase = forms.CharField(
        label=_("Key passphrase"),
        required=False,
        max_length=1024,
        strip=False,
        help_text=_("Only when the key is encrypted."),
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password", "spellcheck": "false"}),
    )
    private_key_remove = forms.BooleanField(label=_("Remove the stored private key"), required=False)
    next_interchange_control_number = _control_number(
        _("Next interchange control number (ISA13)"),
        _(
            "Empty: Baton continues its own count. To continue a partner's sequence from another system, the number the next "
            "interchange gets; never one already used."
        ),
    )
    next_group_control_number = _control_number(_("Next group control number (GS06)"), _("Empty: Baton continues its own count."))

    # The fieldsets of the card, in order: (legend, field names).
    SECTIONS = (
        (_("Interchange ids"), ("their_qualifier", "their_id", "our_qualifier", "our_id", "their_application_id", "our_application_id")),
        (
            _("Version and delimiters"),
            ("version", "group_version", "usage", "element_separator", "component_separator", "segment_terminator", "repetition_separator"),
        ),
        (_("Control numbers and 997s"), ("next_interchange_control_number", "next_group_control_number", "wants_997")),
    )
    SFTP_FOLDERS = ("inbound_folder", "archive_folder", "error_folder", "outbound_folder")

    @classmethod
    def for_partner(cls, partner: EdiPartner | None) -> EdiPartnerForm:
        """The form for an existing partner's settings, or the defaults for a new one; the changes
        (keys, control numbers) start empty."""
        defaults = EdiPartnerInput(their_qualifier="ZZ", their_id="", our_qualifier="ZZ", our_id="")
        source: Any = partner if partner is not None else defaults
        return cls(initial={name: getattr(source, name) for name in PARTNER_FIELDS})

    def sections(self) -> list[tuple[Any, list[forms.BoundField]]]:
        return [(legend, [self[name] for name in names]) for legend, names in self.SECTIONS]

    def folders(self) -> list[forms.BoundField]:
        return [self[name] for name in self.SFTP_FOLDERS]

    def partner_input(self) -> EdiPartnerInput:
        return EdiPartnerInput(**{item.name: self.cleaned_data[item.name] for item in dataclasses.fields(EdiPartnerInput)})

    def add_problems(self, problems: list[ConnectionProblem]) -> None:
        for problem in problems:
            name = problem.pointer.lstrip("/")
            self.add_error(name if name in self.fields else None, problem.reason)
