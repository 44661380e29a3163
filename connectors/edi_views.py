"""EDI pages: uploading interchanges for a partner connection and seeing what became of them (an
inbound event per interchange in the file, its status, every error with its position, the 997 once
dispatched). The partner's settings form is on the connection page (`connectors.views`).

Tenant staff may look; the connections' editors upload, through `connectors.edi_transport.edi_receive`
(channel `upload`), the same path as the API and SFTP polling, so a resent interchange is a duplicate.
Reads are `connectors.edi_selectors`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from accounts.permissions import tenant_role_required
from connectors.edi_selectors import edi_partner_by_key, edi_upload_results, edi_uploads_recent
from connectors.edi_transport import EDI_MAX_BYTES, EdiRefused, FileReceived, edi_receive
from connectors.models import Connection, EdiPartner
from connectors.views import can_edit


class EdiUploadForm(forms.Form):
    """Interchanges: a file (one or several back to back), or pasted text."""

    use_required_attribute = False

    file = forms.FileField(
        label=_("Interchange file"),
        required=False,
        help_text=_("An X12 file (.edi, .x12, .txt) of one or more interchanges, at most 20 MiB."),
    )
    interchange = forms.CharField(
        label=_("Or paste the interchange"),
        required=False,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 6, "spellcheck": "false", "class": "code-input", "placeholder": "ISA*00*          *00*…"}),
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        upload, pasted = data.get("file"), data.get("interchange") or ""
        if upload and pasted.strip():
            raise forms.ValidationError(gettext("Choose a file or paste an interchange, not both."))
        if upload:
            if upload.size > EDI_MAX_BYTES:
                self.add_error(
                    "file",
                    gettext("The file is %(size)s bytes; Baton takes interchanges of at most %(limit)s bytes.")
                    % {"size": upload.size, "limit": EDI_MAX_BYTES},
                )
            elif not upload.size:
                self.add_error("file", gettext("The file is empty."))
            else:
                data["data"], data["file_name"] = upload.read(), upload.name
        elif pasted.strip():
            data["data"], data["file_name"] = pasted, ""
        else:
            raise forms.ValidationError(gettext("Choose an interchange file, or paste one."))
        return data


def _partner_or_404(key: str) -> tuple[Connection, EdiPartner]:
    found = edi_partner_by_key(key=key)
    if found is None:
        raise Http404(f"There is no EDI partner connection '{key}' in this workspace.")
    return found


def _stored_message(received: FileReceived) -> tuple[int, str]:
    """The message level and words for what an upload stored."""
    if received.duplicate:
        events = ", ".join(str(part.event.pk) for part in received.parts)
        if len(received.parts) > 1:
            again_words = gettext("These interchanges were received before, as events %(events)s: nothing was stored again.")
        else:
            again_words = gettext("This interchange was received before, as event %(events)s: nothing was stored again.")
        return messages.INFO, again_words % {"events": events}
    if len(received.parts) == 1:
        return messages.SUCCESS, gettext("Stored as event %(event)s: it is read and answered in a moment.") % {"event": received.event.pk}
    interchanges, outside = received.interchanges, received.outside
    words = ngettext(
        "The file holds %(count)d interchange: stored as event %(events)s",
        "The file holds %(count)d interchanges: stored as events %(events)s",
        len(interchanges),
    ) % {"count": len(interchanges), "events": ", ".join(str(part.event.pk) for part in interchanges)}
    again = [part for part in received.parts if part.duplicate]
    if again:
        words += gettext(" (%(events)s received before)") % {"events": ", ".join(str(part.event.pk) for part in again)}
    if outside:
        words += ngettext(
            "; the text outside them is event %(events)s, quarantined",
            "; the text outside them is events %(events)s, quarantined",
            len(outside),
        ) % {"events": ", ".join(str(part.event.pk) for part in outside)}
    return messages.SUCCESS, words + gettext(". Each is read and answered on its own in a moment.")


@tenant_role_required()
def edi_upload(request: HttpRequest, key: str) -> HttpResponse:
    """GET: the upload form, the result of `?event=<id>` (repeated for a file of several
    interchanges), the recent uploads. POST (editors): store the file's interchanges."""
    connection, partner = _partner_or_404(key)
    editor = can_edit(request.user)
    form = EdiUploadForm()
    status = 200
    if request.method == "POST":
        if not editor:
            raise PermissionDenied(gettext("Tenant admins and planners upload interchanges."))
        form = EdiUploadForm(request.POST, request.FILES)
        if form.is_valid():
            try:
                received = edi_receive(
                    connection=connection, data=form.cleaned_data["data"], channel="upload", file_name=form.cleaned_data["file_name"]
                )
            except EdiRefused as refused:
                form.add_error(None, str(refused))
            else:
                level, words = _stored_message(received)
                messages.add_message(request, level, words)
                query = urlencode([("event", part.event.pk) for part in received.parts])
                return redirect(reverse("connectors:edi_upload", args=[connection.key]) + f"?{query}")
        status = 400
    results = edi_upload_results(connection=connection, event_ids=request.GET.getlist("event"))
    context = {
        "connection": connection,
        "partner": partner,
        "form": form,
        "can_upload": editor,
        "results": results,
        "waiting": any(result.waiting for result in results),
        "recent": edi_uploads_recent(connection=connection),
    }
    return render(request, "connectors/edi_upload.html", context, status=status)
