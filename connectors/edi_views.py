"""EDI pages: uploading an interchange for a partner connection and seeing what became of it (the
inbound event, its status, every error with its position, the 997 once dispatched), and the form
for a partner's settings.

Tenant staff may look; the connections' editors upload, through `connectors.edi_transport.edi_receive`
(channel `upload`), the same path as the API and SFTP polling, so a resent file is a duplicate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from accounts.permissions import tenant_role_required
from connectors.edi import parse
from connectors.edi_transport import EDI_MAX_BYTES, EdiRefused, edi_receive
from connectors.models import Connection, EdiAcknowledgement, EdiPartner, InboundEvent, InboundStatus
from connectors.selectors import connection_by_key
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
