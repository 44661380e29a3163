"""Triggers: schedules (cron in the tenant's time zone) and events that start runs.

Only a definition's published version counts. Every start goes through `workflows.runs.run_start`
with a business key that names the firing, so a second scheduler, a redelivered task or a
redelivered event finds the run the first one started instead of starting another.

Schedules. A `ScheduleCursor` per (definition, trigger index) remembers the last firing started.
`schedules_fire` (the per-tenant `workflows.fire_schedules` task, sent twice a minute) locks each
cursor with `FOR UPDATE SKIP LOCKED`, starts the runs for the firings due since it (key
`schedule:<index>:<UTC minute>`) and moves it, in one transaction. After downtime only the last
`CATCH_UP_LIMIT` missed firings start; older ones are skipped, logged, audited and counted. A new
cursor starts at the version's publication, but no earlier than `NEW_CURSOR_LOOKBACK` before now
(no backfill: it only covers the gap between publishing and the next scheduler pass); a cursor
whose cron text changed (a new version was published) starts afresh the same way.

Cron lines are read by cronsim in the tenant's zone (`Tenant.time_zone`), which follows Debian
cron across DST changes: a job at a fixed time (minute and hour both fixed, e.g. `30 2 * * *`)
that falls into the skipped hour in spring runs at the first minute after the gap (03:00), and
one in the repeated hour in autumn runs once, at the first occurrence; a job with a wildcard
minute or hour (`*/15 * * * *`, `0 * * * *`) follows real elapsed time, so it skips the missing
hour and runs in both copies of the repeated one.

Events. `event_triggers_start` starts a run of every published definition with an event trigger
of that type whose CEL `filter` is true (no filter: always), keyed `event:<event id>`. A filter
that fails to evaluate (or is not true/false) starts nothing for that trigger and is reported.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import reduce
from operator import or_
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog
from celpy import celtypes
from cronsim import CronSim, CronSimError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from prometheus_client import Counter

from governance.services import audit_record
from workflows.calendars import tenant_time_zone
from workflows.engine import StepFailed, cel_evaluate
from workflows.models import CORRELATION_KEYS, Definition, DefinitionVersion, Run, ScheduleCursor
from workflows.runs import RunError, run_start

log = structlog.get_logger("baton.workflows")

# Missed firings started after downtime; earlier ones are skipped.
CATCH_UP_LIMIT = 10
# How far back missed firings are looked for (and counted) at all: bounds the work after a long outage.
CATCH_UP_HORIZON = timedelta(days=7)
# A new cursor may start this long before now, so a firing between publishing and the next
# scheduler pass (every 30 s) is not lost.
NEW_CURSOR_LOOKBACK = timedelta(minutes=2)
CURSOR_CRON_LENGTH = 120  # ScheduleCursor.cron

TRIGGER_PROBLEMS = Counter("baton_workflow_trigger_problems_total", "Triggers that could not be evaluated or started", ["kind"])
SCHEDULE_SKIPPED = Counter("baton_workflow_schedule_firings_skipped_total", "Missed schedule firings beyond the catch-up limit")


@dataclass(frozen=True)
class TriggerProblem:
    """A trigger that started nothing because something is wrong with it (or its input)."""

    definition: str  # the definition's key
    trigger_index: int  # position in the published spec's `triggers`
    reason: str


@dataclass
class TriggersFired:
    """What one pass did: runs it started, runs an earlier delivery had already started for the same
    firing or event, triggers that could not be evaluated, and (schedules) missed firings skipped."""

    started: list[Run] = field(default_factory=list)
    duplicates: list[Run] = field(default_factory=list)
    problems: list[TriggerProblem] = field(default_factory=list)
    skipped: int = 0

    def problem(self, definition: Definition, index: int, reason: str, *, kind: str, **details: Any) -> None:
        self.problems.append(TriggerProblem(definition=definition.key, trigger_index=index, reason=reason))
        TRIGGER_PROBLEMS.labels(kind).inc()
        log.warning("workflow trigger problem", kind=kind, definition=definition.key, trigger_index=index, reason=reason, **details)


def _triggers(spec: dict[str, Any], kind: str) -> list[tuple[int, dict[str, Any]]]:
    triggers = spec.get("triggers") if isinstance(spec, dict) else None
    return [(index, trigger) for index, trigger in enumerate(triggers or []) if isinstance(trigger, dict) and trigger.get("kind") == kind]


def _published(kind: str, **match: Any) -> Iterable[Definition]:
    """Definitions whose published version declares a trigger of `kind` (matching `match`)."""
    wanted = [{"kind": kind, **match}]
    return Definition.objects.filter(published_version__spec__triggers__contains=wanted).select_related("published_version").order_by("key")


# --- schedules ---------------------------------------------------------------------------------


def tenant_zone() -> tuple[ZoneInfo, str]:
    """The current tenant's time zone, and why UTC stands in for it (or '')."""
    return zone_named(tenant_time_zone())


def zone_named(name: str) -> tuple[ZoneInfo, str]:
    try:
        return ZoneInfo(name), ""
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC"), f"the time zone '{name}' is unknown, so UTC is used"


def _normal_cron(cron: str) -> str:
    return " ".join(cron.split())


def _cursor_cron(cron: str) -> str:
    """What a cursor stores to notice a changed cron line (a digest when the line is too long)."""
    if len(cron) <= CURSOR_CRON_LENGTH:
        return cron
    return "sha256:" + hashlib.sha256(cron.encode()).hexdigest()


def _firings(cron: str, zone: ZoneInfo, after: datetime) -> Iterable[datetime]:
    """Firings strictly after `after`, as UTC instants, in order (raises CronSimError)."""
    for moment in CronSim(cron, after.astimezone(zone)):
        instant = moment.astimezone(UTC)
        if instant > after:  # a fixed-time job re-read around the autumn fold may name an earlier instant
            yield instant


def firings_due(cron: str, zone: ZoneInfo, *, after: datetime, now: datetime) -> tuple[list[datetime], int]:
    """The firings in (after, now] to start – the latest CATCH_UP_LIMIT – and how many earlier ones
    (within CATCH_UP_HORIZON) are skipped."""
    due: deque[datetime] = deque(maxlen=CATCH_UP_LIMIT)
    seen = 0
    for instant in _firings(cron, zone, max(after, now - CATCH_UP_HORIZON)):
        if instant > now:
            break
        due.append(instant)
        seen += 1
    return list(due), seen - len(due)


def schedule_next_firings(spec: dict[str, Any], tz: ZoneInfo | str, count: int = 3, *, after: datetime | None = None) -> list[datetime]:
    """The next `count` firings of the spec's schedule triggers (all of them merged), in `tz`."""
    zone = zone_named(tz)[0] if isinstance(tz, str) else tz
    after = after or timezone.now()
    upcoming: set[datetime] = set()
    for _index, trigger in _triggers(spec, "schedule"):
        try:
            for position, instant in enumerate(_firings(_normal_cron(str(trigger.get("cron", ""))), zone, after)):
                if position >= count:
                    break
                upcoming.add(instant)
        except CronSimError:
            continue  # validation reports it; a page shows what does run
    return [instant.astimezone(zone) for instant in sorted(upcoming)[:count]]


@dataclass(frozen=True)
class Schedule:
    """A definition's schedule as the definition page shows it: each cron line with its reading in
    words, the zone it runs in, and the next firings there."""

    crons: list[tuple[str, str]]
    time_zone: str
    next_firings: list[datetime]
    zone_problem: str = ""


def _cron_words(cron: str) -> str:
    try:
        return CronSim(cron, timezone.now()).explain()
    except (CronSimError, ValueError, KeyError, IndexError):  # explain() covers plain lines only
        return ""


def schedule_summary(*, spec: dict[str, Any], time_zone: str, count: int = 3) -> Schedule | None:
    """The published spec's schedule triggers and their next firings in the tenant's zone, or None."""
    crons = [_normal_cron(str(trigger.get("cron", ""))) for _index, trigger in _triggers(spec, "schedule")]
    if not crons:
        return None
    zone, zone_problem = zone_named(time_zone or "UTC")
    return Schedule(
        crons=[(cron, _cron_words(cron)) for cron in crons],
        time_zone=zone.key,
        next_firings=schedule_next_firings(spec, zone, count),
        zone_problem=zone_problem,
    )


def _cursor_start(version: DefinitionVersion, now: datetime) -> datetime:
    published_at = version.published_at or now
    return min(now, max(published_at, now - NEW_CURSOR_LOOKBACK))


def _cursor_locked(definition: Definition, index: int, cron: str, now: datetime) -> ScheduleCursor | None:
    """The trigger's cursor locked for this transaction (made when missing, reset when its cron
    changed), or None while another scheduler holds it."""
    version = definition.published_version
    assert version is not None
    cursors = ScheduleCursor.objects.filter(definition=definition, trigger_index=index)
    cursor = cursors.select_for_update(skip_locked=True).first()
    if cursor is None:
        if cursors.exists():
            return None  # another scheduler is firing it
        try:
            with transaction.atomic():
                return ScheduleCursor.objects.create(
                    definition=definition, trigger_index=index, cron=_cursor_cron(cron), last_fired_for=_cursor_start(version, now)
                )
        except IntegrityError:
            return None  # another scheduler made it a moment ago, and fires it
    if cursor.cron != _cursor_cron(cron):
        log.info("workflow schedule cursor reset", definition=definition.key, trigger_index=index, was=cursor.cron, cron=cron)
        cursor.cron = _cursor_cron(cron)
        cursor.last_fired_for = _cursor_start(version, now)
        cursor.save(update_fields=["cron", "last_fired_for"])
    return cursor


def _schedule_fire(definition: Definition, index: int, cron: str, zone: ZoneInfo, now: datetime, actor: Any, result: TriggersFired) -> None:
    with transaction.atomic():
        cursor = _cursor_locked(definition, index, cron, now)
        if cursor is None:
            return
        try:
            due, skipped = firings_due(cron, zone, after=cursor.last_fired_for, now=now)
        except CronSimError as error:
            result.problem(definition, index, f"the cron line '{cron}' cannot be read: {error}", kind="schedule")
            return
        if skipped:
            result.skipped += skipped
            SCHEDULE_SKIPPED.inc(skipped)
            log.warning(
                "workflow schedule firings skipped",
                definition=definition.key,
                trigger_index=index,
                cron=cron,
                skipped=skipped,
                since=cursor.last_fired_for.isoformat(),
                resumed_at=due[0].isoformat(),
            )
            audit_record(
                actor=actor,
                action="workflow_schedule.firings_skipped",
                target=definition,
                data={"trigger_index": index, "cron": cron, "skipped": skipped, "resumed_at": due[0].isoformat()},
            )
        for instant in due:
            local = instant.astimezone(zone)
            try:
                run, created = run_start(
                    definition=definition,
                    input={"scheduled_for": local.isoformat(), "cron": cron, "time_zone": zone.key},
                    business_key=f"schedule:{index}:{instant:%Y-%m-%dT%H:%MZ}",
                    trigger="schedule",
                    actor=actor,
                )
            except RunError as error:
                result.problem(definition, index, error.message, kind="schedule", scheduled_for=local.isoformat())
                continue
            (result.started if created else result.duplicates).append(run)
        if due:
            cursor.last_fired_for = due[-1]
            cursor.save(update_fields=["last_fired_for"])


def schedules_fire(*, now: datetime | None = None, actor: Any) -> TriggersFired:
    """Start the runs the current tenant's published schedules owe up to `now` (see the module doc).

    Safe to call as often as wanted, from several workers at once: cursors are locked with SKIP
    LOCKED and each firing's business key makes a repeated start return the first run.
    """
    now = now or timezone.now()
    result = TriggersFired()
    zone, zone_problem = tenant_zone()
    kept: list[Q] = []
    for definition in _published("schedule"):
        assert definition.published_version is not None
        schedules = _triggers(definition.published_version.spec, "schedule")
        kept.append(Q(definition=definition, trigger_index__in=[index for index, _trigger in schedules]))
        for index, trigger in schedules:
            if zone_problem:
                result.problem(definition, index, zone_problem, kind="schedule")
            _schedule_fire(definition, index, _normal_cron(str(trigger.get("cron", ""))), zone, now, actor, result)
    # Cursors of triggers no longer published: a schedule added back later starts afresh.
    stale = ScheduleCursor.objects.exclude(reduce(or_, kept)) if kept else ScheduleCursor.objects.all()
    stale.delete()
    return result


# --- events ------------------------------------------------------------------------------------


def _filter_matches(definition: Definition, index: int, trigger: dict[str, Any], variables: dict[str, Any], result: TriggersFired) -> bool:
    expression = trigger.get("filter")
    if not isinstance(expression, str) or not expression.strip():
        return True
    try:
        matched = cel_evaluate(expression, variables)
    except StepFailed as error:
        result.problem(definition, index, f"filter `{expression}` failed: {error}", kind="event")
        return False
    except (TypeError, ValueError) as error:  # the payload is not plain JSON
        result.problem(definition, index, f"filter `{expression}` could not read the event: {error}", kind="event")
        return False
    if not isinstance(matched, celtypes.BoolType):
        result.problem(definition, index, f"filter `{expression}` gave {type(matched).__name__} {matched}, not true or false", kind="event")
        return False
    return bool(matched)


def _run_correlation(correlation: dict[str, Any]) -> dict[str, Any]:
    """The event's correlation keys a run knows (order, shipment, po, bol, pro), when they have a value."""
    return {
        name: value
        for name, value in correlation.items()
        if name in CORRELATION_KEYS and isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip()
    }


def event_triggered(event_type: str) -> list[Definition]:
    """The published definitions with an event trigger of `event_type` (one look-up for a batch of events)."""
    return list(_published("event", event_type=event_type))


def event_triggers_start(
    *,
    event_type: str,
    payload: dict[str, Any],
    correlation: dict[str, Any] | None,
    event_id: str,
    actor: Any,
    definitions: Iterable[Definition] | None = None,
) -> TriggersFired:
    """Start a run (trigger "event", input = the payload) of every published definition with an
    event trigger of `event_type` whose filter is true (`definitions`: `event_triggered`'s answer,
    when the caller looked them up already). Idempotent per (definition, event id): a redelivered
    event lists the first delivery's runs in `duplicates`."""
    correlation = correlation or {}
    variables = {"event": payload, "correlation": correlation}
    result = TriggersFired()
    for definition in definitions if definitions is not None else _published("event", event_type=event_type):
        assert definition.published_version is not None
        matching = [
            index
            for index, trigger in _triggers(definition.published_version.spec, "event")
            if trigger.get("event_type") == event_type and _filter_matches(definition, index, trigger, variables, result)
        ]
        if not matching:
            continue
        try:
            run, created = run_start(
                definition=definition,
                input=payload,
                business_key=f"event:{event_id}",
                correlation=_run_correlation(correlation),
                trigger="event",
                actor=actor,
            )
        except RunError as error:
            result.problem(definition, matching[0], error.message, kind="event", event_id=event_id)
            continue
        (result.started if created else result.duplicates).append(run)
    return result
