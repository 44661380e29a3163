"""The inbox API: the inbound event log with the page's filters and cursor pages, one event with
its headers, body, pending dispatch and replay history, and replaying a quarantined event (as it
is or with a fixed body) by scope or role; every refusal a problem+json that says why; all of it
in the OpenAPI schema."""

from __future__ import annotations

import json

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from accounts.services import api_key_create
from connectors.inbox import event_dispatch
from connectors.models import Connection, EventDispatch, InboundEvent
from governance.models import AuditEvent
from tests.conftest import host_client, signed_in_client

pytestmark = pytest.mark.django_db

BROKEN = json.dumps({"event_type": "shipment.milestone", "correlation": {"pro": "PRO-9"}, "payload": {}})


def _key(world, *scopes: str) -> dict[str, str]:
    with schema_context(world.acme.schema):
        _key, secret = api_key_create(name="integration", scopes=list(scopes), actor=world.acme.users["tenant_admin"])
    return {"HTTP_AUTHORIZATION": f"Api-Key {secret}"}


def _problem(response, status: int) -> dict:
    assert response.status_code == status, response.content[:400]
    assert response["Content-Type"] == "application/problem+json"
    return response.json()


def _event(connection: Connection, body: str, external_id: str, channel: str = "webhook", dispatch: bool = True) -> InboundEvent:
    """An event as the inbox stores it; handed on (delivered or quarantined) when `dispatch`."""
    event = InboundEvent.objects.create(
        connection=connection,
        channel=channel,
        external_id=external_id,
        content_type="application/json",
        headers={"webhook-id": external_id},
        body=body,
        received_at=timezone.now(),
    )
    EventDispatch.objects.create(event=event, created_at=event.received_at)
    if dispatch:
        event_dispatch(event.pk)
    return InboundEvent.objects.get(pk=event.pk)


def _milestone(event_id: str, pro: str) -> str:
    return json.dumps({"event_type": "shipment.milestone", "event_id": event_id, "correlation": {"pro": pro}, "payload": {}})


@pytest.fixture
def inbox_events(world) -> dict[str, InboundEvent]:
    with schema_context(world.acme.schema):
        carrier = Connection.objects.create(key="acme-carrier", name="Acme carrier", kind="carrier", base_url="https://carrier.example")
        erp = Connection.objects.create(key="acme-erp", name="Acme ERP", kind="erp", base_url="https://erp.example")
        return {
            "delivered": _event(carrier, _milestone("evt-1", "PRO-100"), "msg-1"),
            "quarantined": _event(carrier, BROKEN, "msg-2"),
            "pending": _event(erp, _milestone("evt-3", "PRO-300"), "msg-3", channel="api", dispatch=False),
        }


def test_the_log_lists_newest_first_in_cursor_pages_with_the_pages_filters(world, inbox_events):
    reader = _key(world, "connections:read")
    client = host_client(world.acme.host)
    first = client.get("/api/v1/inbound-events?page_size=2", **reader).json()
    assert [item["id"] for item in first["results"]] == [inbox_events["pending"].pk, inbox_events["quarantined"].pk]
    second = client.get(first["next"].split("acme.localhost")[-1], **reader).json()
    assert [item["id"] for item in second["results"]] == [inbox_events["delivered"].pk] and second["next"] is None
    item = second["results"][0]
    assert (item["connection"], item["status"], item["external_id"]) == ("acme-carrier", "delivered", "msg-1")
    assert item["canonical"][0]["correlation"] == {"pro": "PRO-100"} and "body" not in item

    def ids(query: str) -> list[int]:
        return [found["id"] for found in client.get(f"/api/v1/inbound-events?{query}", **reader).json()["results"]]

    assert ids("status=quarantined") == [inbox_events["quarantined"].pk]
    assert ids("connection=acme-erp") == ids("channel=api") == [inbox_events["pending"].pk]
    assert ids("search=PRO-100") == [inbox_events["delivered"].pk]
    assert ids("search=msg-2") == [inbox_events["quarantined"].pk]
    assert ids(f"received_from={timezone.now().date().isoformat()}&status=delivered") == [inbox_events["delivered"].pk]
    assert ids("received_to=2000-01-01") == []


def test_a_bad_filter_is_a_400_naming_each_parameter(world, inbox_events):
    answer = host_client(world.acme.host).get(
        "/api/v1/inbound-events?status=lost&channel=fax&received_from=yesterday", **_key(world, "connections:read")
    )
    problem = _problem(answer, 400)
    assert problem["type"].endswith("/inbound-events-query-invalid")
    assert {(error["pointer"], error["reason"]) for error in problem["errors"]} == {
        ("status", "'lost' is not a status; use received, delivered, quarantined"),
        ("channel", "'fax' is not a channel; use webhook, api, upload, sftp, mqtt"),
        ("received_from", "'yesterday' is not a date; write YYYY-MM-DD"),
    }


def test_one_event_has_its_headers_body_pending_dispatch_and_replays(world, inbox_events):
    reader = _key(world, "connections:read")
    client = host_client(world.acme.host)
    pending = client.get(f"/api/v1/inbound-events/{inbox_events['pending'].pk}", **reader).json()
    assert pending["headers"] == {"webhook-id": "msg-3"} and json.loads(pending["body"])["event_id"] == "evt-3"
    assert pending["dispatch"]["attempts"] == 0 and pending["replay_history"] == [] and pending["original_body"] == ""
    quarantined = client.get(f"/api/v1/inbound-events/{inbox_events['quarantined'].pk}", **reader).json()
    assert quarantined["dispatch"] is None and quarantined["error_pointer"] == "/event_id"
    assert "event id must be a non-empty text" in quarantined["error"]
    missing = _problem(client.get("/api/v1/inbound-events/999999", **reader), 404)
    assert missing["detail"] == "There is no inbound event 999999 in this workspace."


def test_a_writer_replays_a_quarantined_event_with_a_fixed_body_and_it_is_audited(world, inbox_events):
    writer = _key(world, "connections:write")
    event = inbox_events["quarantined"]
    fixed = json.dumps({**json.loads(BROKEN), "event_id": "evt-2"})
    answer = host_client(world.acme.host).post(
        f"/api/v1/inbound-events/{event.pk}/replay", json.dumps({"body": fixed}), content_type="application/json", **writer
    )
    assert answer.status_code == 202, answer.content
    replayed = answer.json()
    assert (replayed["status"], replayed["body"], replayed["original_body"], replayed["replays"]) == ("received", fixed, BROKEN, 1)
    assert replayed["dispatch"]["attempts"] == 0
    assert [item["fixed"] for item in replayed["replay_history"]] == [True]
    with schema_context(world.acme.schema):
        assert event_dispatch(event.pk) == "delivered"
        audit = AuditEvent.objects.get(action="inbound_event.replayed", target_id=str(event.pk))
        assert audit.actor_kind == "api_key" and fixed not in json.dumps(audit.data)
    again = host_client(world.acme.host).post(f"/api/v1/inbound-events/{event.pk}/replay", "{}", content_type="application/json", **writer)
    conflict = _problem(again, 409)
    assert conflict["type"].endswith("/inbound-event-not-quarantined") and "is delivered, not quarantined" in conflict["detail"]


def test_a_fixed_body_that_is_not_json_is_a_422_at_body_and_nothing_is_replayed(world, inbox_events):
    event = inbox_events["quarantined"]
    answer = host_client(world.acme.host).post(
        f"/api/v1/inbound-events/{event.pk}/replay",
        json.dumps({"body": '{"event_type": '}),
        content_type="application/json",
        **_key(world, "connections:write"),
    )
    problem = _problem(answer, 422)
    assert problem["errors"] == [{"pointer": "/body", "reason": "is not JSON: Expecting value at line 1, column 16"}]
    with schema_context(world.acme.schema):
        assert InboundEvent.objects.get(pk=event.pk).status == "quarantined"


def test_replaying_needs_the_write_scope_or_an_editors_role(world, inbox_events):
    event = inbox_events["quarantined"]
    path = f"/api/v1/inbound-events/{event.pk}/replay"
    reader = host_client(world.acme.host).post(path, "{}", content_type="application/json", **_key(world, "connections:read"))
    assert "connections:write" in _problem(reader, 403)["detail"]
    dispatcher = signed_in_client(world.acme.host, world.acme.users["dispatcher"], world.acme.schema)
    _problem(dispatcher.post(path, "{}", content_type="application/json"), 403)
    assert dispatcher.get(f"/api/v1/inbound-events/{event.pk}").status_code == 200  # any staff member reads
    planner = signed_in_client(world.acme.host, world.acme.users["planner"], world.acme.schema)
    assert planner.post(path, "{}", content_type="application/json").status_code == 202
    with schema_context(world.acme.schema):
        stored = InboundEvent.objects.get(pk=event.pk)
        assert (stored.status, stored.body, stored.original_body) == ("received", BROKEN, "")


def test_the_inbox_api_is_in_the_openapi_schema(world):
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    paths = schema["paths"]
    assert paths["/api/v1/inbound-events"]["get"]["operationId"] == "inbound_events_list"
    assert {"connection", "status", "channel", "received_from", "received_to", "search", "cursor"} <= {
        parameter["name"] for parameter in paths["/api/v1/inbound-events"]["get"]["parameters"]
    }
    assert paths["/api/v1/inbound-events/{event_id}"]["get"]["operationId"] == "inbound_event_retrieve"
    replay = paths["/api/v1/inbound-events/{event_id}/replay"]["post"]
    assert replay["operationId"] == "inbound_event_replay" and {"202", "409", "422"} <= set(replay["responses"])
    components = schema["components"]["schemas"]
    assert components["InboundStatusEnum"]["enum"] == ["received", "delivered", "quarantined"]
    assert {"headers", "body", "dispatch", "replay_history"} <= set(components["InboundEventDetail"]["properties"])
