"""Triggers: schedules fire in the tenant's time zone, once per firing, with a catch-up limit;
events start the definitions whose filter is true, once per event id; only published versions
count and each tenant's triggers start only its own definitions."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from governance.models import AuditEvent
from tenants.db import connection
from tenants.models import Tenant
from tests.conftest import signed_in_client
from tests.processes import celery_worker
from tests.workflows.runs_setup import SYSTEM, definition_published, runs_delete, version_publish
from workflows.models import Definition, DefinitionVersion, Run, ScheduleCursor
from workflows.services import definition_draft_create
from workflows.tasks import dispatch_schedules
from workflows.triggers import CATCH_UP_LIMIT, event_triggers_start, firings_due, schedule_next_firings, schedules_fire

END = [{"id": "done", "kind": "end", "outcome": "succeeded"}]
CHICAGO = ZoneInfo("America/Chicago")


def schedule_spec(*crons: str) -> dict:
    return {"start": "done", "triggers": [{"kind": "schedule", "cron": cron} for cron in crons], "steps": END}


def event_spec(filter: str = "", event_type: str = "tracking.milestone") -> dict:
    trigger = {"kind": "event", "event_type": event_type, **({"filter": filter} if filter else {})}
    return {"start": "done", "triggers": [trigger], "steps": END}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def tenant_zone_set(tenant_world, name: str) -> None:
    connection.set_schema_to_public()
    Tenant.objects.filter(pk=tenant_world.tenant.pk).update(time_zone=name)


def fire(tenant_world, now: datetime):
    with schema_context(tenant_world.schema):
        return schedules_fire(now=now, actor=SYSTEM)


def runs_of(tenant_world, definition: Definition) -> list[Run]:
    with schema_context(tenant_world.schema):
        return list(Run.objects.filter(definition=definition).order_by("business_key"))


def publication_set(tenant_world, definition: Definition, published_at: datetime) -> None:
    """Pretend the published version came out at `published_at` (tests pass their own clock)."""
    with schema_context(tenant_world.schema):
        DefinitionVersion.objects.filter(definition=definition, status="published").update(published_at=published_at)


# --- schedules -----------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("before", "due", "expected_local"),
    [
        ("2027-01-14T12:00:00", "2027-01-14T13:00:05", "2027-01-14T07:00:00-06:00"),  # CST: UTC-6
        ("2027-07-14T11:00:00", "2027-07-14T12:00:05", "2027-07-14T07:00:00-05:00"),  # CDT: UTC-5
    ],
)
def test_a_cron_line_fires_at_the_tenants_local_time_in_winter_and_in_summer(world, before, due, expected_local):
    tenant_zone_set(world.acme, "America/Chicago")
    definition = definition_published(world.acme, schedule_spec("0 7 * * *"))
    assert fire(world.acme, at(before)).started == []  # 06:00 in Chicago: the cursor starts here
    assert fire(world.acme, at(due) - timedelta(seconds=10)).started == []  # 06:59:55 local
    fired = fire(world.acme, at(due))
    (run,) = fired.started
    utc_minute = at(due).strftime("%Y-%m-%dT%H:%MZ")
    assert (run.trigger, run.business_key) == ("schedule", f"schedule:0:{utc_minute}")
    assert run.input == {"scheduled_for": expected_local, "cron": "0 7 * * *", "time_zone": "America/Chicago"}
    assert [r.pk for r in runs_of(world.acme, definition)] == [run.pk]


def test_dst_follows_debian_cron_a_skipped_time_runs_after_the_gap_and_a_repeated_one_once():
    # Spring forward (14 March 2027): 02:30 does not exist in Chicago; the job runs at 03:00 CDT.
    due, skipped = firings_due("30 2 * * *", CHICAGO, after=at("2027-03-13T00:00:00"), now=at("2027-03-15T12:00:00"))
    assert [moment.astimezone(CHICAGO).isoformat() for moment in due] == [
        "2027-03-13T02:30:00-06:00",
        "2027-03-14T03:00:00-05:00",
        "2027-03-15T02:30:00-05:00",
    ]
    assert skipped == 0
    # Fall back (7 November 2027): 01:30 happens twice; a fixed-time job runs at the first one.
    due, _ = firings_due("30 1 * * *", CHICAGO, after=at("2027-11-07T00:00:00"), now=at("2027-11-07T12:00:00"))
    assert due == [at("2027-11-07T06:30:00")]
    # A job with a wildcard hour follows real time: both 01:00s, one UTC hour apart.
    due, _ = firings_due("0 * * * *", CHICAGO, after=at("2027-11-07T05:30:00"), now=at("2027-11-07T08:30:00"))
    assert [moment.astimezone(CHICAGO).strftime("%H:%M%z") for moment in due] == ["01:00-0500", "01:00-0600", "02:00-0600"]


@pytest.mark.django_db
def test_firing_twice_for_the_same_minute_starts_one_run(world):
    definition = definition_published(world.acme, schedule_spec("0 9 * * *"))
    fire(world.acme, at("2027-01-14T08:00:00"))
    (run,) = fire(world.acme, at("2027-01-14T09:00:10")).started
    again = fire(world.acme, at("2027-01-14T09:00:40"))  # the second pass in the same minute
    assert again.started == [] and again.duplicates == []
    # A scheduler that read the cursor before the first one moved it (or a redelivered task
    # after a crash between start and commit) fires the same minute again: same run.
    with schema_context(world.acme.schema):
        ScheduleCursor.objects.filter(definition=definition).update(last_fired_for=at("2027-01-14T08:00:00"))
    replay = fire(world.acme, at("2027-01-14T09:00:50"))
    assert replay.started == [] and [r.pk for r in replay.duplicates] == [run.pk]
    assert [r.pk for r in runs_of(world.acme, definition)] == [run.pk]


@pytest.mark.django_db
def test_a_new_schedule_does_not_backfill_but_catches_a_firing_between_publishing_and_the_next_pass(world):
    definition = definition_published(world.acme, schedule_spec("*/10 * * * *"))
    publication_set(world.acme, definition, at("2027-01-14T07:59:50"))
    # The first pass after publishing comes at 08:00:20: the 08:00 firing still starts.
    (run,) = fire(world.acme, at("2027-01-14T08:00:20")).started
    assert run.business_key == "schedule:0:2027-01-14T08:00Z"
    # Published long before the first pass (e.g. before the scheduler existed): nothing from before.
    other = definition_published(world.acme, schedule_spec("*/10 * * * *"))
    publication_set(world.acme, other, at("2027-01-01T00:00:00"))
    fire(world.acme, at("2027-01-14T08:05:00"))
    assert runs_of(world.acme, other) == []


@pytest.mark.django_db
def test_after_a_gap_only_the_last_missed_firings_start_and_the_rest_are_skipped_and_counted(world):
    definition = definition_published(world.acme, schedule_spec("* * * * *"))
    publication_set(world.acme, definition, at("2027-01-14T07:59:00"))
    assert len(fire(world.acme, at("2027-01-14T08:00:00")).started) == 1  # 08:00
    fired = fire(world.acme, at("2027-01-14T09:00:30"))  # the scheduler was down for an hour
    assert len(fired.started) == CATCH_UP_LIMIT == 10
    assert fired.skipped == 60 - CATCH_UP_LIMIT
    assert sorted(run.input["scheduled_for"] for run in fired.started) == [
        (at("2027-01-14T08:51:00") + timedelta(minutes=minutes)).isoformat() for minutes in range(CATCH_UP_LIMIT)
    ]
    with schema_context(world.acme.schema):
        audit = AuditEvent.objects.get(action="workflow_schedule.firings_skipped", target_id=str(definition.pk))
        assert audit.data == {"trigger_index": 0, "cron": "* * * * *", "skipped": 50, "resumed_at": "2027-01-14T08:51:00+00:00"}
        assert ScheduleCursor.objects.get(definition=definition).last_fired_for == at("2027-01-14T09:00:00")
    assert len(runs_of(world.acme, definition)) == 11


@pytest.mark.django_db
def test_a_new_version_with_another_cron_line_resets_the_cursor(world):
    definition = definition_published(world.acme, schedule_spec("0 7 * * *"))
    fire(world.acme, at("2027-01-14T06:00:00"))  # v1's cursor
    version_publish(world.acme, definition, schedule_spec("*/10 * * * *"))
    publication_set(world.acme, definition, at("2027-01-14T08:55:00"))
    fired = fire(world.acme, at("2027-01-14T09:00:20"))
    # From the new version's publication, not from v1's cursor (which would owe 18 firings since 06:00).
    assert [run.business_key for run in fired.started] == ["schedule:0:2027-01-14T09:00Z"]
    assert fired.skipped == 0
    assert {run.definition_version.number for run in fired.started} == {2}
    with schema_context(world.acme.schema):
        cursor = ScheduleCursor.objects.get(definition=definition)
        assert (cursor.cron, cursor.last_fired_for) == ("*/10 * * * *", at("2027-01-14T09:00:00"))


@pytest.mark.django_db
def test_only_the_published_versions_triggers_count(world):
    definition = definition_published(world.acme, {"start": "done", "steps": END})
    admin = world.acme.users["tenant_admin"]
    with schema_context(world.acme.schema):
        definition_draft_create(definition=definition, spec=schedule_spec("* * * * *"), parameters={}, comment="", actor=admin)
    fire(world.acme, at("2027-01-14T08:00:00"))
    fire(world.acme, at("2027-01-14T08:30:00"))
    with schema_context(world.acme.schema):
        definition_draft_create(definition=definition, spec=event_spec(), parameters={}, comment="", actor=admin)
        assert (
            event_triggers_start(event_type="tracking.milestone", payload={}, correlation={}, event_id="E-draft", actor=SYSTEM).started
            == []
        )
        assert not ScheduleCursor.objects.filter(definition=definition).exists()
    assert runs_of(world.acme, definition) == []
    # A schedule that a newer published version drops stops firing and loses its cursor.
    scheduled = definition_published(world.acme, schedule_spec("* * * * *"))
    fire(world.acme, at("2027-01-14T08:00:00"))
    version_publish(world.acme, scheduled, {"start": "done", "steps": END})
    before = len(runs_of(world.acme, scheduled))
    assert fire(world.acme, at("2027-01-14T08:05:00")).started == []
    assert len(runs_of(world.acme, scheduled)) == before
    with schema_context(world.acme.schema):
        assert not ScheduleCursor.objects.filter(definition=scheduled).exists()


@pytest.mark.django_db
def test_a_tenants_schedules_start_only_its_own_definitions(world):
    ours = definition_published(world.acme, schedule_spec("* * * * *"))
    theirs = definition_published(world.globex, schedule_spec("*/5 * * * *"))
    fire(world.acme, at("2027-01-14T08:00:00"))
    fired = fire(world.acme, at("2027-01-14T08:03:00"))
    assert {run.definition.key for run in fired.started} == {ours.key} and len(fired.started) == 3
    assert runs_of(world.globex, theirs) == []
    with schema_context(world.globex.schema):
        assert not ScheduleCursor.objects.filter(definition=theirs).exists()
    before = len(runs_of(world.acme, ours))
    (their_run,) = fire(world.globex, at("2027-01-14T08:05:00")).started  # globex's own pass, its own cursor
    assert their_run.definition.key == theirs.key and their_run.input["cron"] == "*/5 * * * *"
    assert len(runs_of(world.acme, ours)) == before


@pytest.mark.django_db
def test_the_definition_page_shows_the_next_runs_in_the_tenants_time_zone(world):
    tenant_zone_set(world.acme, "America/Chicago")
    definition = definition_published(world.acme, schedule_spec("0 7 * * 1-5"))
    client = signed_in_client(world.acme.host, world.acme.users["planner"], world.acme.schema)
    body = client.get(f"/workflows/{definition.key}/").content.decode()
    section = body[body.index('id="schedule"') : body.index("</section>", body.index('id="schedule"'))]
    assert "America/Chicago" in section and "0 7 * * 1-5" in section and "At 07:00 on Monday through Friday" in section
    upcoming = schedule_next_firings(schedule_spec("0 7 * * 1-5"), "America/Chicago", 3)
    shown = re.findall(r'<time datetime="([^"]+)">([^<]+)</time>', section)
    assert [moment for moment, _label in shown] == [moment.isoformat() for moment in upcoming]
    assert all(label.endswith(", 07:00") and not label.startswith(("Sat", "Sun")) for _moment, label in shown), shown
    plain = definition_published(world.acme, {"start": "done", "steps": END})
    assert 'id="schedule"' not in client.get(f"/workflows/{plain.key}/").content.decode()


# --- events --------------------------------------------------------------------------------


def start_event(tenant_world, event_id: str, payload: dict, correlation: dict | None = None, event_type: str = "tracking.milestone"):
    with schema_context(tenant_world.schema):
        return event_triggers_start(event_type=event_type, payload=payload, correlation=correlation, event_id=event_id, actor=SYSTEM)


@pytest.mark.django_db
def test_an_event_starts_the_definitions_whose_filter_is_true(world):
    delivered = definition_published(world.acme, event_spec('event.code == "DELIVERED"'))
    delayed = definition_published(world.acme, event_spec('event.code == "DELAYED"'))
    every = definition_published(world.acme, event_spec())
    elsewhere = definition_published(world.acme, event_spec(event_type="order.created"))
    payload = {"code": "DELIVERED", "shipment": "SHP-7"}
    fired = start_event(world.acme, "E-1", payload, {"shipment": "SHP-7", "order": 12, "carrier": "ACME", "po": ""})
    assert fired.problems == []
    assert {run.definition_id for run in fired.started} == {delivered.pk, every.pk}
    run = next(run for run in fired.started if run.definition_id == delivered.pk)
    assert (run.trigger, run.business_key, run.input) == ("event", "event:E-1", payload)
    assert run.correlation == {"shipment": "SHP-7", "order": "12"}  # only the keys runs know, with a value
    assert runs_of(world.acme, delayed) == [] and runs_of(world.acme, elsewhere) == []


@pytest.mark.django_db
def test_a_filter_that_fails_starts_nothing_and_is_reported(world):
    broken = definition_published(world.acme, event_spec("event.eta.hours > 2"))
    number = definition_published(world.acme, event_spec("size(event.code)"))
    fine = definition_published(world.acme, event_spec('correlation.shipment == "SHP-9"'))
    fired = start_event(world.acme, "E-2", {"code": "DELAYED"}, {"shipment": "SHP-9"})
    assert [run.definition_id for run in fired.started] == [fine.pk]
    problems = {problem.definition: problem for problem in fired.problems}
    assert set(problems) == {broken.key, number.key}
    assert problems[broken.key].trigger_index == 0
    assert problems[broken.key].reason.startswith("filter `event.eta.hours > 2` failed:") and "eta" in problems[broken.key].reason
    assert problems[number.key].reason == "filter `size(event.code)` gave IntType 7, not true or false"
    assert runs_of(world.acme, broken) == [] and runs_of(world.acme, number) == []


@pytest.mark.django_db
def test_the_same_event_twice_starts_one_run(world):
    definition = definition_published(world.acme, event_spec())
    (first,) = start_event(world.acme, "E-3", {"code": "PICKED_UP"}).started
    again = start_event(world.acme, "E-3", {"code": "PICKED_UP"})
    assert again.started == [] and [run.pk for run in again.duplicates] == [first.pk]
    (other,) = start_event(world.acme, "E-4", {"code": "PICKED_UP"}).started
    assert [run.pk for run in runs_of(world.acme, definition)] == [first.pk, other.pk]


@pytest.mark.django_db
def test_an_event_in_one_tenant_never_starts_another_tenants_definition(world):
    ours = definition_published(world.acme, event_spec())
    theirs = definition_published(world.globex, event_spec())
    fired = start_event(world.acme, "E-5", {"code": "DELIVERED"})
    assert [run.definition_id for run in fired.started] == [ours.pk]
    assert runs_of(world.globex, theirs) == []
    assert [run.definition_id for run in start_event(world.globex, "E-5", {"code": "DELIVERED"}).started] == [theirs.pk]
    assert len(runs_of(world.acme, ours)) == 1


# --- on a real worker --------------------------------------------------------------------------


@pytest.mark.worker
def test_the_scheduler_task_on_a_worker_starts_the_runs_a_schedule_owes(world, committed, tmp_path):
    definition = definition_published(world.acme, schedule_spec("* * * * *"))
    minute = timezone.now().replace(second=0, microsecond=0)
    try:
        with schema_context(world.acme.schema):
            ScheduleCursor.objects.create(
                definition=definition, trigger_index=0, cron="* * * * *", last_fired_for=minute - timedelta(minutes=3)
            )
        with celery_worker(tmp_path / "worker.log"):
            dispatch_schedules.apply_async()  # what beat sends twice a minute
            deadline = time.time() + 45
            while time.time() < deadline:
                runs = runs_of(world.acme, definition)
                if len(runs) >= 3 and all(run.status == "succeeded" for run in runs):
                    break
                time.sleep(0.2)
        expected = {f"schedule:0:{minute - timedelta(minutes=back):%Y-%m-%dT%H:%MZ}" for back in (0, 1, 2)}
        assert expected <= {run.business_key for run in runs}, [run.business_key for run in runs]
        assert {(run.trigger, run.status) for run in runs} == {("schedule", "succeeded")}
        with schema_context(world.acme.schema):
            assert ScheduleCursor.objects.get(definition=definition).last_fired_for >= minute
    finally:
        runs_delete(world.acme, definition)
        with schema_context(world.acme.schema):
            Definition.objects.filter(pk=definition.pk).delete()
        connection.set_schema_to_public()
