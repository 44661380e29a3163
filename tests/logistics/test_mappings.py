"""Status mapping tables are versioned data: every tenant starts with the platform defaults as
version 1, drafts are changed and published by the right people, one version per table is in
force, and a published version never changes – the services and the database both refuse."""

from __future__ import annotations

import json

import pytest
from django.db import DatabaseError, IntegrityError, transaction
from django_tenants.utils import schema_context

from governance.models import AuditEvent
from logistics import mapping_defaults
from logistics.mapping_defaults import DATA_DIR, DefaultTable, entry_problems, platform_defaults
from logistics.models import MappingKind, StatusMappingEntry, StatusMappingVersion
from logistics.selectors import mapping_changes, mapping_translate
from logistics.services import (
    MappingRefused,
    mapping_defaults_install,
    mapping_entry_remove,
    mapping_entry_set,
    mapping_version_activate,
    mapping_version_discard,
    mapping_version_draft_create,
    mapping_version_publish,
)
from logistics.vocabulary import PROGRESSION_RANK, TrackingStatus
from tests.logistics.conftest import SYSTEM

pytestmark = pytest.mark.django_db


def _active(kind: str) -> StatusMappingVersion:
    return StatusMappingVersion.objects.get(kind=kind, status="active")


def test_every_status_has_a_progression_rank():
    assert set(PROGRESSION_RANK) == set(TrackingStatus.values)


def test_the_shipped_default_files_are_valid_and_cover_the_codes_the_issue_names():
    tables = {table.kind: table for table in platform_defaults()}
    assert set(tables) == set(MappingKind.values)
    for table in tables.values():
        assert table.release and table.entries
        for entry in table.entries:
            assert entry_problems(table.kind, entry) == [], entry
    status = {entry["code"]: entry for entry in tables["x12_214_status"].entries}
    expected = {
        "X1": "arrived_at_delivery",
        "X3": "arrived_at_pickup",
        "AF": "picked_up",
        "X6": "in_transit",
        "D1": "delivered",
        "SD": "delivery_delayed",
    }
    assert {code: status[code]["status"] for code in expected} == expected
    assert status["A9"]["signal"] == "damage"
    assert status["AG"]["estimate"] is True and status["X2"]["estimate"] is True
    reasons = {entry["code"]: entry for entry in tables["x12_214_reason"].entries}
    assert reasons["NS"]["responsible"] == "none" and reasons["AM"]["responsible"] == "shipper"
    api = {entry["code"]: entry["status"] for entry in tables["carrier_api_status"].entries}
    assert set(api) == {
        "pre_transit", "in_transit", "out_for_delivery", "delivered", "return_to_sender", "failure", "cancelled", "error", "unknown", "available_for_pickup",
    }  # fmt: skip
    assert api["available_for_pickup"] == "ready_for_pickup" and api["failure"] == "delivery_failed"


def test_a_broken_default_file_is_refused_with_the_file_and_entry(tmp_path, monkeypatch):
    broken = json.loads((DATA_DIR / "carrier_api_status.json").read_text())
    broken["entries"][1]["status"] = "teleported"
    (tmp_path / "carrier_api_status.json").write_text(json.dumps(broken))
    with pytest.raises(mapping_defaults.DefaultsInvalid, match=r"carrier_api_status.json: entry 1 \('in_transit'\): status must be one of"):
        mapping_defaults._table(tmp_path / "carrier_api_status.json")


def test_every_tenant_starts_with_the_defaults_as_active_version_1(world):
    for place in (world.acme, world.globex):
        with schema_context(place.schema):
            for table in platform_defaults():
                version = _active(table.kind)
                assert (version.number, version.platform_release) == (1, table.release)
                assert version.entries.count() == len(table.entries)


def test_a_draft_copies_the_active_version_and_publishing_puts_it_in_force(acme):
    before = _active("x12_214_status")
    draft = mapping_version_draft_create(kind="x12_214_status", actor=acme.users["planner"])
    assert (draft.number, draft.status, draft.based_on_id) == (2, "draft", before.pk)
    assert draft.entries.count() == before.entries.count()
    mapping_entry_set(version=draft, code=" x6 ", description="En route, carrier-specific", status="on_hold", actor=acme.users["planner"])
    mapping_entry_set(version=draft, code="ZZ", description="Carrier's own code", status="in_transit", actor=acme.users["planner"])
    mapping_entry_remove(version=draft, code="oo", actor=acme.users["planner"])
    assert mapping_changes(draft, before).__dict__ == {"added": ["ZZ"], "changed": ["X6"], "removed": ["OO"]}
    # Until published, events still translate through v1.
    assert mapping_translate("x12_214_status", "X6").status == "in_transit"

    published = mapping_version_publish(version=draft, actor=acme.users["tenant_admin"], notes="Carrier X holds at X6")
    before.refresh_from_db()
    assert (published.status, before.status) == ("active", "retired")
    assert published.published_by_email == acme.users["tenant_admin"].email and before.retired_at is not None
    translated = mapping_translate("x12_214_status", "x6")
    assert (translated.status, translated.version.number) == ("on_hold", 2)
    assert mapping_translate("x12_214_status", "OO").found is False
    event = AuditEvent.objects.filter(action="status_mapping.published").latest("id")
    assert event.data["added"] == ["ZZ"] and event.data["replaces"] == 1


def test_published_versions_never_change_through_the_services(acme):
    active = _active("carrier_api_status")
    admin = acme.users["tenant_admin"]
    for attempt in (
        lambda: mapping_entry_set(version=active, code="in_transit", description="x", status="delivered", actor=admin),
        lambda: mapping_entry_remove(version=active, code="in_transit", actor=admin),
        lambda: mapping_version_publish(version=active, actor=admin),
        lambda: mapping_version_discard(version=active, actor=admin),
    ):
        with pytest.raises(MappingRefused, match="published versions never change"):
            attempt()
    assert active.entries.get(code="in_transit").status == "in_transit"


def test_the_database_refuses_changes_to_a_published_version(acme):
    active = _active("x12_214_status")
    entry = active.entries.get(code="D1")
    refusals = [
        lambda: StatusMappingEntry.objects.filter(pk=entry.pk).update(status="cancelled"),
        lambda: StatusMappingEntry.objects.filter(pk=entry.pk).delete(),
        lambda: StatusMappingEntry.objects.create(version=active, code="QQ", description="sneaked in", status="delivered"),
        lambda: StatusMappingVersion.objects.filter(pk=active.pk).update(notes="rewritten"),
        lambda: StatusMappingVersion.objects.filter(pk=active.pk).update(status="draft"),
        lambda: StatusMappingVersion.objects.filter(pk=active.pk).delete(),
    ]
    for refused in refusals:
        with pytest.raises(DatabaseError, match="is published"), transaction.atomic():
            refused()
    entry.refresh_from_db()
    assert entry.status == "delivered" and StatusMappingEntry.objects.filter(version=active).count() == len(platform_defaults()[0].entries)


def test_only_one_version_of_a_table_is_in_force_and_only_one_draft(acme):
    with pytest.raises(IntegrityError), transaction.atomic():
        StatusMappingVersion.objects.create(kind="x12_214_status", number=9, status="active", created_by_email="x@example.test")
    mapping_version_draft_create(kind="x12_214_status", actor=SYSTEM)
    with pytest.raises(MappingRefused, match="v2 of this table is already a draft"):
        mapping_version_draft_create(kind="x12_214_status", actor=SYSTEM)
    assert StatusMappingVersion.objects.filter(kind="x12_214_reason", status="draft").count() == 0


def test_a_retired_version_can_be_put_back_in_force_with_a_reason(acme):
    admin = acme.users["tenant_admin"]
    first = _active("x12_214_reason")
    draft = mapping_version_draft_create(kind="x12_214_reason", actor=admin)
    mapping_entry_set(version=draft, code="AM", description="Shipper related", responsible="carrier", actor=admin)
    mapping_version_publish(version=draft, actor=admin)
    with pytest.raises(MappingRefused, match="Say why"):
        mapping_version_activate(version=first, reason=" ", actor=admin)
    with pytest.raises(MappingRefused, match="only a retired version"):
        mapping_version_activate(version=draft, reason="again", actor=admin)
    mapping_version_activate(version=first, reason="v2 blamed carriers for shipper delays", actor=admin)
    first.refresh_from_db()
    draft.refresh_from_db()
    assert (first.status, draft.status) == ("active", "retired")
    assert list(StatusMappingVersion.objects.filter(kind="x12_214_reason", status="active")) == [first]
    assert AuditEvent.objects.filter(action="status_mapping.activated", reason__contains="blamed carriers").exists()


def test_who_may_draft_publish_and_activate(acme):
    with pytest.raises(MappingRefused, match="Only tenant admins and planners draft"):
        mapping_version_draft_create(kind="x12_214_status", actor=acme.users["dispatcher"])
    draft = mapping_version_draft_create(kind="x12_214_status", actor=acme.users["planner"])
    with pytest.raises(MappingRefused, match="Only tenant admins and planners change"):
        mapping_entry_set(version=draft, code="ZZ", description="x", status="in_transit", actor=acme.users["finance"])
    with pytest.raises(MappingRefused, match="Only tenant admins publish"):
        mapping_version_publish(version=draft, actor=acme.users["planner"])
    mapping_version_publish(version=draft, actor=acme.users["tenant_admin"])


def test_entries_are_checked_against_the_kind_of_table(acme):
    status_draft = mapping_version_draft_create(kind="x12_214_status", actor=SYSTEM)
    reason_draft = mapping_version_draft_create(kind="x12_214_reason", actor=SYSTEM)
    cases = [
        (status_draft, {"code": "ZZ", "description": "x", "status": "teleported"}, "status", "must be one of Baton's tracking statuses"),
        (status_draft, {"code": "Z Z", "description": "x", "status": "in_transit"}, "code", "one word"),
        (status_draft, {"code": "ZZ", "description": " ", "status": "in_transit"}, "description", "say what the code means"),
        (
            reason_draft,
            {"code": "ZZ", "description": "x", "status": "in_transit", "responsible": "carrier"},
            "status",
            "belongs to status tables",
        ),
        (reason_draft, {"code": "ZZ", "description": "x", "responsible": "aliens"}, "responsible", "must be one of none, carrier"),
        (status_draft, {"code": "ZZ", "description": "x", "status": "in_transit", "signal": "vibes"}, "signal", "must be empty or one of"),
    ]
    for version, fields, field_name, reason in cases:
        with pytest.raises(MappingRefused, match=reason) as refused:
            mapping_entry_set(version=version, actor=SYSTEM, **fields)
        assert refused.value.field == field_name


def test_publishing_an_empty_draft_is_refused_and_a_draft_can_be_discarded(acme):
    draft = mapping_version_draft_create(kind="carrier_api_status", actor=SYSTEM)
    for entry in list(draft.entries.all()):
        mapping_entry_remove(version=draft, code=entry.code, actor=SYSTEM)
    with pytest.raises(MappingRefused, match="has no codes"):
        mapping_version_publish(version=draft, actor=SYSTEM)
    mapping_version_discard(version=draft, actor=SYSTEM)
    assert not StatusMappingVersion.objects.filter(kind="carrier_api_status", status="draft").exists()
    assert _active("carrier_api_status").number == 1


def test_a_new_platform_release_is_installed_once_and_never_overrides_a_tenants_own_version(acme, monkeypatch):
    admin = acme.users["tenant_admin"]
    draft = mapping_version_draft_create(kind="x12_214_reason", actor=admin)
    mapping_version_publish(version=draft, actor=admin)  # the tenant's own reason table is in force
    shipped = platform_defaults()
    newer = tuple(DefaultTable(table.kind, "2099.1", table.notes, table.entries) for table in shipped)
    monkeypatch.setattr(mapping_defaults, "platform_defaults", lambda: newer)
    installed = {version.kind: version for version in mapping_defaults_install(actor=admin)}
    assert installed["x12_214_status"].status == "active"  # the tenant still used the platform's release
    assert installed["x12_214_reason"].status == "retired"  # its own v2 stays in force
    assert _active("x12_214_reason").pk == draft.pk
    assert mapping_defaults_install(actor=admin) == []
    assert AuditEvent.objects.filter(action="status_mapping.defaults_installed").count() == 3
