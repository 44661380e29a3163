"""Normalization into canonical events, and the reasons (with JSON pointers) when it cannot."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from connectors.normalize import CanonicalEvent, NormalizationFailed, normalize

TRACKER_EVENT: dict[str, Any] = {
    "id": "evt_100",
    "object": "Event",
    "description": "tracker.updated",
    "result": {
        "id": "trk_7",
        "object": "Tracker",
        "tracking_code": "PRO-778812",
        "status": "available_for_pickup",
        "status_detail": "arrived_at_destination",
        "carrier": "ACME Freight",
        "shipment_id": "shp_41",
        "est_delivery_date": "2026-12-01T00:00:00Z",
        "signed_by": None,
        "updated_at": "2026-11-27T08:00:00Z",
        "tracking_details": [
            {"object": "TrackingDetail", "message": "Picked up", "status": "in_transit", "datetime": "2026-11-26T09:00:00Z"},
            {
                "object": "TrackingDetail",
                "message": "Ready at terminal",
                "status": "available_for_pickup",
                "datetime": "2026-11-27T07:55:00Z",
                "tracking_location": {"object": "TrackingLocation", "city": "Reno", "state": "NV", "country": "US", "zip": "89501"},
            },
        ],
    },
}


def _body(value) -> bytes:
    return json.dumps(value).encode()


def test_an_easypost_tracker_event_becomes_one_milestone_in_bastons_vocabulary():
    (event,) = normalize(mapper="easypost", body=_body(TRACKER_EVENT))
    assert (event.event_type, event.event_id, event.correlation) == (
        "shipment.milestone",
        "evt_100",
        {"pro": "PRO-778812", "shipment": "shp_41"},
    )
    assert event.payload["code"] == "ready_for_pickup" and event.payload["raw_code"] == "available_for_pickup"
    assert event.payload["occurred_at"] == "2026-11-27T07:55:00Z" and event.payload["message"] == "Ready at terminal"
    assert event.payload["location"] == {"city": "Reno", "state": "NV", "country": "US", "zip": "89501"}
    unknown = {**TRACKER_EVENT, "result": {**TRACKER_EVENT["result"], "status": "teleported", "tracking_details": []}}
    (event,) = normalize(mapper="easypost", body=_body(unknown))
    assert event.payload["code"] == "unknown" and event.payload["raw_code"] == "teleported"
    assert event.payload["occurred_at"] == "2026-11-27T08:00:00Z"


@pytest.mark.parametrize(
    ("body", "reason", "pointer"),
    [
        ({**TRACKER_EVENT, "object": "Tracker"}, "has `object: Event`", "/object"),
        ({**TRACKER_EVENT, "result": {"object": "Shipment"}}, "must be a Tracker", "/result"),
        (
            {**TRACKER_EVENT, "result": {**TRACKER_EVENT["result"], "tracking_code": ""}},
            "tracking code must be a non-empty text",
            "/result/tracking_code",
        ),
        ({k: v for k, v in TRACKER_EVENT.items() if k != "id"}, "event id must be a non-empty text", "/id"),
    ],
)
def test_an_easypost_body_that_is_not_a_tracker_event_says_what_and_where(body, reason, pointer):
    with pytest.raises(NormalizationFailed) as failed:
        normalize(mapper="easypost", body=_body(body))
    assert reason in failed.value.reason and failed.value.pointer == pointer


def test_a_canonical_body_passes_through_checked():
    body = {"event_type": "order.received", "event_id": "erp-1", "correlation": {"order": "SO-9", "po": 12}, "payload": {"total": 5}}
    assert normalize(mapper="canonical", body=_body(body)) == [
        CanonicalEvent("order.received", "erp-1", {"order": "SO-9", "po": "12"}, {"total": 5})
    ]
    with pytest.raises(NormalizationFailed) as failed:
        normalize(mapper="canonical", body=_body({**body, "correlation": {"truck": "T-1"}}))
    assert (failed.value.pointer, "'truck' is not a correlation key" in failed.value.reason) == ("/correlation/truck", True)


def test_a_mapping_reads_paths_and_literals_and_names_the_path_a_required_value_lacks():
    mapping = {
        "event_type": "order.received",
        "event_id": "$.data.id",
        "correlation": {"order": "$.data.number", "po": "$.data.customer_po"},
        "payload": {"total": "$.data.amount", "lines": "$.data.lines", "channel": "erp"},
    }
    body = {"data": {"id": 41, "number": "SO-41", "amount": 99.5, "lines": [{"sku": "A"}]}}
    (event,) = normalize(mapper="mapping", body=_body(body), mapping=mapping)
    assert event == CanonicalEvent("order.received", "41", {"order": "SO-41"}, {"total": 99.5, "lines": [{"sku": "A"}], "channel": "erp"})
    with pytest.raises(NormalizationFailed) as failed:
        normalize(mapper="mapping", body=_body({"data": {"number": "SO-41"}}), mapping=mapping)
    assert failed.value.pointer == "/data/id" and "'$.data.id', which the body does not have" in failed.value.reason
    with pytest.raises(NormalizationFailed, match="has no mapping"):
        normalize(mapper="mapping", body=_body(body), mapping={})


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"event_type": "x",', "the body is not JSON: Expecting property name enclosed in double quotes at line 1, column 20"),
        (b"\xff\xfe", "the body is not UTF-8 text (byte 0)"),
        (b"[1, 2]", "the body must be a JSON object"),
    ],
)
def test_a_body_that_is_not_a_json_object_says_why(body, reason):
    with pytest.raises(NormalizationFailed) as failed:
        normalize(mapper="canonical", body=body)
    assert failed.value.reason == reason


def test_an_unknown_mapper_is_named():
    with pytest.raises(NormalizationFailed, match="unknown mapper 'csv'"):
        normalize(mapper="csv", body=b"{}")


# --- X12 --------------------------------------------------------------------------------------------


def test_an_x12_214_becomes_one_milestone_per_status_and_a_990_its_answer():
    from tests.connectors.edi.fixtures import RESPONSE_990, STATUS_214, envelope

    milestones = normalize(mapper="x12", body=envelope(STATUS_214).encode())
    assert [event.payload["code"] for event in milestones] == ["arrived_at_pickup", "arrived_at_delivery", "delivery_delayed"]
    first = milestones[0]
    assert first.event_type == "shipment.milestone" and first.event_id == "x12:SHIPPERCO:000000101:7001:0001:1"
    assert first.correlation == {"shipment": "SHIP-1001", "pro": "PRO778899", "bol": "BOL-55", "po": "PO-1"}
    assert first.payload["raw_code"] == "X3" and first.payload["location"]["city"] == "RUMFORD"
    assert len({event.event_id for event in milestones}) == 3  # each milestone its own event id

    (answer,) = normalize(mapper="x12", body=envelope(RESPONSE_990, functional_id="GF").encode())
    assert (answer.event_type, answer.correlation["order"], answer.payload["accepted"]) == ("edi.990", "LOAD-42", False)


def test_an_x12_interchange_with_nothing_to_take_says_what_and_where():
    from tests.connectors.edi.fixtures import STATUS_214, envelope

    broken = re.sub(r"SE\*\d+\*0001~", "SE*99*0001~", envelope(STATUS_214))
    with pytest.raises(NormalizationFailed) as failed:
        normalize(mapper="x12", body=broken.encode())
    assert "no transaction set could be taken" in failed.value.reason and "segment" in failed.value.pointer
    with pytest.raises(NormalizationFailed, match="not an X12 interchange"):
        normalize(mapper="x12", body=b'{"event_type": "x"}')
