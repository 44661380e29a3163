"""Template 1, "Order to shipment release" 2.0.0, end to end: runs advance on a real Celery worker,
tender to the sandbox TMS (OAuth2, Idempotency-Key), hear the carriers' 990s as X12 through the
EDI inbox, release to the sandbox WMS and confirm to the sandbox ERP – and Baton's own records
(order, shipment, tracking, exceptions) change through the `order.*` actions.

The sandbox ERP takes a confirmation at `/api/orders/<number>/confirmations`; a connection's
action path is fixed, so the ERP here also answers the same confirmation addressed by the body's
`order_number` (`ConfirmingErp`), which is what the template's `confirm_order` sends."""

from __future__ import annotations

import datetime as dt
import io
import itertools
import json
import re
import time
import uuid
from typing import Any

import pytest
from django.core.management import call_command
from django_tenants.utils import schema_context

from accounts.services import api_key_create
from connectors.demo import EDI_KEY, OUR_EDI_QUALIFIER, demo_connections_seed, our_edi_id
from connectors.edi import InMemoryControlNumbers, PartnerSettings, write_interchange
from connectors.edi.documents import TenderResponse
from connectors.edi_transport import EdiPartnerInput, edi_partner_configure, edi_receive
from connectors.models import AuthMethod, Connection, ConnectionKind, EdiPartner, InboundEvent
from connectors.sandbox import DEMO_TMS_CLIENTS, ErpSandbox, TmsSandbox, WmsSandbox
from connectors.sandbox.base import Answer, Fields, Route, SandboxRequest
from connectors.selectors import connection_input
from connectors.services import ConnectionInput, connection_create, connection_update
from governance.services import Actor
from logistics.actions.orders import order_validate
from logistics.library.order_release import TEMPLATE
from logistics.models import ExceptionCase, Location, Order, Shipment, TrackingEvent
from logistics.orders import order_check
from logistics.services import location_create
from tenants.db import connection
from tests.conftest import host_client
from tests.logistics.flows import clone_published, definition_forget, until
from tests.processes import celery_worker, suite_env
from tests.workflows.conftest import publish
from workflows.management.commands.seed_library import LIBRARY, ORDER_RELEASE
from workflows.models import Approval, Run, StepExecution, TemplateVersion, WorkflowTemplate
from workflows.operations import approval_decide
from workflows.runs import run_start
from workflows.selectors import template_version_get
from workflows.validation import definition_validate

SYSTEM = Actor.system("tests-order-release")
ROUTING_GUIDE = ["SBXF", "ODFL"]
SECOND_EDI_KEY = "odfl-edi"
HELD_ACCOUNT = "acme-c1"
CONNECTION_KEYS = ["erp", "tms", "wms", "carrier", EDI_KEY, "carrier-documents", "reefer-telemetry", SECOND_EDI_KEY]
LOCATION_CODES = ["dock-memphis", "store-dallas", "yard-no-street"]
_numbers = itertools.count(int(time.time()) % 100_000_000)


class ConfirmingErp(ErpSandbox):
    """The sandbox ERP, also taking a confirmation addressed by its body (see the module)."""

    def routes(self) -> list[Route]:
        return [*super().routes(), Route("POST", "/api/order-confirmations", self._confirmed_by_body, writes=True)]

    def _confirmed_by_body(self, request: SandboxRequest, match: re.Match[str]) -> Answer:
        fields = Fields(request.body)
        number = fields.text("order_number")
        fields.check()
        return self._order_confirmed(request, re.match(r"(?P<number>.+)", number))  # type: ignore[arg-type]

    def order_open(self, number: str) -> None:
        with self._lock:
            self.orders[number] = {
                "number": number,
                "status": "open",
                "customer": "Acme customer 0",
                "ship_to": {"name": "Dallas store", "city": "Dallas", "country": "US"},
                "requested_ship_date": "2026-12-01",
                "lines": [{"line": 1, "sku": "SKU-PALLET-A", "quantity": 4, "uom": "EA"}],
                "confirmation": None,
                "updated_at": "2026-11-20T08:00:00Z",
            }


# --- the outside world, the worker, the tenant's set-up ------------------------------------------


@pytest.fixture(scope="module")
def systems():
    running = {"erp": ConfirmingErp(), "tms": TmsSandbox(clients=DEMO_TMS_CLIENTS), "wms": WmsSandbox()}
    for system in running.values():
        system.start()
    yield running
    for system in running.values():
        system.stop()


@pytest.fixture(scope="module")
def worker(tmp_path_factory, django_db_setup, django_db_blocker):
    with celery_worker(tmp_path_factory.mktemp("order-release-worker") / "worker.log", env=suite_env()) as process:
        yield process


def _template_version() -> TemplateVersion:
    """2.0.0 in the library, after the starter 1.0.0 as seed_library publishes them."""
    published = None
    for entry in (ORDER_RELEASE, TEMPLATE):
        connection.set_schema_to_public()
        template = WorkflowTemplate.objects.filter(key=entry["key"]).first()
        published = (template_version_get(template=template, version=entry["version"]) if template else None) or publish(entry)
    assert published is not None
    return published


def _second_carrier_edi(acme) -> None:
    """The routing guide's second carrier answers over its own EDI partner connection."""
    if Connection.objects.filter(key=SECOND_EDI_KEY).exists():
        return
    carrier = connection_create(
        data=ConnectionInput(
            key=SECOND_EDI_KEY, name="ODFL EDI", kind=ConnectionKind.EDI_PARTNER, base_url="http://127.0.0.1:9", auth_method=AuthMethod.NONE
        ),
        actor=SYSTEM,
    )
    edi_partner_configure(
        connection=carrier,
        data=EdiPartnerInput(their_qualifier="02", their_id="ODFL", our_qualifier=OUR_EDI_QUALIFIER, our_id=our_edi_id("acme"), usage="T"),
        actor=SYSTEM,
    )


@pytest.fixture(scope="module")
def release(world, systems, django_db_setup, django_db_blocker):
    """Acme with the demo's connections to these sandboxes (the ERP's confirmations added), a
    second carrier's EDI partner, two locations, and the 2.0.0 template cloned and published."""
    with django_db_blocker.unblock():
        version = _template_version()
        key = f"order-release-{uuid.uuid4().hex[:8]}"
        with schema_context(world.acme.schema):
            connection.tenant = world.acme.tenant
            demo_connections_seed(
                tenant_slug="acme", actor=SYSTEM, urls={**{n: s.url for n, s in systems.items()}, "carrier": "http://127.0.0.1:9"}
            )
            erp = Connection.objects.get(key="erp")
            data = connection_input(erp)
            data.settings = {
                **data.settings,
                "actions": {**data.settings["actions"], "confirm_order": {"method": "POST", "path": "/api/order-confirmations"}},
            }
            connection_update(connection=erp, data=data, actor=SYSTEM)
            _second_carrier_edi(world.acme)
            for code, name, city, street in (
                ("dock-memphis", "Memphis DC", "Memphis", "3500 Tchulahoma Rd"),
                ("store-dallas", "Dallas store", "Dallas", "1 Elm St"),
            ):
                if not Location.objects.filter(code=code).exists():
                    location_create(code=code, name=name, city=city, country="US", address_line1=street, actor=SYSTEM)
            if not Location.objects.filter(code="yard-no-street").exists():
                location_create(code="yard-no-street", name="Yard", city="Tulsa", country="US", actor=SYSTEM)
            definition = clone_published(
                world.acme,
                version,
                key=key,
                name="Order release",
                parameters={"routing_guide": ROUTING_GUIDE, "credit_hold_accounts": [HELD_ACCOUNT], "tender_timeout": "PT10M"},
            )
        connection.set_schema_to_public()
    yield definition
    with django_db_blocker.unblock(), schema_context(world.acme.schema):
        definition_forget(world.acme, definition)
        InboundEvent.objects.filter(connection__key__in=CONNECTION_KEYS).delete()
        Connection.objects.filter(key__in=CONNECTION_KEYS).delete()
        Location.objects.filter(code__in=LOCATION_CODES).delete()
        connection.set_schema_to_public()


@pytest.fixture
def tidy(world, committed):
    """What a test's runs wrote into the domain, removed afterwards (committed tests share Acme)."""
    numbers: list[str] = []
    yield numbers.append
    with schema_context(world.acme.schema):
        shipments = Shipment.objects.filter(orders__number__in=numbers)
        ExceptionCase.objects.filter(details__order_id__in=numbers).delete()
        TrackingEvent.objects.filter(shipment__in=shipments).delete()
        Shipment.objects.filter(pk__in=list(shipments.values_list("pk", flat=True))).delete()
        Order.objects.filter(number__in=numbers).delete()
        InboundEvent.objects.filter(connection__key__in=[EDI_KEY, SECOND_EDI_KEY]).delete()


# --- helpers ---------------------------------------------------------------------------------------


def _order(number: str, **changes: Any) -> dict[str, Any]:
    order = {
        "order_id": number,
        "customer": "acme-c0",
        "po_number": f"PO-{number}",
        "ship_from": "dock-memphis",
        "ship_to": "store-dallas",
        "lines": [{"sku": "SKU-PALLET-A", "qty": 4, "weight": 1800, "weight_unit": "lb"}],
    }
    return {**order, **changes}


def _start(world, definition, order: dict[str, Any]) -> Run:
    with schema_context(world.acme.schema):
        run, created = run_start(definition=definition, input=order, trigger="api", correlation={"order": order["order_id"]}, actor=SYSTEM)
        assert created
    return run


def _run(world, run: Run) -> Run:
    with schema_context(world.acme.schema):
        return Run.objects.get(pk=run.pk)


def _waiting_for_990(world, run: Run, visits: int = 1) -> Run:
    return until(
        world,
        lambda: (
            Run.objects.filter(pk=run.pk, status="waiting", current_step="wait-990").first()
            and StepExecution.objects.filter(run=run, step_id="tender", status="succeeded").count() >= visits
            and Run.objects.get(pk=run.pk)
        ),
        f"the run waiting for the 990 of tender {visits}",
    )


def _answer_990(world, *, shipment: str, scac: str, accepted: bool, reason: str = "", remark: str = "") -> None:
    """The carrier's EDI desk sends its 990 (`edi_receive`, as an upload or the API would)."""
    with schema_context(world.acme.schema):
        partner = EdiPartner.objects.select_related("connection").get(their_id=scac)
        settings = PartnerSettings(
            partner=partner.connection.key,
            sender_qualifier=partner.their_qualifier,
            sender_id=partner.their_id,
            receiver_qualifier=partner.our_qualifier,
            receiver_id=partner.our_id,
            version=partner.version,
            group_version=partner.group_version,
            usage=partner.usage,
        )
        now = dt.datetime.now(dt.UTC)
        response = TenderResponse(
            shipment_id=shipment, scac=scac, accepted=accepted, date=now.date(), reason_code=reason, remarks=[remark] if remark else []
        )
        text = write_interchange([response], partner=settings, control_numbers=InMemoryControlNumbers(next(_numbers)), now=now)
        assert not edi_receive(connection=partner.connection, data=text, channel="api").duplicate


def _finished(world, run: Run, statuses: tuple[str, ...]) -> Run:
    return until(world, lambda: Run.objects.filter(pk=run.pk, status__in=statuses).first(), f"the run ending {' or '.join(statuses)}")


# --- the checks, in the tenant's schema (no worker) ---------------------------------------------------


@pytest.mark.django_db
def test_an_order_is_checked_for_master_data_addresses_weights_fields_and_credit_hold(world):
    with schema_context(world.acme.schema):
        location_create(code="dc-a", name="DC A", city="Memphis", country="US", address_line1="1 Dock Rd", actor=SYSTEM)
        location_create(code="dc-b", name="DC B", city="Tulsa", country="US", actor=SYSTEM)
        good = order_check(order=_order("SO-1", ship_from="dc-a", ship_to="dc-a"))
        assert good.problems == [] and good.credit_hold == "" and good.customer.code == "acme-c0"

        bad = order_check(
            order={
                "customer": "acme-zz",
                "ship_from": "dc-b",
                "ship_to": "nowhere",
                "lines": [{"sku": "", "qty": 0}, {"sku": "A", "qty": 2, "weight": -3, "weight_unit": "st"}],
            }
        )
        assert [(problem.field, problem.reason) for problem in bad.problems] == [
            ("/order_id", "the order number is missing"),
            ("/customer", "the customer 'acme-zz' is not in the master data"),
            ("/ship_from", "the ship-from address (dc-b) needs a street"),
            ("/ship_to", "the ship-to location 'nowhere' is not in the master data"),
            ("/lines/0/sku", "line 1 has no SKU"),
            ("/lines/0/qty", "line 1 needs a quantity above zero"),
            ("/lines/0/weight", "line 1 has no weight"),
            ("/lines/1/weight", "line 2 needs a weight above zero, not -3"),
            ("/lines/1/weight_unit", "line 2: 'st' is not a weight unit (lb or kg)"),
        ]
        held = order_check(order=_order("SO-2", customer="acme-c1", ship_from="dc-a", ship_to="dc-a"), credit_hold_accounts=["acme-c1"])
        assert held.problems == [] and held.credit_hold == "the customer 'acme-c1' is on credit hold"
        flagged = order_check(order=_order("SO-3", ship_from="dc-a", ship_to="dc-a", credit_hold=True))
        assert flagged.credit_hold == "the ERP put the order on credit hold"


@pytest.mark.django_db
def test_the_validate_action_keeps_the_order_with_its_status_and_says_duplicate_once_released(world):
    with schema_context(world.acme.schema):
        location_create(code="dc-a", name="DC A", city="Memphis", country="US", address_line1="1 Dock Rd", actor=SYSTEM)
        order = _order("SO-7", ship_from="dc-a", ship_to="dc-a", lines=[{"sku": "A", "qty": 2}])
        answer = order_validate({"order": order, "credit_hold_accounts": []}, idempotency_key="k1")
        assert (answer["outcome"], answer["reason"], answer["recorded"]) == ("invalid", "line 1 has no weight", True)
        kept = Order.objects.get(number="SO-7")
        assert (kept.status, kept.status_reason, kept.ship_from.code, kept.lines.get().sku) == (
            "rejected",
            "line 1 has no weight",
            "dc-a",
            "A",
        )

        kept.status = "released"
        kept.save()
        again = order_validate({"order": order}, idempotency_key="k2")
        assert again["outcome"] == "duplicate"

        unknown = order_validate({"order": _order("SO-8", customer="nobody")}, idempotency_key="k3")
        assert unknown["outcome"] == "invalid" and not unknown["recorded"]
        assert not Order.objects.filter(number="SO-8").exists()


@pytest.mark.django_db
def test_seed_library_publishes_both_versions_of_the_order_release_and_2_is_the_latest(world):
    out = io.StringIO()
    call_command("seed_library", stdout=out)
    for version in ("1.0.0", "2.0.0"):
        assert re.search(rf"\] order-to-shipment-release {re.escape(version)}: (already )?published", out.getvalue()), out.getvalue()
    connection.set_schema_to_public()
    versions = TemplateVersion.objects.filter(template__key=TEMPLATE["key"]).order_by("-major", "-minor", "-patch")
    assert [version.version for version in versions] == ["2.0.0", "1.0.0"]
    assert versions[0].parameters_schema["properties"]["routing_guide"]["default"] == ["SBXF"]


def test_the_template_comes_after_the_starter_1_0_0_of_its_key_in_the_library_and_is_valid():
    keys = [(entry["key"], entry["version"]) for entry in LIBRARY]
    assert keys.index((ORDER_RELEASE["key"], "1.0.0")) < keys.index((TEMPLATE["key"], "2.0.0"))
    assert definition_validate(TEMPLATE["definition"], placeholders=True) == []


# --- end to end on the worker --------------------------------------------------------------------------


@pytest.mark.worker
def test_an_order_is_tendered_accepted_released_and_confirmed_to_the_erp(world, worker, systems, release, tidy):
    number = f"SO-{next(_numbers)}"
    tidy(number)
    systems["erp"].order_open(number)
    run = _start(world, release, _order(number))
    _waiting_for_990(world, run)
    shipment = f"SHP-{number}"
    with schema_context(world.acme.schema):
        planned = Shipment.objects.get(reference=shipment)
        assert (planned.tender_status, planned.status, planned.carrier_scac, str(planned.planned_weight)) == (
            "tendered",
            "tendered",
            "SBXF",
            "1800.000",
        )
        assert Order.objects.get(number=number).status == "validated"
    (tender,) = [effect for effect in systems["tms"].effects_for("tender") if effect.payload["order"]["order_id"] == shipment]
    assert tender.idempotency_key == f"{run.pk}:tender"
    assert tender.payload["carrier"] == "SBXF" and tender.payload["order"]["lines"] == [{"sku": "SKU-PALLET-A", "qty": 4}]

    _answer_990(world, shipment=shipment, scac="SBXF", accepted=True)
    done = _finished(world, run, ("succeeded", "failed", "compensated"))
    assert done.status == "succeeded", done.error
    with schema_context(world.acme.schema):
        accepted = Shipment.objects.get(reference=shipment)
        assert (accepted.tender_status, accepted.status, accepted.load_number) == ("accepted", "tender_accepted", tender.reference)
        order = Order.objects.get(number=number)
        (released,) = [effect for effect in systems["wms"].effects_for("release") if effect.payload["order_number"] == number]
        assert (order.status, order.status_reason) == ("released", f"released to the warehouse as {released.reference}; carrier SBXF")
        assert released.payload["carrier"] == "SBXF" and released.payload["ship_to"] == {
            "name": "Dallas store",
            "city": "Dallas",
            "country": "US",
        }
        assert released.idempotency_key == f"{run.pk}:release"
    confirmation = systems["erp"].orders[number]["confirmation"]
    assert (confirmation["decision"], confirmation["reference"]) == ("accepted", shipment)
    assert systems["erp"].orders[number]["status"] == "confirmed"


@pytest.mark.worker
def test_a_declined_tender_moves_to_the_next_carrier_of_the_routing_guide(world, worker, systems, release, tidy):
    number = f"SO-{next(_numbers)}"
    tidy(number)
    systems["erp"].order_open(number)
    run = _start(world, release, _order(number))
    shipment = f"SHP-{number}"
    _waiting_for_990(world, run)
    _answer_990(world, shipment=shipment, scac="SBXF", accepted=False, reason="A1", remark="NO EQUIPMENT")
    _waiting_for_990(world, run, visits=2)
    tenders = [effect for effect in systems["tms"].effects_for("tender") if effect.payload["order"]["order_id"] == shipment]
    assert [(effect.payload["carrier"], effect.idempotency_key) for effect in tenders] == [
        ("SBXF", f"{run.pk}:tender"),
        ("ODFL", f"{run.pk}:tender#1"),  # the second visit of the step: its own key
    ]
    with schema_context(world.acme.schema):
        moved = Shipment.objects.get(reference=shipment)
        assert (moved.carrier_scac, moved.tender_status) == ("ODFL", "tendered")

    _answer_990(world, shipment=shipment, scac="ODFL", accepted=True)
    done = _finished(world, run, ("succeeded", "failed", "compensated"))
    assert done.status == "succeeded", done.error
    with schema_context(world.acme.schema):
        accepted = Shipment.objects.get(reference=shipment)
        assert (accepted.carrier_scac, accepted.tender_status, accepted.status) == ("ODFL", "accepted", "tender_accepted")
        answers = StepExecution.objects.filter(run=run, step_id="tender-answer").order_by("pk")
        assert [execution.output["outcome"] for execution in answers] == ["next_carrier", "accepted"]
        assert answers[0].output["reason"] == "SBXF declined the tender (A1: NO EQUIPMENT)"
        assert not ExceptionCase.objects.filter(shipment=accepted).exists()
    (released,) = [effect for effect in systems["wms"].effects_for("release") if effect.payload["order_number"] == number]
    assert released.payload["carrier"] == "ODFL"
    assert systems["erp"].orders[number]["confirmation"]["decision"] == "accepted"


@pytest.mark.worker
def test_when_every_carrier_declines_a_tender_declined_exception_opens_and_tenders_are_cancelled(world, worker, systems, release, tidy):
    number = f"SO-{next(_numbers)}"
    tidy(number)
    run = _start(world, release, _order(number))
    shipment = f"SHP-{number}"
    _waiting_for_990(world, run)
    _answer_990(world, shipment=shipment, scac="SBXF", accepted=False, reason="A1")
    _waiting_for_990(world, run, visits=2)
    _answer_990(world, shipment=shipment, scac="ODFL", accepted=False, remark="LANE NOT SERVED")
    done = _finished(world, run, ("failed", "compensated", "succeeded"))
    assert done.status == "compensated", (done.status, done.error)
    with schema_context(world.acme.schema):
        case = ExceptionCase.objects.get(shipment__reference=shipment)
        assert (case.type, case.severity, case.status) == ("tender_declined", "high", "open")
        assert (
            case.reason
            == "every carrier of the routing guide declined the tender (SBXF, ODFL); last: ODFL declined the tender (LANE NOT SERVED)"
        )
        assert case.order.number == number and case.details["tried"] == ROUTING_GUIDE
        assert Order.objects.get(number=number).status == "rejected"
        assert Shipment.objects.get(reference=shipment).tender_status == "declined"
    assert not [effect for effect in systems["wms"].effects_for("release") if effect.payload["order_number"] == number]
    tenders = [tender for tender in systems["tms"].tenders.values() if tender["shipment_reference"] == shipment]
    # Compensation withdraws the step's latest tender (the one a carrier declined last); the
    # compensation handler runs once per step, so one cancellation reaches the TMS.
    assert tenders[-1]["status"] == "cancelled" and len(tenders) == 2
    cancellations = [e for e in systems["tms"].effects_for("tender_cancellation") if e.payload["order"]["order_id"] == shipment]
    assert [effect.idempotency_key for effect in cancellations] == [f"{run.pk}:cancel-tender"]


@pytest.mark.worker
def test_an_invalid_order_is_routed_to_the_exception_queue_with_every_reason(world, worker, systems, release, tidy):
    unknown = f"SO-{next(_numbers)}"
    no_weight = f"SO-{next(_numbers)}"
    tidy(unknown)
    tidy(no_weight)
    first = _start(world, release, _order(unknown, customer="acme-nobody", lines=[{"sku": "SKU-PALLET-A", "qty": 2}]))
    second = _start(world, release, _order(no_weight, ship_to="yard-no-street", lines=[{"sku": "SKU-PALLET-A", "qty": 2}]))
    for run in (first, second):
        done = _finished(world, run, ("failed", "compensated", "succeeded"))
        assert done.status == "failed" and done.current_step == "not-released", (done.status, done.error)
    with schema_context(world.acme.schema):
        case = ExceptionCase.objects.get(details__order_id=unknown)
        assert (case.type, case.order, case.customer_account) == ("order_invalid", None, None)
        assert case.reason == "the customer 'acme-nobody' is not in the master data; line 1 has no weight"
        assert case.details["problems"] == [
            {"field": "/customer", "reason": "the customer 'acme-nobody' is not in the master data"},
            {"field": "/lines/0/weight", "reason": "line 1 has no weight"},
        ]
        kept = ExceptionCase.objects.get(details__order_id=no_weight)
        assert kept.reason == "the ship-to address (yard-no-street) needs a street; line 1 has no weight"
        assert (kept.order.number, kept.order.status, kept.customer_account.code) == (no_weight, "rejected", "acme-c0")
        assert not Shipment.objects.filter(orders__number__in=[unknown, no_weight]).exists()
    assert not [e for e in systems["tms"].effects_for("tender") if e.payload["order"]["order_id"] in (f"SHP-{unknown}", f"SHP-{no_weight}")]


@pytest.mark.worker
def test_an_order_on_credit_hold_waits_for_finance_and_goes_on_once_approved(world, worker, systems, release, tidy):
    number = f"SO-{next(_numbers)}"
    tidy(number)
    systems["erp"].order_open(number)
    run = _start(world, release, _order(number, customer=HELD_ACCOUNT))
    approval = until(world, lambda: Approval.objects.filter(run=run, status="pending").first(), "the credit approval")
    assert approval.assignee_roles == ["finance"] and approval.title == "Release an order on credit hold"
    with schema_context(world.acme.schema):
        held = Order.objects.get(number=number)
        assert (held.status, held.status_reason, held.credit_hold) == ("on_hold", f"the customer '{HELD_ACCOUNT}' is on credit hold", True)
        assert not Shipment.objects.filter(orders=held).exists()
        approval_decide(approval=approval, decision="approved", actor=world.acme.users["finance"], comment="paid up")
    _waiting_for_990(world, run)
    _answer_990(world, shipment=f"SHP-{number}", scac="SBXF", accepted=True)
    done = _finished(world, run, ("succeeded", "failed", "compensated"))
    assert done.status == "succeeded", done.error
    with schema_context(world.acme.schema):
        released = Order.objects.get(number=number)
        assert (released.status, released.credit_hold) == ("released", False)


@pytest.mark.worker
def test_finance_keeping_the_credit_hold_opens_an_exception_with_its_comment(world, worker, systems, release, tidy):
    number = f"SO-{next(_numbers)}"
    tidy(number)
    run = _start(world, release, _order(number, credit_hold=True))
    approval = until(world, lambda: Approval.objects.filter(run=run, status="pending").first(), "the credit approval")
    with schema_context(world.acme.schema):
        approval_decide(approval=approval, decision="rejected", actor=world.acme.users["finance"], comment="two invoices overdue")
    done = _finished(world, run, ("failed", "compensated", "succeeded"))
    assert done.status == "failed", done.error
    with schema_context(world.acme.schema):
        case = ExceptionCase.objects.get(details__order_id=number)
        assert case.reason == "the ERP put the order on credit hold; finance kept the hold; two invoices overdue"
        assert case.details["decided_by"] == "finance@acme.test"
        assert Order.objects.get(number=number).status == "rejected"


@pytest.mark.worker
def test_a_repeated_start_through_the_process_api_answers_the_same_run(world, worker, systems, release, tidy):
    number = f"SO-{next(_numbers)}"
    tidy(number)
    with schema_context(world.acme.schema):
        _key, secret = api_key_create(name="erp", scopes=["workflows:run"], actor=world.acme.users["tenant_admin"])
    body = json.dumps({"input": _order(number), "correlation": {"order": number}})
    answers = [
        host_client(world.acme.host).post(
            f"/api/v1/processes/{release.key}/runs",
            data=body,
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Api-Key {secret}",
            HTTP_IDEMPOTENCY_KEY=f"erp-{number}",
        )
        for _ in range(2)
    ]
    assert [answer.status_code for answer in answers] == [201, 200], answers[0].content
    assert answers[0].json()["id"] == answers[1].json()["id"]
    run = _run(world, Run(pk=answers[0].json()["id"]))
    _waiting_for_990(world, run)
    with schema_context(world.acme.schema):
        assert Run.objects.filter(definition=release, correlation__order=number).count() == 1
        assert Shipment.objects.filter(orders__number=number).count() == 1
    assert len([e for e in systems["tms"].effects_for("tender") if e.payload["order"]["order_id"] == f"SHP-{number}"]) == 1
