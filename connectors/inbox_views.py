"""The inbox pages: the inbound event log (filters, search, counts by status, keyset pages), the
quarantine (counts by connection and reason, replay all shown), and one event (headers, body,
what normalization made of it, its pending dispatch, its replays; Replay and Fix and replay).

Tenant staff may look, like the connections pages; the connections' editors replay, through
`connectors.inbox.inbound_replay`, which audits each replay.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST

from accounts.permissions import tenant_role_required
from connectors.forms import InboxFilterForm, ReplayForm
from connectors.inbox import InboxError, inbound_replay
from connectors.models import InboundEvent, InboundStatus
from connectors.selectors import (
    connections_taking_events,
    inbound_event_dispatch,
    inbound_event_get,
    inbound_event_is_json,
    inbound_event_replays,
    inbound_events_list,
    inbound_fix_of,
    inbound_status_counts,
    keyset_page,
    quarantine_groups,
)
from connectors.views import EDITORS, can_edit

PER_PAGE = 25
BULK_REPLAY_LIMIT = 100  # a page's worth, with room: "replay all shown" never sends more
BODY_LINES_SHOWN = 5000
FILTER_NAMES = ("q", "connection", "status", "channel", "received_from", "received_to")


def _cursor(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


@tenant_role_required()
def inbox(request: HttpRequest) -> HttpResponse:
    form = InboxFilterForm(request.GET)
    filters = form.filters()
    events = inbound_events_list(filters)
    page = keyset_page(events, before=_cursor(request.GET.get("before")), after=_cursor(request.GET.get("after")), size=PER_PAGE)
    counts = inbound_status_counts(filters)
    shown = {name: request.GET[name] for name in FILTER_NAMES if request.GET.get(name)}
    kept = {name: value for name, value in shown.items() if name != "status"}
    quarantine_view = filters.status == InboundStatus.QUARANTINED
    context = {
        "form": form,
        "filters": filters,
        "page": page,
        "rows": [_row(event) for event in page.rows],
        "counts": counts,
        "total": sum(counts.values()),
        "status_links": [
            (value, label, counts[value], "?" + urlencode({**kept, "status": value})) for value, label in InboundStatus.choices
        ],
        "all_link": "?" + urlencode(kept),
        "page_query": urlencode(shown),
        "connections": connections_taking_events(),
        "groups": quarantine_groups() if quarantine_view and counts[InboundStatus.QUARANTINED] else [],
        "quarantine_view": quarantine_view,
        "replayable": [event.pk for event in page.rows if event.status == InboundStatus.QUARANTINED],
        "can_edit": can_edit(request.user),
        "filtered": filters.active,
        "others_filtered": bool(filters.connection or filters.channel or filters.received_from or filters.received_to or filters.query),
    }
    return render(request, "connectors/inbox.html", context)


def _row(event: InboundEvent) -> dict[str, Any]:
    """What the log shows of an event: the canonical events it became, or why it could not."""
    became = [
        {"event_type": item.get("event_type", ""), "correlation": sorted((item.get("correlation") or {}).items())}
        for item in event.canonical
        if isinstance(item, dict)
    ]
    return {"event": event, "became": became}


def _event_or_404(event_id: int) -> InboundEvent:
    event = inbound_event_get(event_id=event_id)
    if event is None:
        raise Http404(f"There is no inbound event {event_id} in this workspace.")
    return event


@dataclass(frozen=True)
class BodyLine:
    text: str
    marked: bool


def _pretty_lines(value: Any, pointer: str, indent: str, prefix: str, trailing: str) -> list[tuple[str, str]]:
    """`json.dumps(value, indent=2)`'s lines, each with the JSON pointer of the value it opens or holds."""
    if isinstance(value, dict | list) and value:
        opening, closing = ("{", "}") if isinstance(value, dict) else ("[", "]")
        items = list(value.items()) if isinstance(value, dict) else list(enumerate(value))
        lines = [(f"{indent}{prefix}{opening}", pointer)]
        for index, (key, item) in enumerate(items):
            label = json.dumps(key, ensure_ascii=False) + ": " if isinstance(value, dict) else ""
            lines += _pretty_lines(item, f"{pointer}/{key}", indent + "  ", label, "," if index < len(items) - 1 else "")
        return [*lines, (f"{indent}{closing}{trailing}", pointer)]
    return [(f"{indent}{prefix}{json.dumps(value, ensure_ascii=False)}{trailing}", pointer)]


@dataclass(frozen=True)
class ShownBody:
    """A body as the event page shows it: pretty-printed when it is JSON, with the quarantine's
    pointer marked (or the nearest enclosing value it would belong to, when the body lacks it)."""

    lines: list[BodyLine]
    is_json: bool
    pretty: str  # what the fix box starts with
    pointer_found: bool
    pointer_parent: str
    truncated: bool


def shown_body(body: str, pointer: str) -> ShownBody:
    try:
        document = json.loads(body)
    except ValueError:
        raw = body.splitlines() or [""]
        return ShownBody([BodyLine(line, False) for line in raw[:BODY_LINES_SHOWN]], False, body, False, "", len(raw) > BODY_LINES_SHOWN)
    numbered = _pretty_lines(document, "", "", "", "")
    present = {where for _text, where in numbered}
    found = pointer in present
    parent = pointer
    while parent and parent not in present:
        parent = parent.rsplit("/", 1)[0]
    if not pointer:
        lines = [BodyLine(text, False) for text, _where in numbered]
    elif found:
        lines = [BodyLine(text, where == pointer or where.startswith(pointer + "/")) for text, where in numbered]
    else:
        # Where the missing value would go: a marked note just inside the object it belongs in.
        opening = next(index for index, (_text, where) in enumerate(numbered) if where == parent)
        text = numbered[opening][0]
        indent = text[: len(text) - len(text.lstrip())] + "  "
        missing = pointer[len(parent) :].lstrip("/").split("/")[0]
        lines = [BodyLine(text, False) for text, _where in numbered]
        lines.insert(opening + 1, BodyLine(indent + _("← “%(name)s” is missing here") % {"name": missing}, True))
    pretty = json.dumps(document, indent=2, ensure_ascii=False)
    return ShownBody(lines[:BODY_LINES_SHOWN], True, pretty, found, parent, len(lines) > BODY_LINES_SHOWN)


def _event_page(request: HttpRequest, event: InboundEvent, *, replay_form: ReplayForm | None = None, status: int = 200) -> HttpResponse:
    body = shown_body(event.body, event.error_pointer if event.status == InboundStatus.QUARANTINED else "")
    editor = can_edit(request.user)
    if replay_form is None:
        replay_form = ReplayForm(initial={"body": body.pretty}, json_body=inbound_event_is_json(event))
    canonical = [
        {
            "event_type": item.get("event_type", ""),
            "event_id": item.get("event_id", ""),
            "correlation": sorted((item.get("correlation") or {}).items()),
            "payload": json.dumps(item.get("payload", {}), indent=2, ensure_ascii=False),
            "woken_runs": item.get("woken_runs", []),
            "started_runs": item.get("started_runs", []),
        }
        for item in event.canonical
        if isinstance(item, dict)
    ]
    context = {
        "event": event,
        "connection": event.connection,
        "headers": sorted(event.headers.items(), key=lambda item: item[0].lower()),
        "body": body,
        "original": shown_body(event.original_body, "") if event.original_body else None,
        "canonical": canonical,
        "dispatch": inbound_event_dispatch(event),
        "replays": list(inbound_event_replays(event)),
        "can_replay": editor and event.status == InboundStatus.QUARANTINED,
        "replay_form": replay_form,
        "fix_open": replay_form.is_bound,
    }
    return render(request, "connectors/inbound_event.html", context, status=status)


@tenant_role_required()
def inbound_event(request: HttpRequest, event_id: int) -> HttpResponse:
    return _event_page(request, _event_or_404(event_id))


@require_POST
@tenant_role_required(*EDITORS)
def inbound_event_replay(request: HttpRequest, event_id: int) -> HttpResponse:
    """Replay as it is, or (with `fix`) with the body from the fix box; a fixed body that means
    the same JSON as the stored one is no fix, so the original bytes stay."""
    event = _event_or_404(event_id)
    body: str | None = None
    if request.POST.get("fix"):
        form = ReplayForm(request.POST, json_body=inbound_event_is_json(event))
        if not form.is_valid():
            return _event_page(request, event, replay_form=form, status=400)
        body = form.cleaned_data["body"]
        if body is None:
            form.add_error("body", _("The fixed body is empty: write the body to send, or use “Replay as it is”."))
            return _event_page(request, event, replay_form=form, status=400)
        body = inbound_fix_of(event, body)
    try:
        inbound_replay(event=event, actor=request.user, body=body)
    except InboxError as error:
        messages.error(request, str(error))
    else:
        if body is not None:
            done = _("Event %(event)s sent through again with your fixed body: it is handed on in a moment.")
        else:
            done = _("Event %(event)s sent through again: it is handed on in a moment.")
        messages.success(request, done % {"event": event.pk})
    return redirect(reverse("connectors:inbound_event", args=[event.pk]))


@require_POST
@tenant_role_required(*EDITORS)
def inbox_replay_all(request: HttpRequest) -> HttpResponse:
    """“Replay all shown”: the quarantined events of the page the operator was looking at, each
    through `inbound_replay` (each audited); any no longer quarantined is left alone and counted."""
    ids = [int(value) for value in request.POST.getlist("event") if value.isdigit()][:BULK_REPLAY_LIMIT]
    replayed, skipped = 0, 0
    for event_id in ids:
        event = inbound_event_get(event_id=event_id)
        if event is None:
            skipped += 1
            continue
        try:
            inbound_replay(event=event, actor=request.user)
        except InboxError:
            skipped += 1
        else:
            replayed += 1
    if replayed:
        note = (
            " "
            + ngettext(
                "%(count)d was no longer quarantined and left alone.", "%(count)d were no longer quarantined and left alone.", skipped
            )
            % {"count": skipped}
            if skipped
            else ""
        )
        sent = ngettext("%(count)d event sent through again.", "%(count)d events sent through again.", replayed) % {"count": replayed}
        messages.success(request, sent + note)
    else:
        messages.error(request, _("Nothing was replayed: none of these events is quarantined any more."))
    shown = QueryDict(request.POST.get("filters", ""))
    query = urlencode({name: shown[name] for name in FILTER_NAMES if shown.get(name)})
    return redirect(reverse("connectors:inbox") + (f"?{query}" if query else ""))
