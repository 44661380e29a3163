"""Template 4, "Proof of delivery to invoice", end to end: the carrier's 210 arrives as X12 through
the EDI inbox, the POD as a `document.received` event through the events inbox (an upload's
document id, or the file by API), runs advance on a real Celery worker, and an approved invoice
becomes a customer invoice PDF in Acme's brand that the ERP sandbox receives over HTTP. The match
rules themselves (tolerances, detention and lumper evidence) are checked in the tenant's schema
without the worker."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import itertools
import json
import re
import subprocess
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django_tenants.utils import schema_context

from connectors.demo import OUR_EDI_QUALIFIER, our_edi_id
from connectors.edi import InMemoryControlNumbers, PartnerSettings, write_interchange
from connectors.edi.documents import Charge
from connectors.edi.documents import FreightInvoice as Edi210
from connectors.edi_transport import EdiPartnerInput, edi_partner_configure, edi_receive
from connectors.inbox import inbound_record
from connectors.models import AuthMethod, Connection, ConnectionKind, EdiPartner, InboundEvent
from connectors.sandbox import ErpSandbox
from connectors.sandbox.base import Answer, Fields, Route, SandboxRequest
from connectors.services import ConnectionInput, connection_create
from governance.services import Actor
from logistics.invoicing import charge_code_for, customer_invoice_render, invoice_match_compute, pod_check
from logistics.library.pod_to_invoice import TEMPLATE
from logistics.models import (
    CarrierRule,
    Document,
    ExceptionCase,
    FreightInvoice,
    Location,
    Shipment,
    StopKind,
    TrackingEvent,
)
from logistics.services import (
    ChargeInput,
    StopInput,
    document_record,
    invoice_record,
    location_create,
    shipment_create,
    tracking_event_record,
)
from tenants.db import connection
from tenants.models import Branding
from tests.logistics.flows import clone_published, definition_forget, until
from tests.processes import celery_worker, suite_env
from tests.workflows.conftest import publish
from workflows.management.commands.seed_library import LIBRARY
from workflows.models import Definition, Run, StepExecution, TemplateVersion, WorkflowTemplate
from workflows.selectors import template_version_get
from workflows.validation import definition_validate

SYSTEM = Actor.system("tests-pod-to-invoice")
CARRIER = "FNCE"
EDI_KEY = "finance-carrier-edi"
EVENTS_KEY = "finance-documents"
ERP_KEY = "finance-erp"
SCREENS = Path(__file__).resolve().parents[1] / "artifacts" / "screens"
_numbers = itertools.count(int(time.time()) % 100_000_000)
DELIVERED_AT = dt.datetime(2026, 11, 20, 15, 0, tzinfo=dt.UTC)


class InvoicingErp(ErpSandbox):
    """The sandbox ERP, also taking customer invoices at `/api/invoices` (the ERP's AR import)."""

    def __init__(self, **options: Any):
        super().__init__(**options)
        self.invoices: dict[str, dict[str, Any]] = {}

    def routes(self) -> list[Route]:
        return [*super().routes(), Route("POST", "/api/invoices", self._invoice_created, writes=True)]

    def _invoice_created(self, request: SandboxRequest, match: re.Match[str]) -> Answer:
        fields = Fields(request.body)
        invoice = fields.nested("invoice")
        number = invoice.text("number")
        invoice.text("total")
        invoice.nested("document").text("content_base64")
        fields.check()
        reference = f"AR-{len(self.invoices) + 1:05d}"
        self.invoices[number] = request.body["invoice"]
        self.record_effect("invoice", reference, request.body, request)
        return Answer(201, {"reference": reference, "number": number})


# --- the outside world, the worker, the tenant's set-up ------------------------------------------


@pytest.fixture(scope="module")
def erp():
    with InvoicingErp() as system:
        yield system


@pytest.fixture(scope="module")
def worker(tmp_path_factory, django_db_setup, django_db_blocker):
    with celery_worker(tmp_path_factory.mktemp("pod-to-invoice-worker") / "worker.log", env=suite_env()) as process:
        yield process


def _template_version() -> TemplateVersion:
    connection.set_schema_to_public()
    template = WorkflowTemplate.objects.filter(key=TEMPLATE["key"]).first()
    existing = template_version_get(template=template, version=TEMPLATE["version"]) if template else None
    return existing or publish(TEMPLATE)


def _connections(erp_url: str) -> None:
    if not Connection.objects.filter(key=ERP_KEY).exists():
        connection_create(
            data=ConnectionInput(
                key=ERP_KEY,
                name="Finance ERP",
                kind=ConnectionKind.ERP,
                base_url=erp_url,
                auth_method=AuthMethod.NONE,
                settings={"actions": {"invoice_create": {"method": "POST", "path": "/api/invoices"}}},
            ),
            actor=SYSTEM,
        )
    if not Connection.objects.filter(key=EDI_KEY).exists():
        carrier = connection_create(
            data=ConnectionInput(
                key=EDI_KEY, name="FNCE EDI", kind=ConnectionKind.EDI_PARTNER, base_url="http://127.0.0.1:9", auth_method=AuthMethod.NONE
            ),
            actor=SYSTEM,
        )
        edi_partner_configure(
            connection=carrier,
            data=EdiPartnerInput(
                their_qualifier="02", their_id=CARRIER, our_qualifier=OUR_EDI_QUALIFIER, our_id=our_edi_id("acme"), usage="T"
            ),
            actor=SYSTEM,
        )
    if not Connection.objects.filter(key=EVENTS_KEY).exists():
        Connection.objects.create(key=EVENTS_KEY, name="Document intake", kind=ConnectionKind.EMAIL, base_url="https://documents.example")


def _places() -> None:
    for code, name, city in (("fin-dc", "Memphis DC", "Memphis"), ("fin-store", "Dallas store", "Dallas")):
        if not Location.objects.filter(code=code).exists():
            location_create(code=code, name=name, city=city, country="US", actor=SYSTEM)


def _logo() -> bytes:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (240, 60), "#ffffff")
    draw = ImageDraw.Draw(image)
    draw.rectangle((6, 10, 46, 50), fill="#b4400a")
    draw.text((58, 22), "ACME FREIGHT", fill="#0b4f9c")
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def flow(world, erp, django_db_setup, django_db_blocker):
    """Acme with the ERP, the carrier's EDI partner, a document intake, a carrier rule, a logo,
    and the template cloned (ERP bound to the sandbox) and published."""
    with django_db_blocker.unblock():
        version = _template_version()
        branding = Branding.objects.get(tenant=world.acme.tenant)
        branding.logo.save("acme-logo.png", ContentFile(_logo()), save=True)
        with schema_context(world.acme.schema):
            connection.tenant = world.acme.tenant
            _connections(erp.url)
            CarrierRule.objects.update_or_create(
                scac=CARRIER,
                defaults={
                    "amount_tolerance": Decimal("25.00"),
                    "percent_tolerance": Decimal("2.00"),
                    "detention_rate_per_hour": Decimal("75"),
                },
            )
            _places()
            definition = clone_published(
                world.acme,
                version,
                key=f"pod-to-invoice-{uuid.uuid4().hex[:8]}",
                name="POD to invoice",
                parameters={"erp_connection": ERP_KEY, "pod_within": "PT30M", "invoice_within": "PT30M"},
            )
        connection.set_schema_to_public()
    yield definition
    with django_db_blocker.unblock():
        branding.logo.delete(save=True)
        with schema_context(world.acme.schema):
            definition_forget(world.acme, definition)
        connection.set_schema_to_public()


@pytest.fixture
def tidy(world, committed):
    """What a test wrote into Acme's domain, removed afterwards (committed tests share Acme)."""
    references: list[str] = []
    yield references.append
    with schema_context(world.acme.schema):
        shipments = Shipment.objects.filter(reference__in=references)
        ExceptionCase.objects.filter(shipment__in=shipments).delete()
        FreightInvoice.objects.filter(shipment__in=shipments).delete()
        Document.objects.filter(shipment__in=shipments).delete()
        TrackingEvent.objects.filter(shipment__in=shipments).delete()
        shipments.delete()
        InboundEvent.objects.filter(connection__key__in=[EDI_KEY, EVENTS_KEY]).delete()


# --- helpers ---------------------------------------------------------------------------------------


def _shipment(world, *, detention_times: bool = False, rate_confirmation: bool = True) -> Shipment:
    """A shipment delivered at DELIVERED_AT, with its rate confirmation (linehaul 1,500, fuel 150)."""
    number = next(_numbers)
    with schema_context(world.acme.schema):
        dc, store = Location.objects.get(code="fin-dc"), Location.objects.get(code="fin-store")
        shipment = shipment_create(
            customer_account=world.acme.customer_accounts[0],
            reference=f"PTI-{number}",
            carrier_scac=CARRIER,
            bol_number=f"BOL{number}",
            pro_number=f"PRO{number}",
            planned_rate="1650.00",
            stops=[StopInput(1, StopKind.PICKUP, dc), StopInput(2, StopKind.DELIVERY, store)],
            actor=SYSTEM,
        )
        if detention_times:  # five hours at the dock: three past the two free hours
            tracking_event_record(
                shipment=shipment,
                occurred_at=DELIVERED_AT - dt.timedelta(hours=5),
                source="api",
                status="arrived_at_delivery",
                actor=SYSTEM,
            )
        tracking_event_record(shipment=shipment, occurred_at=DELIVERED_AT, source="api", status="delivered", actor=SYSTEM)
        if rate_confirmation:
            document_record(
                kind="rate_confirmation",
                content=f"rate confirmation {shipment.reference}".encode(),
                original_name=f"ratecon-{shipment.reference}.pdf",
                shipment=shipment,
                extracted_fields={"charges": {"linehaul": "1500.00", "fuel": "150.00"}},
                actor=SYSTEM,
            )
    return shipment


POD_FIELDS = {"consignee": "Dallas store receiving", "delivered_at": "2026-11-20T15:00:00+00:00", "pieces": 12, "exceptions": "none"}


def _pod(world, shipment: Shipment, *, signed_by: str = "M. Ortiz", content: bytes = b"", **fields: Any) -> Document:
    """A POD as an upload or an email leaves it: stored, with what was read from it."""
    with schema_context(world.acme.schema):
        return document_record(
            kind="pod",
            content=content or f"%PDF-1.4 POD {shipment.reference} {signed_by}".encode(),
            original_name=f"pod-{shipment.reference}.pdf",
            shipment=shipment,
            content_type="application/pdf",
            source="upload",
            signed_by=signed_by,
            extracted_fields={**POD_FIELDS, **fields},
            actor=SYSTEM,
        ).document


def _document_event(world, shipment: Shipment, payload: dict[str, Any]) -> None:
    """The document intake announces a POD (`document.received`) through the events inbox."""
    body: dict[str, Any] = {
        "event_type": "document.received",
        "event_id": f"doc-{uuid.uuid4().hex[:12]}",
        "correlation": {"shipment": shipment.reference},
        "payload": {"kind": "pod", "shipment": shipment.reference, **payload},
    }
    with schema_context(world.acme.schema):
        intake = Connection.objects.get(key=EVENTS_KEY)
        inbound_record(
            connection=intake,
            channel="api",
            external_id=body["event_id"],
            body=json.dumps(body),
            content_type="application/json",
            headers={},
        )


def _send_210(world, shipment: Shipment, charges: list[tuple[str, str, str]], *, number: str = "") -> str:
    """The carrier's EDI desk sends its 210: (L1-08 code, description, amount) per line."""
    number = number or f"FI{next(_numbers)}"
    with schema_context(world.acme.schema):
        partner = EdiPartner.objects.select_related("connection").get(their_id=CARRIER)
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
        lines = [
            Charge(line_number=index, description=description, amount=Decimal(amount), special_charge_code=code)
            for index, (code, description, amount) in enumerate(charges, start=1)
        ]
        total = sum((Decimal(amount) for _code, _description, amount in charges), Decimal("0"))
        invoice = Edi210(
            invoice_number=number,
            shipment_id=shipment.reference,
            scac=CARRIER,
            payment_method="PP",
            invoice_date=DELIVERED_AT.date(),
            net_amount_due=total,
            currency="USD",
            charges=lines,
            total_charge=total,
            lading_quantity=12,
        )
        now = dt.datetime.now(dt.UTC)
        text = write_interchange([invoice], partner=settings, control_numbers=InMemoryControlNumbers(next(_numbers)), now=now)
        assert not edi_receive(connection=partner.connection, data=text, channel="api").duplicate
    return number


def _runs(shipment: Shipment, definition: Definition):
    return Run.objects.filter(definition=definition, correlation__shipment=shipment.reference).order_by("pk")


def _screenshot_pdf(pdf: bytes, name: str) -> Path:
    SCREENS.mkdir(parents=True, exist_ok=True)
    source = SCREENS / f"{name}.pdf"
    source.write_bytes(pdf)
    subprocess.run(["pdftoppm", "-png", "-r", "60", "-singlefile", str(source), str(SCREENS / name)], check=True)
    source.unlink()
    return SCREENS / f"{name}.png"


# --- the rules, in the tenant's schema (no worker) ---------------------------------------------------


def test_the_template_is_in_the_library_and_valid():
    assert (TEMPLATE["key"], TEMPLATE["version"]) in [(entry["key"], entry["version"]) for entry in LIBRARY]
    assert definition_validate(TEMPLATE["definition"], placeholders=True) == []


def test_210_charge_codes_map_to_batons_charges_by_code_then_by_words():
    assert [charge_code_for(code) for code in ("400", "FUE", "DET", "LUM", "LFG")] == [
        "linehaul",
        "fuel",
        "detention",
        "lumper",
        "liftgate",
    ]
    assert charge_code_for("", "Driver detention at consignee") == "detention"
    assert charge_code_for("ZZZ", "Pallet exchange") == "accessorial"


@pytest.mark.django_db
def test_a_pod_missing_signature_date_consignee_pieces_or_notes_is_incomplete_with_each_reason(world):
    with schema_context(world.acme.schema):
        _places()
        shipment = _shipment(world)
        bare = document_record(kind="pod", content=b"scan", original_name="pod.jpg", shipment=shipment, actor=SYSTEM).document
        check = pod_check(bare)
        assert not check.complete
        assert check.problems == [
            "the POD is not signed: ask the carrier for the signed copy",
            "the POD has no delivery date",
            "the POD does not name the consignee who received the goods",
            "the POD does not count the pieces delivered",
            "the POD does not say whether exceptions were noted (clean, or the damage or shortage)",
        ]
        signed = document_record(
            kind="pod",
            content=b"signed scan",
            original_name="pod.pdf",
            shipment=shipment,
            signed_by="M. Ortiz",
            extracted_fields={**POD_FIELDS, "exceptions": ["2 cartons crushed"]},
            actor=SYSTEM,
        ).document
        good = pod_check(signed)
        assert good.complete and good.exceptions_noted == ["2 cartons crushed"] and good.pieces == 12


def _invoice(shipment: Shipment, *charges: tuple[str, str]) -> FreightInvoice:
    return invoice_record(
        carrier_scac=CARRIER,
        invoice_number=f"UNIT-{next(_numbers)}",
        charges=[ChargeInput(charge_code=code, amount=amount) for code, amount in charges],
        shipment=shipment,
        actor=SYSTEM,
    ).invoice


@pytest.mark.django_db
def test_the_match_applies_the_carriers_tolerance_and_evidence_rules_line_by_line(world):
    with schema_context(world.acme.schema):
        _places()
        CarrierRule.objects.update_or_create(
            scac=CARRIER,
            defaults={"amount_tolerance": Decimal("25.00"), "percent_tolerance": Decimal("2.00"), "detention_rate_per_hour": Decimal("75")},
        )
        plain = _shipment(world)
        assert invoice_match_compute(_invoice(plain, ("linehaul", "1500.00"), ("fuel", "150.00"))).result == "matched"
        # 20 over: inside the lesser of 25.00 and 2 % of 1,650 (33.00).
        near = invoice_match_compute(_invoice(plain, ("linehaul", "1520.00"), ("fuel", "150.00")))
        assert (near.result, str(near.tolerance), str(near.billed_total - near.expected_total)) == ("within_tolerance", "25.00", "20.00")

        over = invoice_match_compute(_invoice(plain, ("linehaul", "1560.00"), ("fuel", "150.00")))
        assert over.result == "mismatch"
        assert [(item.line, item.charge, item.expected, item.billed, item.difference) for item in over.differences] == [
            ("1", "linehaul", "1500.00", "1560.00", "60.00")
        ]

        no_times = invoice_match_compute(_invoice(plain, ("linehaul", "1500.00"), ("fuel", "150.00"), ("detention", "150.00")))
        (refused,) = no_times.differences
        assert no_times.result == "mismatch" and refused.refused
        assert (refused.charge, refused.expected, refused.billed, refused.rule) == (
            "detention",
            "0",
            "150.00",
            "detention needs the arrival and departure times at the stop; the carrier gave none",
        )
        lumper = invoice_match_compute(_invoice(plain, ("linehaul", "1500.00"), ("fuel", "150.00"), ("lumper", "95.00")))
        assert [item.rule for item in lumper.differences] == ["a lumper charge needs the lumper's receipt; none is on file"]

        timed = _shipment(world, detention_times=True)
        detention = invoice_match_compute(_invoice(timed, ("linehaul", "1500.00"), ("fuel", "150.00"), ("detention", "225.00")))
        assert detention.result == "matched", detention.as_data()
        assert detention.items[-1].rule == "detention: 3 h past the 2 h free time at 75.00/h"
        document_record(
            kind="receipt",
            content=b"lumper",
            original_name="lumper.jpg",
            shipment=timed,
            extracted_fields={"amount": "95.00"},
            actor=SYSTEM,
        )
        receipted = invoice_match_compute(_invoice(timed, ("linehaul", "1500.00"), ("fuel", "150.00"), ("lumper", "95.00")))
        assert receipted.result == "matched"


@pytest.mark.django_db
def test_the_customer_invoice_speaks_the_workspaces_language_in_the_brands_colours(world):
    """The PDF follows the workspace's default language (words, dates, amounts), and is painted
    in the tenant's primary colour by the stylesheet kept per brand."""
    import zlib

    from tenants.models import Tenant
    from tenants.services import tenant_default_language_set

    acme = Tenant.objects.get(pk=world.acme.tenant.pk)
    with schema_context(world.acme.schema):
        _places()
        english = customer_invoice_render(invoice=_invoice(_shipment(world), ("linehaul", "1234.50")), issued_on=dt.date(2026, 3, 2))[0]
        tenant_default_language_set(tenant=acme, language="de", actor=SYSTEM)
        german = customer_invoice_render(invoice=_invoice(_shipment(world), ("linehaul", "1234.50")), issued_on=dt.date(2026, 3, 2))[0]

    def text(pdf: bytes) -> str:
        return subprocess.run(["pdftotext", "-layout", "-", "-"], input=pdf, capture_output=True, check=True).stdout.decode()

    words = text(english)
    assert "INVOICE" in words and "Total due" in words and "1,234.50" in words and "March 2, 2026" in words and "page 1" in words
    words = text(german)
    assert "RECHNUNG" in words and "Fälliger Gesamtbetrag" in words and "RECHNUNGSEMPFÄNGER" in words and "Seite 1" in words
    assert "1.234,50" in words and "2. März 2026" in words and "Total due" not in words
    _screenshot_pdf(german, "pod-to-invoice-customer-invoice-de")

    streams = re.findall(rb"stream\r?\n(.*?)\r?\nendstream", english, re.S)
    painted = b"".join(zlib.decompress(stream) for stream in streams if stream[:1] == b"x")
    fills = [tuple(float(part) for part in match.split()) for match in re.findall(rb"([\d.]+ [\d.]+ [\d.]+) rg", painted)]
    primary = (0x0B / 255, 0x4F / 255, 0x9C / 255)  # Acme's #0b4f9c
    assert any(all(abs(a - b) < 0.005 for a, b in zip(fill, primary, strict=True)) for fill in fills), fills


# --- end to end on the worker --------------------------------------------------------------------------


LINES_OK = [("400", "Linehaul Memphis-Dallas", "1500.00"), ("FUE", "Fuel surcharge", "150.00")]


@pytest.mark.worker
def test_an_invoice_waits_for_its_pod_then_is_approved_billed_in_the_tenants_brand_and_sent_to_the_erp(world, worker, erp, flow, tidy):
    shipment = _shipment(world)
    tidy(shipment.reference)
    number = _send_210(world, shipment, LINES_OK)
    first = until(
        world,
        lambda: _runs(shipment, flow).filter(status="waiting", current_step="wait_pod").first(),
        "the invoice's run waiting for the POD",
    )
    with schema_context(world.acme.schema):
        invoice = FreightInvoice.objects.get(invoice_number=number)
        assert (invoice.shipment_id, invoice.source, str(invoice.total_amount), invoice.match_status) == (
            shipment.pk,
            "edi_210",
            "1650.00",
            "unmatched",
        )
        assert list(invoice.charges.values_list("charge_code", "raw_code")) == [("linehaul", "400"), ("fuel", "FUE")]

    pod = _pod(world, shipment)
    _document_event(world, shipment, {"document_id": pod.pk})
    approved = until(world, lambda: FreightInvoice.objects.filter(pk=invoice.pk, match_status="approved").first(), "the approval")
    assert approved.match_details["result"] == "matched" and approved.match_details["differences"] == []
    until(world, lambda: _runs(shipment, flow).filter(status="succeeded").count() == 2, "both runs ending")
    with schema_context(world.acme.schema):
        ends = {run.pk: run.current_step for run in _runs(shipment, flow)}
        # One matcher: the invoice's run woken by the POD, or the POD's own run; the other saw it handled.
        assert sorted(ends.values()) == ["handled", "invoiced"]
        (matcher,) = [pk for pk, step in ends.items() if step == "invoiced"]
        assert first.pk in ends
        customer_invoice = Document.objects.get(shipment=shipment, kind="invoice")
        pdf = customer_invoice.file.read()
        approved.refresh_from_db()
        assert approved.match_details["erp"]["reference"].startswith("AR-")
    assert pdf.startswith(b"%PDF") and customer_invoice.content_type == "application/pdf"

    (effect,) = [effect for effect in erp.effects_for("invoice") if effect.payload["invoice"]["shipment"] == shipment.reference]
    sent = effect.payload["invoice"]
    assert effect.idempotency_key == f"{matcher}:send_to_erp"
    assert (sent["number"], sent["total"], sent["currency"], sent["customer"]["code"]) == (
        f"INV-{shipment.reference}-{invoice.pk}",
        "1650.00",
        "USD",
        "acme-c0",
    )
    assert [(line["charge"], line["amount"]) for line in sent["lines"]] == [("Linehaul", "1500.00"), ("Fuel surcharge", "150.00")]
    assert base64.b64decode(sent["document"]["content_base64"]) == pdf
    assert sent["document"]["sha256"] == hashlib.sha256(pdf).hexdigest() == customer_invoice.sha256

    text = subprocess.run(["pdftotext", "-", "-"], input=pdf, capture_output=True, check=True).stdout.decode()
    for expected in (
        "INVOICE",
        "Acme Freight customer 0",
        shipment.reference,
        f"FNCE invoice {number}",
        "USD 1,650.00",
        "Acme Freight Hub",
    ):
        assert expected in text, expected
    png = _screenshot_pdf(pdf, "pod-to-invoice-customer-invoice")
    from PIL import Image

    with Image.open(png) as page:
        masthead = page.convert("RGB").getpixel((page.width // 2, 50))
    assert masthead == (0x0B, 0x4F, 0x9C), masthead  # Acme's primary colour behind the logo and title


@pytest.mark.worker
def test_a_pod_without_a_signature_goes_back_to_a_person_with_the_reason_until_a_signed_one_comes(world, worker, erp, flow, tidy):
    shipment = _shipment(world)
    tidy(shipment.reference)
    unsigned = base64.b64encode(f"%PDF-1.4 unsigned POD {shipment.reference}".encode()).decode()
    _document_event(
        world,
        shipment,
        {"file_name": "pod-scan.pdf", "content_type": "application/pdf", "content_base64": unsigned, "fields": POD_FIELDS},
    )
    run = until(
        world, lambda: _runs(shipment, flow).filter(status="waiting", current_step="wait_pod").first(), "the run waiting for a new POD"
    )
    with schema_context(world.acme.schema):
        case = ExceptionCase.objects.get(shipment=shipment, type="pod_incomplete", status="open")
        assert case.reason == f"POD for {shipment.reference} is incomplete: the POD is not signed: ask the carrier for the signed copy"
        told = StepExecution.objects.get(run=run, step_id="tell_pod_incomplete")
        assert told.output["to_roles"] == ["dispatcher", "finance"] and told.output["template"] == "pod-incomplete"
        assert StepExecution.objects.get(run=run, step_id="pair").output["state"] == "wait_invoice"

    signed = base64.b64encode(f"%PDF-1.4 signed POD {shipment.reference}".encode()).decode()
    _document_event(
        world,
        shipment,
        {"file_name": "pod-signed.pdf", "content_base64": signed, "signed_by": "M. Ortiz", "fields": POD_FIELDS},
    )
    until(
        world,
        lambda: Run.objects.filter(pk=run.pk, status="waiting", current_step="wait_invoice").exists(),
        "the run checking the signed POD and waiting for the invoice",
    )
    with schema_context(world.acme.schema):
        checks = StepExecution.objects.filter(run=run, step_id="check_pod", status="succeeded").order_by("pk")
        assert [execution.output["complete"] for execution in checks] == [False, True]
        assert Document.objects.filter(shipment=shipment, kind="pod").count() == 2


@pytest.mark.worker
def test_an_invoice_over_tolerance_is_disputed_with_its_differences_itemised_and_never_billed(world, worker, erp, flow, tidy):
    shipment = _shipment(world)
    tidy(shipment.reference)
    _pod(world, shipment)  # on file before the invoice (an upload nobody announced)
    number = _send_210(world, shipment, [("400", "Linehaul", "1600.00"), ("FUE", "Fuel surcharge", "150.00")])
    run = until(world, lambda: _runs(shipment, flow).filter(status="failed", current_step="disputed").first(), "the dispute")
    with schema_context(world.acme.schema):
        invoice = FreightInvoice.objects.get(invoice_number=number)
        assert invoice.match_status == "disputed"
        case = ExceptionCase.objects.get(shipment=shipment, type="invoice_mismatch", status="open")
        assert case.details["differences"] == [
            {
                "line": "1",
                "charge": "linehaul",
                "expected": "1500.00",
                "billed": "1600.00",
                "difference": "100.00",
                "rule": f"agreed on the rate confirmation ratecon-{shipment.reference}.pdf",
                "refused": False,
            }
        ]
        assert (case.details["expected_total"], case.details["billed_total"], case.details["tolerance"]) == ("1650.00", "1750.00", "25.00")
        assert f"Invoice {number} from FNCE is disputed: line 1 linehaul: billed 1600.00, expected 1500.00" in case.reason
        assert StepExecution.objects.get(run=run, step_id="tell_dispute").output["to_roles"] == ["finance"]
        assert not Document.objects.filter(shipment=shipment, kind="invoice").exists()
    assert not [effect for effect in erp.effects_for("invoice") if effect.payload["invoice"]["shipment"] == shipment.reference]


@pytest.mark.worker
def test_detention_billed_without_arrival_and_departure_times_is_refused(world, worker, erp, flow, tidy):
    shipment = _shipment(world)
    tidy(shipment.reference)
    _pod(world, shipment)
    number = _send_210(world, shipment, [*LINES_OK, ("DET", "Detention at consignee", "150.00")])
    until(world, lambda: _runs(shipment, flow).filter(status="failed", current_step="disputed").first(), "the dispute")
    with schema_context(world.acme.schema):
        invoice = FreightInvoice.objects.get(invoice_number=number)
        (refused,) = invoice.match_details["differences"]
        assert refused == {
            "line": "3",
            "charge": "detention",
            "expected": "0",
            "billed": "150.00",
            "difference": "150.00",
            "rule": "detention needs the arrival and departure times at the stop; the carrier gave none",
            "refused": True,
        }
        assert ExceptionCase.objects.get(shipment=shipment, type="invoice_mismatch").details["invoice_number"] == number
