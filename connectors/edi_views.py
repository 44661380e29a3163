"""EDI pages: uploading an interchange for a partner connection and seeing what became of it (the
inbound event, its status, every error with its position, the 997 once dispatched), and the form
for a partner's settings.

Tenant staff may look; the connections' editors upload, through `connectors.edi_transport.edi_receive`
(channel `upload`), the same path as the API and SFTP polling, so a resent file is a duplicate.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from accounts.permissions import tenant_role_required
from connectors.edi import parse
from connectors.edi_transport import EDI_MAX_BYTES, EdiPartnerInput, EdiRefused, edi_receive
from connectors.models import Connection, EdiAcknowledgement, EdiPartner, EdiUsage, InboundEvent, InboundStatus
from connectors.selectors import connection_by_key
from connectors.services import ConnectionProblem
from connectors.views import can_edit

ERRORS_SHOWN = 100
RECENT_UPLOADS = 10


class EdiUploadForm(forms.Form):
    """One interchange: a file, or pasted text."""

    use_required_attribute = False

    file = forms.FileField(label="Interchange file", required=False, help_text="An X12 file (.edi, .x12, .txt), at most 20 MiB.")
    interchange = forms.CharField(
        label="Or paste the interchange",
        required=False,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 6, "spellcheck": "false", "class": "code-input", "placeholder": "ISA*00*          *00*…"}),
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        upload, pasted = data.get("file"), data.get("interchange") or ""
        if upload and pasted.strip():
            raise forms.ValidationError("Choose a file or paste an interchange, not both.")
        if upload:
            if upload.size > EDI_MAX_BYTES:
                self.add_error("file", f"The file is {upload.size} bytes; Baton takes interchanges of at most {EDI_MAX_BYTES} bytes.")
            elif not upload.size:
                self.add_error("file", "The file is empty.")
            else:
                data["data"] = upload.read()
        elif pasted.strip():
            data["data"] = pasted
        else:
            raise forms.ValidationError("Choose an interchange file, or paste one.")
        return data


def _code(label: str, max_length: int, help_text: str = "", *, required: bool = True, size: str = "") -> forms.CharField:
    attrs = {"autocomplete": "off", "spellcheck": "false", **({"size": size} if size else {})}
    return forms.CharField(label=label, max_length=max_length, help_text=help_text, required=required, widget=forms.TextInput(attrs=attrs))


class EdiPartnerForm(forms.Form):
    """A partner's settings (`EdiPartnerInput`): its ISA ids and ours, GS application ids, version,
    delimiters, usage, 997s, SFTP folders. Problems from `edi_partner_configure` go back onto
    their fields with `add_problems`."""

    use_required_attribute = False

    their_qualifier = _code("Their ISA qualifier", 2, "ISA05 they send, like ZZ, 01 or 12.", size="3")
    their_id = _code("Their ISA id", 15, "ISA06 they send (up to 15 characters).")
    our_qualifier = _code("Our ISA qualifier", 2, size="3")
    our_id = _code("Our ISA id", 15, "ISA08 they address us with.")
    their_application_id = _code("Their GS application id", 15, "GS02 they send; empty: their ISA id.", required=False)
    our_application_id = _code("Our GS application id", 15, "GS03 they send us; empty: our ISA id.", required=False)
    version = _code("Interchange version (ISA12)", 5, "00401 for 4010, 00501 for 5010.", size="6")
    group_version = _code("Group version (GS08)", 12, "Like 004010 or 005010.", size="12")
    usage = forms.ChoiceField(label="Usage (ISA15)", choices=EdiUsage.choices)
    element_separator = _code("Element separator", 1, size="2")
    component_separator = _code("Component separator", 1, size="2")
    segment_terminator = _code("Segment terminator", 1, size="2")
    repetition_separator = _code("Repetition separator", 1, "ISA11 from version 00402 on.", size="2")
    wants_997 = forms.BooleanField(label="Answer every interchange with a 997", required=False)
    inbound_folder = _code("Inbound folder", 300, "Where the partner drops files for Baton (SFTP).")
    archive_folder = _code("Archive folder", 300, "Where taken files are moved.")
    error_folder = _code("Error folder", 300, "Where files that could not be stored go, with a .reason.txt beside each.")
    outbound_folder = _code("Outbound folder", 300, "Where Baton writes 997s for the partner.")

    @classmethod
    def for_partner(cls, partner: EdiPartner | None) -> EdiPartnerForm:
        """The form for an existing partner's settings, or the defaults for a new one."""
        defaults = EdiPartnerInput(their_qualifier="ZZ", their_id="", our_qualifier="ZZ", our_id="")
        source: Any = partner if partner is not None else defaults
        return cls(initial={item.name: getattr(source, item.name) for item in fields(EdiPartnerInput)})

    def partner_input(self) -> EdiPartnerInput:
        return EdiPartnerInput(**{item.name: self.cleaned_data[item.name] for item in fields(EdiPartnerInput)})

    def add_problems(self, problems: list[ConnectionProblem]) -> None:
        for problem in problems:
            name = problem.pointer.lstrip("/")
            self.add_error(name if name in self.fields else None, problem.reason)


@dataclass(frozen=True)
class ErrorRow:
    where: str
    code: str
    message: str


def _partner_or_404(key: str) -> tuple[Connection, EdiPartner]:
    connection = connection_by_key(key=key)
    partner = EdiPartner.objects.filter(connection=connection).first() if connection is not None else None
    if connection is None or partner is None:
        raise Http404(f"There is no EDI partner connection '{key}' in this workspace.")
    return connection, partner


def _result(connection: Connection, event_id: str) -> dict[str, Any] | None:
    """What became of an event of this connection: status, errors with positions, the 997."""
    event = InboundEvent.objects.filter(connection=connection, pk=int(event_id)).first() if event_id.isdigit() else None
    if event is None:
        return None
    errors = parse(event.body).errors
    rows = [ErrorRow(error.position.describe(), error.code, error.message) for error in errors[:ERRORS_SHOWN]]
    return {
        "event": event,
        "waiting": event.status == InboundStatus.RECEIVED,
        "errors": rows,
        "errors_total": len(errors),
        "milestones": len(event.canonical),
        "outbox": EdiAcknowledgement.objects.filter(event=event).first(),
    }


@tenant_role_required()
def edi_upload(request: HttpRequest, key: str) -> HttpResponse:
    """GET: the upload form, the result of `?event=<id>`, the recent uploads. POST (editors): store the interchange."""
    connection, partner = _partner_or_404(key)
    editor = can_edit(request.user)
    form = EdiUploadForm()
    status = 200
    if request.method == "POST":
        if not editor:
            raise PermissionDenied("Tenant admins and planners upload interchanges.")
        form = EdiUploadForm(request.POST, request.FILES)
        if form.is_valid():
            try:
                received = edi_receive(connection=connection, data=form.cleaned_data["data"], channel="upload")
            except EdiRefused as refused:
                form.add_error(None, str(refused))
            else:
                if received.duplicate:
                    messages.info(request, f"This interchange was received before, as event {received.event.pk}: nothing was stored again.")
                else:
                    messages.success(request, f"Stored as event {received.event.pk}: it is read and answered in a moment.")
                return redirect(reverse("connectors:edi_upload", args=[connection.key]) + f"?event={received.event.pk}")
        status = 400
    context = {
        "connection": connection,
        "partner": partner,
        "form": form,
        "can_upload": editor,
        "result": _result(connection, request.GET.get("event", "")),
        "recent": InboundEvent.objects.filter(connection=connection, channel="upload").order_by("-pk")[:RECENT_UPLOADS],
    }
    return render(request, "connectors/edi_upload.html", context, status=status)
