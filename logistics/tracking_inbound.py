"""Partners' tracking events applied to the tenant's shipments, and the delays they reveal.

Inbound. Canonical `shipment.milestone` events (EasyPost-style tracker webhooks, X12 214
milestones, the events API) reach `milestones_apply` through the inbox's consumer hook
(`connectors.inbox.inbound_consumer_register`), a dispatch batch at a time, in the batch's
transaction. Each event names its shipment by reference – PRO, BOL, our shipment number, PO, in
that order, each an exact indexed look-up; several shipments behind one PRO are told apart by the
carrier's SCAC. An event for a shipment the tenant does not have is no failure: its note says so
("no shipment with PRO X") and the raw event stays in the inbox. The others are recorded by
`tracking_events_record_many`, the batch form of `logistics.services.tracking_event_record` with
the same rules (the dedupe key, the progression that never moves backwards, ETAs, stops) in a
handful of statements for the whole batch instead of several per event.

Raw codes are read through the tenant's active mapping tables, not the connector's built-in
ones. A 214 estimate code (AG, X2…) carries the estimated time in its AT7 date: it becomes the
event's ETA, made when Baton received it. Repeats are recognised by content (source, code,
reason, time, ETA), so a 214 sent again or a tracker webhook repeated under a new id change
nothing; events from the events API by their event id.

Delays. An applied event saying delivery delayed, delivery failed or on hold; an ETA later than
the promise (the last delivery stop's appointment end, else the planned ETA) by more than the
customer tier's on-time grace; a pickup appointment that ended with the shipment not picked up
(`pickups_missed_scan`, per tenant from beat): each becomes a canonical Baton event
`shipment.delay_detected`, handed to workflows as the inbox hands on its events (waiting runs
woken, event triggers started), once per shipment and cause – its event id is
`delay:<shipment id>:<cause>`, and a shipment with that kind of exception open is not told again.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from celery import shared_task
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from governance.services import Actor, audit_record
from logistics import mapping_defaults
from logistics.models import (
    OPEN_EXCEPTION,
    CustomerAccount,
    EventSource,
    ExceptionCase,
    ExceptionType,
    MappingKind,
    MappingVersionStatus,
    Severity,
    Shipment,
    SlaPolicy,
    StatusMappingEntry,
    StatusMappingVersion,
    Stop,
    StopKind,
    TrackingEvent,
)
from logistics.notifications import notifications_collect
from logistics.selectors import MappedCode, reference_normalized

# The service's own rules, public so that the batch form cannot drift from them.
from logistics.services import (
    SOURCE_MAPPINGS,
    LogisticsRefused,
    TrackingEventInvalid,
    TrackingEventOutcome,
    actor_is_person,
    decimal_checked,
    moment_checked,
    stop_times_at,
    tracking_dedupe_key,
)
from logistics.vocabulary import ARRIVALS, DEPARTURES, TrackingStatus, is_terminal, rank
from tenants.db import connection, rows_copy, rows_json

if TYPE_CHECKING:
    from connectors.normalize import CanonicalEvent

MILESTONE_EVENT = "shipment.milestone"
DELAY_EVENT = "shipment.delay_detected"
INBOUND = Actor.system("logistics:tracking-inbound")
DETECTOR = Actor.system("logistics:delay-detector")

# Correlation keys that name a shipment, in the order they are tried, with the field they match.
REFERENCE_KEYS: tuple[tuple[str, str, str], ...] = (
    ("pro", "pro_number", "PRO"),
    ("bol", "bol_number", "BOL"),
    ("shipment", "reference", "shipment number"),
    ("po", "po_number", "PO"),
)
# Where a canonical payload's `source` says the event came from.
PAYLOAD_SOURCES = {"x12 214": EventSource.X12_214, "easypost": EventSource.CARRIER_API, "telemetry": EventSource.TELEMETRY}
# Statuses that are delays by themselves, and the exception each one is.
DELAY_STATUSES: dict[str, str] = {
    TrackingStatus.DELIVERY_DELAYED: ExceptionType.DELAY,
    TrackingStatus.ON_HOLD: ExceptionType.DELAY,
    TrackingStatus.DELIVERY_FAILED: ExceptionType.MISSED_DELIVERY,
}
ETA_LATE = "eta_late"
PICKUP_MISSED = "pickup_missed"
# A shipment in one of these at the end of its pickup appointment was not picked up.
NOT_PICKED_UP = (TrackingStatus.PENDING, TrackingStatus.TENDERED, TrackingStatus.TENDER_ACCEPTED)
PICKUP_SCAN_HORIZON = timedelta(days=3)  # appointments older than this are history, not news
# What recording events changes on a shipment (`tracking_event_record`'s fields), with SQL types.
_SHIPMENT_COLUMNS = (
    ("status", "text"),
    ("status_at", "timestamptz"),
    ("status_event_id", "bigint"),
    ("eta", "timestamptz"),
    ("eta_at", "timestamptz"),
    ("eta_event_id", "bigint"),
    ("original_eta", "timestamptz"),
    ("original_eta_at", "timestamptz"),
    ("delivered_at", "timestamptz"),
    ("updated_at", "timestamptz"),
)


# --- mapping tables, a batch at a time -----------------------------------------------------------


def mappings_translate_many(pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], MappedCode]:
    """`selectors.mapping_translate` for many (kind, code) pairs: two queries for them all.
    Keys are the pairs as given."""
    wanted = {(kind, code): (kind, mapping_defaults.code_normalized(kind, code)) for kind, code in pairs}
    if not wanted:
        return {}
    kinds = {kind for kind, _code in wanted.values()}
    versions = {
        version.kind: version for version in StatusMappingVersion.objects.filter(kind__in=kinds, status=MappingVersionStatus.ACTIVE)
    }
    entries = {
        (entry.version.kind, entry.code): entry
        for entry in StatusMappingEntry.objects.filter(
            version__in=list(versions.values()), code__in={code for _kind, code in wanted.values()}
        )
        .select_related("version")
        .only("code", "description", "status", "estimate", "signal", "version__kind", "version__number")
    }
    translated: dict[tuple[str, str], MappedCode] = {}
    for pair, normal in wanted.items():
        entry = entries.get(normal)
        if entry is None:
            translated[pair] = MappedCode(TrackingStatus.UNKNOWN, False, "", "", versions.get(normal[0]), False)
        else:
            translated[pair] = MappedCode(
                entry.status or TrackingStatus.UNKNOWN, entry.estimate, entry.signal, entry.description, entry.version, True
            )
    return translated


# --- tracking events, a batch at a time ------------------------------------------------------------


@dataclass(frozen=True)
class TrackingReport:
    """One event for `tracking_events_record_many`: the arguments of `tracking_event_record`,
    with the shipment by id."""

    shipment_id: int
    occurred_at: datetime
    source: str
    status: str = ""
    raw_code: str = ""
    raw_reason: str = ""
    received_at: datetime | None = None
    estimate: bool | None = None
    eta: datetime | None = None
    dedupe_key: str = ""
    stop_sequence: int | None = None
    latitude: Any = None
    longitude: Any = None
    location_text: str = ""
    message: str = ""


@dataclass
class _Checked:
    """A report past the service's checks: its status, mapping and key."""

    report: TrackingReport
    status: str
    mapped: MappedCode | None
    reason: MappedCode | None
    estimate: bool
    key: str
    latitude: Any
    longitude: Any
    notes: list[str]


def _checked(report: TrackingReport, translations: dict[tuple[str, str], MappedCode]) -> _Checked:
    """The checks of `tracking_event_record`, in its order, raising TrackingEventInvalid alike."""
    source = report.source
    if source not in EventSource.values:
        raise TrackingEventInvalid(f"{source!r} is not an event source: use one of {', '.join(EventSource.values)}", "source")
    moment_checked(report.occurred_at, "occurred_at", TrackingEventInvalid)
    moment_checked(report.received_at, "received_at", TrackingEventInvalid)
    moment_checked(report.eta, "eta", TrackingEventInvalid)
    raw_code, raw_reason = report.raw_code.strip(), report.raw_reason.strip()
    status = report.status
    mapped: MappedCode | None = None
    if status:
        if status not in TrackingStatus.values:
            raise TrackingEventInvalid(f"{status!r} is not a tracking status: use one of {', '.join(TrackingStatus.values)}", "status")
    elif raw_code and source in SOURCE_MAPPINGS:
        mapped = translations[(SOURCE_MAPPINGS[source], raw_code)]
        status = mapped.status
    else:
        raise TrackingEventInvalid(
            "An event needs a status, or a raw code from a source with a mapping table (EDI 214 or a carrier API).", "status"
        )
    reason = translations[(MappingKind.X12_214_REASON, raw_reason)] if raw_reason and source == EventSource.X12_214 else None
    estimate = bool(report.estimate if report.estimate is not None else (mapped.estimate if mapped else False))
    latitude = decimal_checked(report.latitude, "latitude", TrackingEventInvalid)
    longitude = decimal_checked(report.longitude, "longitude", TrackingEventInvalid)
    key = report.dedupe_key.strip()[:200] or tracking_dedupe_key(
        source, raw_code or status, raw_reason, report.occurred_at, report.stop_sequence, report.eta
    )
    notes: list[str] = []
    if mapped is not None and not mapped.found:
        table = SOURCE_MAPPINGS[source]
        where = f"{table} v{mapped.version.number}" if mapped.version else f"any active {table} table"
        notes.append(f"code {raw_code!r} is not in {where}: stored as unknown")
    return _Checked(report, status, mapped, reason, estimate, key, latitude, longitude, notes)


def _translation_pairs(reports: Iterable[TrackingReport]) -> set[tuple[str, str]]:
    pairs: set[tuple[str, str]] = set()
    for report in reports:
        if not report.status and report.raw_code.strip() and report.source in SOURCE_MAPPINGS:
            pairs.add((SOURCE_MAPPINGS[report.source], report.raw_code.strip()))
        if report.raw_reason.strip() and report.source == EventSource.X12_214:
            pairs.add((MappingKind.X12_214_REASON, report.raw_reason.strip()))
    return pairs


def _outranks(new: tuple[str | None, datetime, str], current: tuple[str | None, datetime | None, str | None]) -> bool:
    """`services._beats` on values held in memory: the current value's setter is known by its
    dedupe key (None: no event set it, a planned value any event beats)."""
    status, occurred_at, key = new
    current_status, current_at, current_key = current
    if status is not None and current_status is not None and rank(status) != rank(current_status):
        return rank(status) > rank(current_status)
    if current_key is None or current_at is None:
        return True
    if occurred_at != current_at:
        return occurred_at > current_at
    return key > current_key


def _stop_of(stops: list[Stop], status: str, stop_sequence: int | None) -> Stop | None:
    """`services._event_stop` over the shipment's stops (in sequence order)."""
    if stop_sequence is not None:
        return next((stop for stop in stops if stop.sequence == stop_sequence), None)
    kind = ARRIVALS.get(status) or DEPARTURES.get(status)
    if kind is None:
        return None
    of_kind = [stop for stop in stops if stop.kind == kind]
    if not of_kind:
        return None
    return of_kind[0] if kind == StopKind.PICKUP else of_kind[-1]


@dataclass
class _ShipmentState:
    """A locked shipment and the dedupe keys of the events that set its status and ETA."""

    shipment: Shipment
    status_key: str | None
    eta_key: str | None
    stops: list[Stop] = field(default_factory=list)
    changed: set[str] = field(default_factory=set)
    status_event: TrackingEvent | None = None
    eta_event: TrackingEvent | None = None


# The shipments and stops a batch changed, written with one statement each. (Django's
# bulk_update builds a CASE per field and row: most of a batch's time went into building it.) Their
# rows are bound as one JSON document (`tenants.db.rows_json`).
_SHIPMENTS_WRITE = f"""
UPDATE logistics_shipment AS shipment SET {", ".join(f"{column} = batch.{column}" for column, _type in _SHIPMENT_COLUMNS)}
FROM jsonb_to_recordset(%s::jsonb) AS batch(id bigint, {", ".join(f"{column} {kind}" for column, kind in _SHIPMENT_COLUMNS)})
WHERE shipment.id = batch.id
"""
_STOPS_WRITE = """
UPDATE logistics_stop AS stop SET arrived_at = batch.arrived_at, departed_at = batch.departed_at, dwell = batch.dwell
FROM jsonb_to_recordset(%s::jsonb) AS batch(id bigint, arrived_at timestamptz, departed_at timestamptz, dwell interval)
WHERE stop.id = batch.id
"""


_EVENT_FIELDS = [field for field in TrackingEvent._meta.concrete_fields if field.column != "id"]
_EVENT_COLUMNS = ("id", *(str(field.column) for field in _EVENT_FIELDS))


def _events_write(events: list[TrackingEvent]) -> None:
    """The batch's new events: their ids drawn from the table's sequence in one statement, the
    rows written with one COPY (a 214 file brings a thousand events to a batch, and binding them
    into a multi-row INSERT cost more than the rest of the batch's statements together)."""
    if not events:
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT nextval(pg_get_serial_sequence('logistics_trackingevent', 'id')) FROM generate_series(1, %s)", [len(events)])
        ids = [row[0] for row in cursor.fetchall()]
    for event, pk in zip(events, ids, strict=True):
        event.pk = pk
        event._state.adding = False
    rows_copy(
        "logistics_trackingevent",
        _EVENT_COLUMNS,
        ([event.pk, *(field.get_db_prep_save(getattr(event, field.attname), connection) for field in _EVENT_FIELDS)] for event in events),
    )


def _shipments_write(shipments: list[Shipment]) -> None:
    if shipments:
        rows = ({"id": shipment.pk, **{column: getattr(shipment, column) for column, _type in _SHIPMENT_COLUMNS}} for shipment in shipments)
        with connection.cursor() as cursor:
            cursor.execute(_SHIPMENTS_WRITE, [rows_json(rows)])


def _stops_write(stops: list[Stop]) -> None:
    if stops:
        rows = ({"id": stop.pk, "arrived_at": stop.arrived_at, "departed_at": stop.departed_at, "dwell": stop.dwell} for stop in stops)
        with connection.cursor() as cursor:
            cursor.execute(_STOPS_WRITE, [rows_json(rows)])


def tracking_events_record_many(
    reports: Sequence[TrackingReport],
    *,
    actor: Any,
    translations: dict[tuple[str, str], MappedCode] | None = None,
) -> list[TrackingEventOutcome | LogisticsRefused]:
    """Record a batch of events with exactly the rules of `tracking_event_record`, as if each
    were recorded alone in the given order: per report its outcome, or the TrackingEventInvalid
    the service would have raised (the others are recorded all the same). The shipments are
    locked in id order, and the whole batch costs a few statements: the lock, the known keys,
    the stops, one insert of the events and one update each of shipments and stops."""
    if translations is None:
        translations = mappings_translate_many(_translation_pairs(reports))
    answers: list[TrackingEventOutcome | LogisticsRefused | None] = [None] * len(reports)
    checked: list[tuple[int, _Checked]] = []
    for index, report in enumerate(reports):
        try:
            checked.append((index, _checked(report, translations)))
        except LogisticsRefused as refused:
            answers[index] = refused
    if not checked:
        return [answer for answer in answers if answer is not None]
    now = timezone.now()
    with transaction.atomic():
        ids = sorted({item.report.shipment_id for _index, item in checked})
        states = {
            shipment.pk: _ShipmentState(shipment, shipment.status_event_key, shipment.eta_event_key)  # type: ignore[attr-defined]
            for shipment in Shipment.objects.select_for_update(of=("self",))
            .filter(pk__in=ids)
            .annotate(status_event_key=F("status_event__dedupe_key"), eta_event_key=F("eta_event__dedupe_key"))
            .order_by("pk")
        }
        for known_stop in Stop.objects.filter(shipment_id__in=list(states)).order_by("shipment_id", "sequence"):
            states[known_stop.shipment_id].stops.append(known_stop)
        keys = {item.key for _index, item in checked}
        known: dict[tuple[int, str], TrackingEvent] = {}
        for event in TrackingEvent.objects.filter(shipment_id__in=list(states), dedupe_key__in=keys):
            event.shipment = states[event.shipment_id].shipment
            known[(event.shipment_id, event.dedupe_key)] = event
        created: list[TrackingEvent] = []
        repeats: dict[int, TrackingEvent] = {}
        pending: dict[int, tuple[TrackingEvent, bool, bool, list[str]]] = {}
        stops_changed: dict[int, Stop] = {}
        for index, item in checked:
            report = item.report
            state = states.get(report.shipment_id)
            if state is None:
                answers[index] = TrackingEventInvalid(f"There is no shipment {report.shipment_id}.", "shipment")
                continue
            shipment = state.shipment
            repeat = known.get((shipment.pk, item.key))
            if repeat is not None:
                repeats[index] = repeat
                continue
            occurred_at, status = report.occurred_at, item.status
            moves_status = not item.estimate and _outranks(
                (status, occurred_at, item.key), (shipment.status, shipment.status_at, state.status_key)
            )
            moves_eta = report.eta is not None and _outranks((None, occurred_at, item.key), (None, shipment.eta_at, state.eta_key))
            stop = _stop_of(state.stops, status, report.stop_sequence)
            event = TrackingEvent(
                shipment=shipment,
                status=status,
                raw_code=report.raw_code.strip(),
                raw_reason=report.raw_reason.strip(),
                reason_description=item.reason.description if item.reason else "",
                signal=(item.mapped.signal if item.mapped else "") or (item.reason.signal if item.reason else ""),
                source=report.source,
                mapping_version=item.mapped.version if item.mapped else None,
                occurred_at=occurred_at,
                received_at=report.received_at or now,
                estimate=item.estimate,
                eta=report.eta,
                dedupe_key=item.key,
                stop=stop,
                latitude=item.latitude,
                longitude=item.longitude,
                location_text=report.location_text[:200],
                message=report.message[:500],
                applied=moves_status,
            )
            created.append(event)
            known[(shipment.pk, item.key)] = event  # a repeat later in the batch finds it
            notes = list(item.notes)
            if moves_status:
                shipment.status, shipment.status_at = status, occurred_at
                state.status_key, state.status_event = item.key, event
                state.changed |= {"status", "status_at", "status_event"}
            elif item.estimate:
                notes.append("an estimate: it never changes the status")
            elif status == TrackingStatus.UNKNOWN:
                notes.append("an unknown status never moves the shipment")
            else:
                notes.append(
                    f"stored in the timeline; the shipment stays {shipment.get_status_display().lower()} (a further or newer event set it)"
                )
            if (
                status == TrackingStatus.DELIVERED
                and not item.estimate
                and (shipment.delivered_at is None or occurred_at < shipment.delivered_at)
            ):
                shipment.delivered_at = occurred_at
                state.changed.add("delivered_at")
            if report.eta is not None:
                if moves_eta:
                    shipment.eta, shipment.eta_at = report.eta, occurred_at
                    state.eta_key, state.eta_event = item.key, event
                    state.changed |= {"eta", "eta_at", "eta_event"}
                else:
                    notes.append("its ETA is older than the current one's: ETA unchanged")
                first_promise = shipment.original_eta is None
                earlier_promise = shipment.original_eta_at is not None and occurred_at < shipment.original_eta_at
                if first_promise or earlier_promise:
                    shipment.original_eta, shipment.original_eta_at = report.eta, occurred_at
                    state.changed |= {"original_eta", "original_eta_at"}
            if stop is not None and not item.estimate and stop_times_at(stop, status, occurred_at):
                stops_changed[stop.pk] = stop
            pending[index] = (event, moves_status, moves_eta, notes)
        _events_write(created)
        changed = [state for state in states.values() if state.changed]
        for state in changed:
            if state.status_event is not None:
                state.shipment.status_event_id = state.status_event.pk
            if state.eta_event is not None:
                state.shipment.eta_event_id = state.eta_event.pk
            state.shipment.updated_at = now
        _shipments_write([state.shipment for state in changed])
        _stops_write(list(stops_changed.values()))
        if actor_is_person(actor):
            for event, moves_status, _moves_eta, _notes in pending.values():
                audit_record(
                    actor=actor,
                    action="tracking_event.recorded",
                    target=event.shipment,
                    data={"event": event.pk, "status": event.status, "occurred_at": event.occurred_at, "applied": moves_status},
                )
    for index, (event, moves_status, moves_eta, notes) in pending.items():
        answers[index] = TrackingEventOutcome(event, True, status_changed=moves_status, eta_changed=moves_eta, note="; ".join(notes))
    for index, repeat in repeats.items():
        answers[index] = TrackingEventOutcome(
            repeat, False, note=f"already recorded as event {repeat.pk} (received {repeat.received_at:%Y-%m-%d %H:%M:%S}); nothing changed"
        )
    return [answer for answer in answers if answer is not None]


# --- reading canonical milestones -------------------------------------------------------------------


def _moment(value: Any) -> datetime | None:
    """An ISO 8601 time from a payload; one without an offset is read as UTC."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _text(value: Any) -> str:
    return str(value).strip() if isinstance(value, str | int) and not isinstance(value, bool) else ""


def _location_text(location: Any) -> str:
    if not isinstance(location, dict):
        return ""
    return ", ".join(_text(location.get(key)) for key in ("city", "state", "country") if _text(location.get(key)))


@dataclass
class _Milestone:
    """What one canonical milestone says, before its shipment is found."""

    references: list[tuple[str, str]]  # (correlation key, value) in look-up order
    scac: str
    report: TrackingReport | None = None  # shipment_id 0 until found


def _milestone_read(event: CanonicalEvent, translations: dict[tuple[str, str], MappedCode], now: datetime) -> _Milestone:
    payload = event.payload if isinstance(event.payload, dict) else {}
    references = []
    for key, field_name, _label in REFERENCE_KEYS:
        value = _text(event.correlation.get(key))
        if value:
            references.append((key, value.strip() if field_name == "reference" else reference_normalized(value)))
    read = _Milestone(references, _text(payload.get("carrier")).upper()[:4])
    source = PAYLOAD_SOURCES.get(_text(payload.get("source")).lower(), EventSource.API)
    code, raw_code = _text(payload.get("code")).lower(), _text(payload.get("raw_code"))
    occurred_at = _moment(payload.get("occurred_at"))
    eta = _moment(payload.get("estimated_delivery") or payload.get("eta"))
    position: dict[str, Any] = payload["position"] if isinstance(payload.get("position"), dict) else {}
    fields: dict[str, Any] = {
        "source": source,
        "raw_reason": _text(payload.get("raw_detail")) if source == EventSource.X12_214 else "",
        "received_at": now,
        "latitude": position.get("lat"),
        "longitude": position.get("lon"),
        "location_text": _location_text(payload.get("location")),
        "message": _text(payload.get("message")),
    }
    if source in SOURCE_MAPPINGS and raw_code:
        fields["raw_code"] = raw_code
        mapped = translations.get((SOURCE_MAPPINGS[source], raw_code))
        if source == EventSource.X12_214 and mapped is not None and mapped.estimate and occurred_at is not None:
            # An AT7 estimate's date is the estimated time; the estimate is as new as its arrival.
            eta, occurred_at = occurred_at, now
            fields["dedupe_key"] = tracking_dedupe_key(source, raw_code, fields["raw_reason"], eta, None, eta)
    else:
        fields["status"] = code if code in TrackingStatus.values else TrackingStatus.UNKNOWN
        fields["raw_code"] = raw_code or code
        fields["dedupe_key"] = f"event:{event.event_id}"
    if occurred_at is None:
        occurred_at = now
        fields["message"] = (fields["message"] + " (no time given: recorded at its arrival)").strip()
    read.report = TrackingReport(shipment_id=0, occurred_at=occurred_at, eta=eta, **fields)
    return read


def _translation_needs(events: Sequence[CanonicalEvent]) -> set[tuple[str, str]]:
    pairs: set[tuple[str, str]] = set()
    for event in events:
        payload = event.payload if isinstance(event.payload, dict) else {}
        source = PAYLOAD_SOURCES.get(_text(payload.get("source")).lower(), EventSource.API)
        raw_code = _text(payload.get("raw_code"))
        if source in SOURCE_MAPPINGS and raw_code:
            pairs.add((SOURCE_MAPPINGS[source], raw_code))
        reason = _text(payload.get("raw_detail"))
        if source == EventSource.X12_214 and reason:
            pairs.add((MappingKind.X12_214_REASON, reason))
    return pairs


@dataclass(frozen=True)
class _Named:
    pk: int
    reference: str
    pro_number: str
    bol_number: str
    po_number: str
    carrier_scac: str


def shipments_named(references: Iterable[tuple[str, str]]) -> dict[tuple[str, str], list[_Named]]:
    """The shipments each (correlation key, value) names, in one query over the reference indexes."""
    wanted: dict[str, set[str]] = defaultdict(set)
    for key, value in references:
        wanted[key].add(value)
    match = Q()
    for key, field_name, _label in REFERENCE_KEYS:
        if wanted[key]:
            # The partial indexes hold non-empty references only: say so, so the planner uses them.
            match |= Q(**{f"{field_name}__in": sorted(wanted[key])}) & ~Q(**{field_name: ""})
    if not match:
        return {}
    named: dict[tuple[str, str], list[_Named]] = defaultdict(list)
    rows = Shipment.objects.filter(match).values_list("pk", "reference", "pro_number", "bol_number", "po_number", "carrier_scac")
    for row in rows:
        shipment = _Named(*row)
        for key, field_name, _label in REFERENCE_KEYS:
            value = getattr(shipment, field_name)
            if value and value in wanted[key]:
                named[(key, value)].append(shipment)
    return named


def _shipment_for(read: _Milestone, named: dict[tuple[str, str], list[_Named]]) -> tuple[int | None, str]:
    """The shipment the event names (by its first reference that names exactly one), or a note."""
    labels = {key: label for key, _field, label in REFERENCE_KEYS}
    for key, value in read.references:
        candidates = named.get((key, value), [])
        if len(candidates) > 1 and read.scac:
            candidates = [shipment for shipment in candidates if shipment.carrier_scac == read.scac] or candidates
        if len(candidates) == 1:
            return candidates[0].pk, ""
        if len(candidates) > 1:
            return None, f"{labels[key]} {value} names {len(candidates)} shipments: add the carrier's SCAC or another reference"
    if not read.references:
        return None, "no shipment reference (PRO, BOL, shipment number or PO) in the event"
    said = " or ".join(f"{labels[key]} {value}" for key, value in read.references)
    return None, f"no shipment with {said}"


def milestones_apply(events: list[CanonicalEvent]) -> list[dict[str, Any]]:
    """The inbox's consumer of `shipment.milestone`: record each event on its shipment and emit
    the delays they reveal (see the module). One note per event."""
    now = timezone.now()
    translations = mappings_translate_many(_translation_needs(events))
    reads = [_milestone_read(event, translations, now) for event in events]
    named = shipments_named(reference for read in reads for reference in read.references)
    notes: list[dict[str, Any]] = [{} for _event in events]
    found: list[int] = []
    reports: list[TrackingReport] = []
    for index, read in enumerate(reads):
        shipment_id, why = _shipment_for(read, named)
        if shipment_id is None or read.report is None:
            notes[index] = {"shipment": None, "note": why}
            continue
        found.append(index)
        reports.append(replace(read.report, shipment_id=shipment_id))
    outcomes = tracking_events_record_many(reports, actor=INBOUND, translations=translations) if reports else []
    recorded: list[tuple[int, TrackingEventOutcome]] = []
    for index, outcome in zip(found, outcomes, strict=True):
        if isinstance(outcome, LogisticsRefused):
            notes[index] = {"shipment": None, "note": f"not recorded: {outcome.message}"}
            continue
        recorded.append((index, outcome))
        notes[index] = {
            "shipment": outcome.event.shipment.reference,
            "tracking_event": outcome.event.pk,
            "created": outcome.created,
            "status_changed": outcome.status_changed,
            "eta_changed": outcome.eta_changed,
            "status": outcome.event.shipment.status,
            "note": outcome.note,
        }
    delays = delays_detect([(outcome, events[index].event_id) for index, outcome in recorded], now=now)
    if recorded:  # customers' milestone subscriptions: one cached look-up per batch
        notifications_collect(outcomes=[outcome for _index, outcome in recorded], delays=delays, now=now)
    if delays:
        started = delays_emit(delays)
        by_event: dict[str, list[Delay]] = defaultdict(list)
        for delay in delays:
            by_event[delay.source_event].append(delay)
        for index, _outcome in recorded:
            told = by_event.get(events[index].event_id, [])
            if told:
                notes[index]["delays"] = [
                    {"event_id": delay.event_id, "cause": delay.cause, "started_runs": started.get(delay.event_id, [])} for delay in told
                ]
    return notes


# --- delays --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Delay:
    """A `shipment.delay_detected` event to hand to workflows."""

    event_id: str
    cause: str
    correlation: dict[str, str]
    payload: dict[str, Any]
    source_event: str = ""


def _minutes(span: timedelta) -> int:
    return int(span.total_seconds() // 60)


def _late_severity(late_by: timedelta | None, cause: str) -> str:
    """The detector's view of how bad it is (the template weighs tier and margin on top)."""
    if late_by is not None:
        if late_by >= timedelta(hours=24):
            return Severity.CRITICAL
        if late_by >= timedelta(hours=8):
            return Severity.HIGH
        return Severity.MEDIUM if late_by >= timedelta(hours=2) else Severity.LOW
    return Severity.HIGH if cause in (TrackingStatus.DELIVERY_FAILED, PICKUP_MISSED) else Severity.MEDIUM


def _when(moment: datetime | None) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC" if moment else "an unknown time"


def _promise(shipment: Shipment, stops: list[Stop]) -> tuple[datetime | None, str]:
    """What the customer was promised for delivery: the last delivery stop's appointment end
    (or start), else the planned ETA."""
    deliveries = [stop for stop in stops if stop.kind == StopKind.DELIVERY]
    if deliveries and (deliveries[-1].appointment_end or deliveries[-1].appointment_start):
        return deliveries[-1].appointment_end or deliveries[-1].appointment_start, "delivery appointment"
    if shipment.original_eta is not None and shipment.original_eta_at is None:
        return shipment.original_eta, "planned delivery"
    return None, ""


def _delay(
    *,
    shipment: Shipment,
    account: CustomerAccount,
    cause: str,
    kind: str,
    reason: str,
    promised_at: datetime | None,
    promise: str,
    estimated_at: datetime | None,
    now: datetime,
    event: TrackingEvent | None = None,
    source_event: str = "",
) -> Delay:
    late_by = estimated_at - promised_at if promised_at and estimated_at else None
    references = {
        name: value
        for name, value in (
            ("reference", shipment.reference),
            ("pro", shipment.pro_number),
            ("bol", shipment.bol_number),
            ("po", shipment.po_number),
            ("load", shipment.load_number),
            ("container", shipment.container_number),
        )
        if value
    }
    correlation: dict[str, str] = {"shipment": shipment.reference}
    correlation.update({key: references[key] for key in ("pro", "bol", "po") if key in references})
    payload = {
        "type": kind,
        "cause": cause,
        "reason": reason[:500],
        "severity": _late_severity(late_by, cause),
        "shipment_id": shipment.pk,
        "shipment": shipment.reference,
        "references": references,
        "carrier_scac": shipment.carrier_scac,
        "status": shipment.status,
        "customer_account_id": account.pk,
        "customer_tier": account.service_tier,
        "promise": promise,
        "promised_at": promised_at.isoformat() if promised_at else None,
        "estimated_at": estimated_at.isoformat() if estimated_at else None,
        "late_by_minutes": _minutes(late_by) if late_by is not None else None,
        "detected_at": now.isoformat(),
        "tracking_event_id": event.pk if event else None,
        "occurred_at": event.occurred_at.isoformat() if event else now.isoformat(),
    }
    return Delay(f"delay:{shipment.pk}:{cause}", cause, correlation, payload, source_event)


def _graces() -> dict[str, timedelta]:
    """Each tier's on-time grace (the policy's default where the tenant has none)."""
    graces: dict[str, timedelta] = defaultdict(lambda: SlaPolicy().on_time_grace)
    graces.update({policy.service_tier: policy.on_time_grace for policy in SlaPolicy.objects.all()})
    return graces


def _already_open(pairs: Iterable[tuple[int, str]]) -> set[tuple[int, str]]:
    """(shipment, exception type) pairs with that exception open: nothing new to tell."""
    wanted = set(pairs)
    if not wanted:
        return set()
    rows = ExceptionCase.objects.filter(
        OPEN_EXCEPTION, shipment_id__in={pk for pk, _kind in wanted}, type__in={kind for _pk, kind in wanted}
    ).values_list("shipment_id", "type")
    return set(rows) & wanted


def _status_reason(shipment: Shipment, event: TrackingEvent) -> str:
    """What people read, e.g. "Delivery delayed reported by ODFL (SD): Weather or natural disaster related at Denver, CO"."""
    code = f" ({event.raw_code})" if event.raw_code and event.raw_code != event.status else ""
    why = f": {event.reason_description}" if event.reason_description else ""
    where = f" at {event.location_text}" if event.location_text else ""
    return f"{event.get_status_display()} reported by {shipment.carrier_scac or 'the carrier'}{code}{why}{where}"


def delays_detect(recorded: Sequence[tuple[TrackingEventOutcome, str]], *, now: datetime | None = None) -> list[Delay]:
    """The delays newly recorded events reveal (each outcome with its canonical event id): a
    delay status that became the shipment's, or an ETA moved past the promise plus the tier's
    grace. A shipment that ended (delivered, returned, cancelled) has no delay left to handle;
    one already holding an open exception of the kind is not told again."""
    now = now or timezone.now()
    by_status: dict[int, list[tuple[TrackingEvent, str]]] = defaultdict(list)
    eta_moved: dict[int, tuple[TrackingEvent, str]] = {}
    shipments: dict[int, Shipment] = {}
    for outcome, source_event in recorded:
        event = outcome.event
        if not outcome.created or is_terminal(event.shipment.status):
            continue
        if outcome.status_changed and event.status in DELAY_STATUSES:
            by_status[event.shipment_id].append((event, source_event))
            shipments[event.shipment_id] = event.shipment
        if outcome.eta_changed and event.shipment.eta is not None:
            eta_moved[event.shipment_id] = (event, source_event)
            shipments[event.shipment_id] = event.shipment
    if not shipments:
        return []
    # The recorded events hold their shipment as it is now (locked and updated by the batch).
    accounts = CustomerAccount.objects.in_bulk({shipment.customer_account_id for shipment in shipments.values()})
    stops: dict[int, list[Stop]] = defaultdict(list)
    for stop in Stop.objects.filter(shipment_id__in=list(shipments), kind=StopKind.DELIVERY).order_by("shipment_id", "sequence"):
        stops[stop.shipment_id].append(stop)
    graces: dict[str, timedelta] = _graces() if eta_moved else {}
    delays: list[Delay] = []
    for shipment_id, shipment in sorted(shipments.items()):
        account = accounts[shipment.customer_account_id]
        promised_at, promise = _promise(shipment, stops[shipment_id])
        found: dict[str, Delay] = {}
        for event, source_event in by_status.get(shipment_id, []):
            found[event.status] = _delay(
                shipment=shipment,
                account=account,
                cause=event.status,
                kind=DELAY_STATUSES[event.status],
                reason=_status_reason(shipment, event),
                promised_at=promised_at,
                promise=promise,
                estimated_at=shipment.eta,
                now=now,
                event=event,
                source_event=source_event,
            )
        moved = eta_moved.get(shipment_id)
        late_by = shipment.eta - promised_at if shipment.eta is not None and promised_at is not None else None
        if moved is not None and late_by is not None and late_by > graces[account.service_tier]:
            event, source_event = moved
            late = _minutes(late_by)
            found[ETA_LATE] = _delay(
                shipment=shipment,
                account=account,
                cause=ETA_LATE,
                kind=ExceptionType.DELAY,
                reason=f"ETA {_when(shipment.eta)} is {late // 60} h {late % 60:02d} min after the {promise} ({_when(promised_at)})",
                promised_at=promised_at,
                promise=promise,
                estimated_at=shipment.eta,
                now=now,
                event=event,
                source_event=source_event,
            )
        delays.extend(found.values())
    covered = _already_open((delay.payload["shipment_id"], delay.payload["type"]) for delay in delays)
    return [delay for delay in delays if (delay.payload["shipment_id"], delay.payload["type"]) not in covered]


def delays_emit(delays: Sequence[Delay], *, actor: Any = DETECTOR) -> dict[str, list[int]]:
    """Hand the delays to workflows as `connectors.inbox` hands on its events: waiting runs woken
    (one `events_deliver` for the lot), event-triggered definitions looked up once and started
    (idempotent per definition and event id). Returns the runs started per delay event id."""
    from workflows.triggers import event_triggered, event_triggers_start
    from workflows.waits import Delivery, events_deliver

    if not delays:
        return {}
    events_deliver([Delivery(DELAY_EVENT, delay.correlation, delay.payload, delay.event_id) for delay in delays])
    definitions = event_triggered(DELAY_EVENT)
    started: dict[str, list[int]] = {}
    for delay in delays:
        fired = event_triggers_start(
            event_type=DELAY_EVENT,
            payload=delay.payload,
            correlation=delay.correlation,
            event_id=delay.event_id,
            actor=actor,
            definitions=definitions,
        )
        started[delay.event_id] = [run.pk for run in fired.started]
    return started


def pickups_missed_scan(*, now: datetime | None = None) -> list[Delay]:
    """Pickup appointments that ended (plus the tier's grace) with the shipment not picked up –
    not even arrived – within the last few days: emit a `pickup_missed` delay for each shipment
    that never had a missed-pickup exception. Returns what it emitted."""
    now = now or timezone.now()
    earlier_missed = ExceptionCase.objects.filter(shipment=OuterRef("shipment"), type=ExceptionType.MISSED_PICKUP)
    due = (
        Stop.objects.filter(
            kind=StopKind.PICKUP,
            appointment_end__lt=now,
            appointment_end__gte=now - PICKUP_SCAN_HORIZON,
            departed_at__isnull=True,
            arrived_at__isnull=True,
            shipment__status__in=NOT_PICKED_UP,
        )
        .exclude(Exists(earlier_missed))
        .select_related("shipment__customer_account", "location")
        .order_by("shipment_id", "sequence")
    )
    graces = _graces()
    delays: dict[int, Delay] = {}
    for stop in due:
        shipment = stop.shipment
        assert stop.appointment_end is not None
        if shipment.pk in delays or stop.appointment_end + graces[shipment.customer_account.service_tier] > now:
            continue
        place = f" at {stop.location.name}" if stop.location else ""
        delays[shipment.pk] = _delay(
            shipment=shipment,
            account=shipment.customer_account,
            cause=PICKUP_MISSED,
            kind=ExceptionType.MISSED_PICKUP,
            reason=f"Not picked up by the end of the pickup appointment ({_when(stop.appointment_end)}){place}",
            promised_at=stop.appointment_end,
            promise="pickup appointment",
            estimated_at=None,
            now=now,
        )
    with transaction.atomic():
        delays_emit(list(delays.values()))
        if delays:
            notifications_collect(delays=list(delays.values()), now=now)
    return list(delays.values())


@shared_task(name="logistics.pickups_missed_scan_all")
def pickups_missed_scan_all() -> list[str]:
    """From beat: `pickups_missed_scan` in every ready tenant's schema."""
    from tenants.tasks import ready_tenants_send

    return ready_tenants_send(pickups_missed_scan_task)


@shared_task(name="logistics.pickups_missed_scan")
def pickups_missed_scan_task() -> int:
    return len(pickups_missed_scan())


def register() -> None:
    """Called by `LogisticsConfig.ready`: the inbox hands `shipment.milestone` events here."""
    from connectors.inbox import inbound_consumer_register

    inbound_consumer_register(MILESTONE_EVENT, milestones_apply)
