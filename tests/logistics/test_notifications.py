"""Template 6, "Customer milestone notifications" 2.0.0: customer accounts subscribe to milestones
by email or webhook, with quiet hours and digests. The rules (when a notification is due, what a
subscription may be, what the inbox's hot path costs) are checked in-process; then, end to end on
a real Celery worker, carriers' webhooks move a shipment through the inbox and the customer gets
a branded email (through a local SMTP server) and a signed webhook (a local HTTP receiver) once
per milestone – not again for a resent event –, a milestone in quiet hours is held until they
end, and a digest brings several milestones in one message."""

from __future__ import annotations

import email
import email.policy
import socketserver
import threading
import time as clock
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection as db
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tenants.utils import schema_context

from connectors.deliveries import endpoints_forget, webhook_endpoint_create
from connectors.models import WebhookEndpoint
from governance.models import AuditEvent
from logistics.library.milestone_notifications import TEMPLATE
from logistics.models import (
    DigestMode,
    MilestoneNotification,
    MilestoneSubscription,
    Shipment,
)
from logistics.notifications import (
    HELD_DIGEST,
    HELD_QUIET,
    SubscriptionRefused,
    milestone_email_send,
    notification_due,
    notifications_collect,
    notifications_send,
    subscribed_index,
    subscription_create,
    subscription_disable,
    subscriptions_forget,
)
from logistics.tracking_inbound import milestones_apply
from tenants.db import connection
from tests.fake_partner import fake_partner
from tests.logistics.conftest import SYSTEM, make_shipment
from tests.logistics.flows import clone_published, definition_forget
from tests.logistics.test_tracking_inbound import _milestone, carrier_remove, carrier_with_shipment, deliver_webhook, handed_on, tracker
from tests.processes import celery_worker, free_port, suite_env
from tests.workflows.conftest import publish
from workflows.management.commands.seed_library import LIBRARY
from workflows.models import Definition, Run, TemplateVersion, WorkflowTemplate
from workflows.runs import run_start
from workflows.selectors import template_version_get
from workflows.validation import definition_validate

NOW = datetime(2026, 3, 2, 15, 30, tzinfo=UTC)  # 09:30 in Chicago


def _subscription(**fields: Any) -> MilestoneSubscription:
    """An unsaved subscription, for the due-time rules."""
    values: dict[str, Any] = {"time_zone": "America/Chicago", "digest": DigestMode.OFF, "milestones": ["delivered"]}
    values.update(fields)
    return MilestoneSubscription(**values)


# --- the rules, without the worker ----------------------------------------------------------------


def test_the_template_is_version_2_of_the_starter_key_and_valid():
    assert ("customer-milestone-notifications", "1.0.0") in [(entry["key"], entry["version"]) for entry in LIBRARY]
    assert (TEMPLATE["key"], TEMPLATE["version"]) in [(entry["key"], entry["version"]) for entry in LIBRARY]
    assert definition_validate(TEMPLATE["definition"], placeholders=True) == []


@pytest.mark.django_db
def test_seed_library_publishes_2_0_0_beside_1_0_0_and_again_changes_nothing():
    call_command("seed_library", verbosity=0)
    call_command("seed_library", verbosity=0)
    connection.set_schema_to_public()
    versions = TemplateVersion.objects.filter(template__key=TEMPLATE["key"]).order_by("major").values_list("version", flat=True)
    assert list(versions) == ["1.0.0", "2.0.0"]


def test_a_milestone_goes_at_once_outside_quiet_hours_and_at_their_end_inside_them():
    overnight = _subscription(quiet_start=time(21, 0), quiet_end=time(7, 0))
    assert notification_due(overnight, NOW) == (NOW, "")
    late_evening = datetime(2026, 3, 3, 4, 0, tzinfo=UTC)  # 22:00 in Chicago
    assert notification_due(overnight, late_evening) == (datetime(2026, 3, 3, 13, 0, tzinfo=UTC), HELD_QUIET)  # 07:00 CST
    early_morning = datetime(2026, 3, 3, 11, 0, tzinfo=UTC)  # 05:00 in Chicago
    assert notification_due(overnight, early_morning) == (datetime(2026, 3, 3, 13, 0, tzinfo=UTC), HELD_QUIET)
    lunch = _subscription(quiet_start=time(12, 0), quiet_end=time(13, 0), time_zone="Europe/Berlin")
    assert notification_due(lunch, NOW) == (NOW, "")  # 16:30 in Berlin
    # Across the spring change in Chicago (8 March 2026): 07:00 is CDT, five hours after UTC.
    assert notification_due(overnight, datetime(2026, 3, 8, 4, 0, tzinfo=UTC))[0] == datetime(2026, 3, 8, 12, 0, tzinfo=UTC)


def test_a_digest_goes_at_the_next_hour_or_the_daily_time_and_waits_for_quiet_hours_to_end():
    hourly = _subscription(digest=DigestMode.HOURLY)
    assert notification_due(hourly, NOW) == (datetime(2026, 3, 2, 16, 0, tzinfo=UTC), HELD_DIGEST)
    daily = _subscription(digest=DigestMode.DAILY, digest_at=time(17, 0))
    assert notification_due(daily, NOW) == (datetime(2026, 3, 2, 23, 0, tzinfo=UTC), HELD_DIGEST)  # 17:00 CST
    after = datetime(2026, 3, 3, 0, 0, tzinfo=UTC)  # 18:00 in Chicago: tomorrow's
    assert notification_due(daily, after) == (datetime(2026, 3, 3, 23, 0, tzinfo=UTC), HELD_DIGEST)
    quiet_at_digest = _subscription(digest=DigestMode.DAILY, digest_at=time(6, 0), quiet_start=time(22, 0), quiet_end=time(7, 30))
    assert notification_due(quiet_at_digest, NOW) == (datetime(2026, 3, 3, 13, 30, tzinfo=UTC), HELD_DIGEST)  # 07:30, not 06:00


@pytest.mark.django_db
def test_a_subscription_says_which_field_is_wrong_and_why(acme):
    account, other = acme.customer_accounts
    customer = acme.users["customer"]  # a person of the first account
    base: dict[str, Any] = {
        "customer_account": account,
        "milestones": ["delivered"],
        "channel": "email",
        "time_zone": "UTC",
        "actor": SYSTEM,
    }
    cases = [
        ({"milestones": []}, "milestones", "Choose at least one milestone to tell."),
        ({"milestones": ["teleported"]}, "milestones", "teleported is not a milestone"),
        ({"channel": "pigeon"}, "channel", "'pigeon' is not a channel: use email or webhook."),
        ({"time_zone": "Mars/Olympus"}, "time_zone", "'Mars/Olympus' is not an IANA time zone"),
        ({"quiet_start": time(22, 0)}, "quiet_end", "Give both the start and the end of quiet hours, or neither."),
        ({"quiet_start": time(22, 0), "quiet_end": time(22, 0)}, "quiet_end", "Quiet hours that start when they end"),
        ({"digest": "daily"}, "digest_at", "A daily digest needs the local time it is sent."),
        ({"customer_account": other, "user": customer}, "user", f"{customer.email} is not a person of {other.name}."),
        ({"channel": "webhook", "event_type": "Shipment Milestone"}, "event_type", "dotted lower-case words"),
    ]
    for change, field, message in cases:
        with pytest.raises(SubscriptionRefused) as refused:
            subscription_create(**{**base, **change})
        assert refused.value.field == field and message in refused.value.message, change
    assert not MilestoneSubscription.objects.exists()
    made = subscription_create(**{**base, "milestones": ["delivered", "delay", "delivered"]})
    assert made.milestones == ["delivered", "delay"]
    event = AuditEvent.objects.get(action="milestone_subscription.created", target_id=str(made.pk))
    assert event.data["customer_account"] == account.code and event.data["milestones"] == ["delivered", "delay"]


@pytest.fixture
def published(world, acme):
    """The template cloned and published in Acme (inside the test's transaction)."""
    version = _template_version()  # reads the library in public
    with schema_context(world.acme.schema):
        definition = clone_published(world.acme, version, key=f"notify-{uuid.uuid4().hex[:6]}", name="Milestone notices", parameters={})
        subscriptions_forget()
        yield definition
        subscriptions_forget()


def test_without_the_template_published_nothing_is_noted_and_the_hot_path_costs_one_cache_read(acme, places):
    subscriptions_forget()
    subscription_create(
        customer_account=acme.customer_accounts[0], milestones=["in_transit"], channel="email", time_zone="UTC", actor=SYSTEM
    )
    make_shipment(acme, places, "SH-OFF-1", pro_number="PRO-OFF-1")
    milestones_apply([_milestone(tracker("PRO-OFF-1", "in_transit", at=NOW))])
    assert not MilestoneNotification.objects.exists()
    assert subscribed_index() == {}
    with CaptureQueriesContext(db) as queries:
        assert notifications_collect(outcomes=[], delays=[]) == 0
    assert queries.captured_queries == []  # the cached answer: no query per batch


def test_a_milestone_is_noted_once_per_subscription_and_a_disabled_subscription_is_cancelled_not_sent(acme, places, published):
    account = acme.customer_accounts[0]
    wanted = subscription_create(customer_account=account, milestones=["in_transit"], channel="webhook", time_zone="UTC", actor=SYSTEM)
    other = subscription_create(customer_account=account, milestones=["delivered"], channel="email", time_zone="UTC", actor=SYSTEM)
    make_shipment(acme, places, "SH-ONCE-1", pro_number="PRO-ONCE-1")
    assert subscribed_index() == {account.pk: ["delivered", "in_transit"]}
    # Another account's milestones, or a milestone nobody wants: no query beyond the cache's.
    from logistics.models import TrackingEvent
    from logistics.services import TrackingEventOutcome

    elsewhere = Shipment(customer_account_id=acme.customer_accounts[1].pk)
    unwanted = Shipment(customer_account_id=account.pk)
    outcomes = [
        TrackingEventOutcome(event=TrackingEvent(status="in_transit", shipment=elsewhere), created=True, status_changed=True),
        TrackingEventOutcome(event=TrackingEvent(status="picked_up", shipment=unwanted), created=True, status_changed=True),
    ]
    with CaptureQueriesContext(db) as queries:
        assert notifications_collect(outcomes=outcomes) == 0
    assert queries.captured_queries == []
    milestones_apply([_milestone(tracker("PRO-ONCE-1", "in_transit", at=NOW))])
    milestones_apply([_milestone(tracker("PRO-ONCE-1", "in_transit", at=NOW + timedelta(hours=1)))])  # same status again: no change
    (noted,) = MilestoneNotification.objects.all()
    assert (noted.subscription_id, noted.milestone, noted.status, noted.held) == (wanted.pk, "in_transit", "pending", "")
    assert noted.details["label"] == "In transit" and noted.details["location"] == "Denver, CO"
    assert not MilestoneNotification.objects.filter(subscription=other).exists()

    # The account has no webhook endpoint: the pass says so on the row and in its result.
    result = notifications_send()
    noted.refresh_from_db()
    assert (result.failed, noted.status) == (1, "failed")
    assert (
        noted.error
        == f"{account.name} has no enabled webhook endpoint for shipment.milestone: add one under Connections → Customer webhooks"
    )

    # Disabled before its time: cancelled, never sent (whether waiting then, or noted in a race).
    shipment = Shipment.objects.get(reference="SH-ONCE-1")
    waiting = MilestoneNotification.objects.create(
        subscription=other, shipment=shipment, milestone="delivered", occurred_at=NOW, due_at=NOW + timedelta(hours=5), held="digest"
    )
    subscription_disable(subscription=other, reason="the customer asked", actor=SYSTEM)
    waiting.refresh_from_db()
    assert (waiting.status, waiting.error) == ("cancelled", "The subscription was disabled before it was sent.")
    assert AuditEvent.objects.get(action="milestone_subscription.disabled", target_id=str(other.pk)).data == {"cancelled": 1}
    waiting.delete()
    MilestoneNotification.objects.create(
        subscription=other, shipment=shipment, milestone="delivered", occurred_at=NOW, due_at=NOW, details={}
    )
    assert notifications_send().cancelled == 1
    assert MilestoneNotification.objects.get(subscription=other).status == "cancelled"
    with pytest.raises(SubscriptionRefused, match="disabled already"):
        subscription_disable(subscription=other, reason="again", actor=SYSTEM)


def test_an_exception_opened_and_a_delay_are_milestones_too(acme, places, published):
    from logistics.services import exception_open

    account = acme.customer_accounts[0]
    subscription_create(customer_account=account, milestones=["exception_opened", "delay"], channel="email", time_zone="UTC", actor=SYSTEM)
    shipment = make_shipment(acme, places, "SH-EXC-1", pro_number="PRO-EXC-1")
    exception_open(type="damage", reason="Two pallets crushed", shipment=shipment, actor=SYSTEM)
    milestones_apply([_milestone(tracker("PRO-EXC-1", "in_transit", at=NOW))])
    assert MilestoneNotification.objects.filter(milestone="exception_opened", details__reason="Two pallets crushed").count() == 1
    # A failed delivery attempt that becomes the shipment's status is detected as a delay.
    milestones_apply([_milestone(tracker("PRO-EXC-1", "failure", at=NOW + timedelta(hours=2)))])
    delay = MilestoneNotification.objects.get(milestone="delay")
    assert delay.details["reason"].startswith("Delivery failed reported by ODFL")


class _Sink(socketserver.ThreadingTCPServer):
    """A local SMTP server that keeps what it receives; `refuse` answers that many MAIL commands
    with a temporary failure."""

    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, port: int):
        super().__init__(("127.0.0.1", port), _SmtpHandler)
        self.messages: list[email.message.EmailMessage] = []
        self.refuse = 0


class _SmtpHandler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        server: _Sink = self.server  # type: ignore[assignment]
        self.wfile.write(b"220 sink ESMTP\r\n")
        data: list[bytes] | None = None
        while line := self.rfile.readline():
            if data is not None:
                if line.rstrip(b"\r\n") == b".":
                    server.messages.append(email.message_from_bytes(b"".join(data), policy=email.policy.default))  # type: ignore[arg-type]
                    data = None
                    self.wfile.write(b"250 queued\r\n")
                else:
                    data.append(line[1:] if line.startswith(b"..") else line)
                continue
            command = line[:4].upper()
            if command in (b"EHLO", b"HELO"):
                self.wfile.write(b"250 sink\r\n")
            elif command == b"MAIL" and server.refuse > 0:
                server.refuse -= 1
                self.wfile.write(b"451 4.3.0 try again later\r\n")
            elif command == b"DATA":
                data = []
                self.wfile.write(b"354 go ahead\r\n")
            elif command == b"QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                self.wfile.write(b"250 ok\r\n")


@contextmanager
def smtp_sink() -> Iterator[tuple[_Sink, int]]:
    port = free_port()
    server = _Sink(port)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server, port
    finally:
        server.shutdown()
        server.server_close()


def _html(message: email.message.EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert part is not None
    return part.get_content()


def _text(message: email.message.EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return part.get_content()


def test_an_email_the_mail_server_refuses_is_kept_and_sent_by_a_later_pass_and_nobody_to_email_fails(acme, places, published):
    account, lonely = acme.customer_accounts
    subscription = subscription_create(customer_account=account, milestones=["delivered"], channel="email", time_zone="UTC", actor=SYSTEM)
    shipment = make_shipment(acme, places, "SH-SMTP-1", pro_number="PRO-SMTP-1")
    MilestoneNotification.objects.create(
        subscription=subscription, shipment=shipment, milestone="delivered", occurred_at=NOW, due_at=NOW, details={"label": "Delivered"}
    )
    assert notifications_send().emails_queued == 1
    (row,) = MilestoneNotification.objects.filter(subscription=subscription)
    assert row.status == "sending" and row.message_key == f"msg-{row.pk}"
    with (
        smtp_sink() as (sink, port),
        override_settings(EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend", EMAIL_HOST="127.0.0.1", EMAIL_PORT=port),
    ):
        sink.refuse = 1
        assert milestone_email_send(message_key=row.message_key) == 0
        row.refresh_from_db()
        assert row.status == "sending" and row.error.startswith("attempt 1: SMTPSenderRefused") and sink.messages == []
        # The next pass after EMAIL_RETRY_AFTER queues it again; sent, it is done.
        MilestoneNotification.objects.filter(pk=row.pk).update(claimed_at=timezone.now() - timedelta(minutes=6))
        assert notifications_send().emails_requeued == 1
        assert milestone_email_send(message_key=row.message_key) == 1
        assert milestone_email_send(message_key=row.message_key) == 0  # a repeated task sends nothing
    row.refresh_from_db()
    assert (row.status, row.error, len(sink.messages)) == ("sent", "", 1)
    assert sink.messages[0]["To"] == acme.users["customer"].email  # every person of the account: one

    nobody = subscription_create(customer_account=lonely, milestones=["delivered"], channel="email", time_zone="UTC", actor=SYSTEM)
    other_shipment = make_shipment(acme, places, "SH-SMTP-2")
    Shipment.objects.filter(pk=other_shipment.pk).update(customer_account=lonely)
    MilestoneNotification.objects.create(subscription=nobody, shipment=other_shipment, milestone="delivered", occurred_at=NOW, due_at=NOW)
    notifications_send()
    failed = MilestoneNotification.objects.get(subscription=nobody)
    assert milestone_email_send(message_key=failed.message_key) == 0
    failed.refresh_from_db()
    assert (
        failed.status == "failed"
        and failed.error == f"Nobody to email: {lonely.name} has no active people and the subscription names no address."
    )


# --- the API -------------------------------------------------------------------------------------


def _api_key(world, *scopes: str) -> dict[str, str]:
    from accounts.services import api_key_create

    with schema_context(world.acme.schema):
        _key, secret = api_key_create(name="crm", scopes=list(scopes), actor=world.acme.users["tenant_admin"])
    return {"HTTP_AUTHORIZATION": f"Api-Key {secret}"}


@pytest.mark.django_db
def test_the_api_subscribes_an_account_says_what_is_wrong_and_lists_notifications(world):
    import json

    from tests.conftest import host_client, signed_in_client

    client = host_client(world.acme.host)
    writer, reader = _api_key(world, "connections:write"), _api_key(world, "connections:read")
    account = world.acme.customer_accounts[0]
    body = {"customer_account": account.pk, "milestones": ["delivered", "delay"], "channel": "email", "time_zone": "America/Chicago"}

    def post(path: str, data: dict, headers: dict):
        return client.post(path, data=json.dumps(data), content_type="application/json", **headers)

    refused = post("/api/v1/milestone-subscriptions", {**body, "time_zone": "Mars/Olympus", "quiet_start": "22:00"}, writer)
    assert refused.status_code == 422 and refused["Content-Type"] == "application/problem+json"
    assert refused.json()["errors"] == [{"pointer": "/quiet_end", "reason": "Give both the start and the end of quiet hours, or neither."}]
    wrong_zone = post("/api/v1/milestone-subscriptions", {**body, "time_zone": "Mars/Olympus"}, writer).json()
    assert wrong_zone["errors"][0]["pointer"] == "/time_zone"
    assert post("/api/v1/milestone-subscriptions", body, reader).status_code == 403  # reading is not writing
    customer = signed_in_client(world.acme.host, world.acme.users["customer"], world.acme.schema)
    assert customer.get("/api/v1/milestone-subscriptions").status_code == 403

    made = post("/api/v1/milestone-subscriptions", {**body, "quiet_start": "21:00", "quiet_end": "06:30"}, writer)
    assert made.status_code == 201, made.content
    subscription = made.json()
    assert (subscription["milestones"], subscription["quiet_end"], subscription["enabled"]) == (["delivered", "delay"], "06:30:00", True)
    listed = client.get(f"/api/v1/milestone-subscriptions?customer_account={account.pk}&state=enabled", **reader).json()
    assert [row["id"] for row in listed["results"]] == [subscription["id"]]

    path = f"/api/v1/milestone-subscriptions/{subscription['id']}"
    assert post(f"{path}/disable", {}, writer).json()["errors"][0]["pointer"] == "/reason"
    assert post(f"{path}/disable", {"reason": "moving to the portal"}, writer).json()["enabled"] is False
    assert post(f"{path}/disable", {"reason": "again"}, writer).status_code == 409
    assert post(f"{path}/enable", {}, writer).json()["enabled"] is True
    assert client.get(f"{path}/notifications?status=lost", **reader).status_code == 400
    assert client.get(f"{path}/notifications?status=pending", **reader).json()["results"] == []
    assert client.get("/api/v1/milestone-subscriptions/999999", **reader).status_code == 404


# --- end to end on the worker -------------------------------------------------------------------

SENDER = "Acme Tracking Desk"


def _template_version() -> TemplateVersion:
    connection.set_schema_to_public()
    template = WorkflowTemplate.objects.filter(key=TEMPLATE["key"]).first()
    existing = template_version_get(template=template, version=TEMPLATE["version"]) if template else None
    return existing or publish(TEMPLATE)


@pytest.fixture(scope="module")
def mail_server():
    with smtp_sink() as (sink, port):
        yield sink, port


@pytest.fixture(scope="module")
def receiver():
    with fake_partner() as partner:
        yield partner


@pytest.fixture(scope="module")
def worker(tmp_path_factory, django_db_setup, mail_server):
    _sink, port = mail_server
    env = suite_env(EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend", EMAIL_HOST="127.0.0.1", EMAIL_PORT=str(port))
    with celery_worker(tmp_path_factory.mktemp("notifications-worker") / "worker.log", env=env) as process:
        yield process


@pytest.fixture(scope="module")
def flow(world, django_db_setup, django_db_blocker, receiver):
    """Acme with the template cloned (sender name set) and published, and a webhook endpoint of
    its first customer account at the local receiver."""
    with django_db_blocker.unblock():
        version = _template_version()
        with schema_context(world.acme.schema):
            definition = clone_published(
                world.acme, version, key=f"notify-{uuid.uuid4().hex[:8]}", name="Milestone notices", parameters={"sender_name": SENDER}
            )
            endpoint, secret = webhook_endpoint_create(
                url=f"{receiver.url}/hooks/milestones",
                event_types=["shipment.*"],
                actor=SYSTEM,
                customer_account_id=world.acme.customer_accounts[0].pk,
            )
            subscriptions_forget()
        connection.set_schema_to_public()
    yield definition
    with django_db_blocker.unblock(), schema_context(world.acme.schema):
        definition_forget(world.acme, definition)
        WebhookEndpoint.objects.filter(pk=endpoint.pk).delete()
        endpoints_forget()
        subscriptions_forget()
        connection.set_schema_to_public()


@pytest.fixture
def journey(world, committed, flow, mail_server, receiver):
    """A carrier connection and a shipment of Acme's first account; subscriptions made with the
    `subscribe` it yields are removed afterwards, with their notifications."""
    sink, _port = mail_server
    sink.messages.clear()
    receiver.requests.clear()
    pro = f"PRO-N{uuid.uuid4().hex[:8].upper()}"
    carrier = carrier_with_shipment(world.acme, pro)
    made: list[int] = []

    def subscribe(**fields: Any) -> MilestoneSubscription:
        values: dict[str, Any] = {"customer_account": world.acme.customer_accounts[0], "time_zone": "UTC", "actor": SYSTEM}
        with schema_context(world.acme.schema):
            subscription = subscription_create(**{**values, **fields})
        made.append(subscription.pk)
        return subscription

    yield carrier, pro, subscribe
    with schema_context(world.acme.schema):
        MilestoneSubscription.objects.filter(pk__in=made).delete()
        subscriptions_forget()
        Run.objects.filter(definition=flow).exclude(status__in=["succeeded", "failed"]).update(status="cancelled")
    carrier_remove(carrier)


def _send(world, carrier, pro: str, status: str, at: datetime, event_id: str = "") -> None:
    sent = deliver_webhook(world.acme, carrier.key, carrier.secret, tracker(pro, status, at=at, event_id=event_id))
    assert sent.status_code in (200, 202), sent.content
    until(lambda: handed_on(world.acme, sent.json()["event_id"]), f"the {status} webhook was not handed on by the worker")


def until(check, what: str, timeout: float = 45.0):
    deadline = clock.time() + timeout
    while clock.time() < deadline:
        value = check()
        if value:
            return value
        clock.sleep(0.2)
    raise AssertionError(what)


def _rows(world, subscription: MilestoneSubscription) -> list[MilestoneNotification]:
    with schema_context(world.acme.schema):
        return list(MilestoneNotification.objects.filter(subscription=subscription).order_by("id"))


def _run_by_hand(world, definition: Definition) -> Run:
    """What the schedule starts every minute: a pass over what came due."""
    with schema_context(world.acme.schema):
        run, _created = run_start(
            definition=Definition.objects.get(pk=definition.pk),
            input={},
            business_key=f"test-{uuid.uuid4().hex[:8]}",
            trigger="manual",
            actor=SYSTEM,
        )
    return until(lambda: _finished(world, run.pk), "the sending run did not finish")


def _finished(world, run_id: int) -> Run | None:
    with schema_context(world.acme.schema):
        run = Run.objects.get(pk=run_id)
    return run if run.status in ("succeeded", "failed") else None


@pytest.mark.worker
def test_a_milestone_goes_at_once_as_a_branded_email_and_a_signed_webhook_and_a_resent_event_adds_nothing(
    world, worker, flow, journey, mail_server, receiver
):
    carrier, pro, subscribe = journey
    sink, _port = mail_server
    by_email = subscribe(milestones=["in_transit", "delivered"], channel="email", email="dispatch@coyote.test")
    by_webhook = subscribe(milestones=["in_transit"], channel="webhook")
    at = timezone.now().replace(microsecond=0)
    _send(world, carrier, pro, "in_transit", at, event_id=f"evt_{uuid.uuid4().hex[:10]}")

    message = until(lambda: sink.messages[:1], "no email reached the mail server")[0]
    assert message["To"] == "dispatch@coyote.test" and message["From"].addresses[0].display_name == SENDER
    shipment = carrier.shipment_id
    with schema_context(world.acme.schema):
        reference = Shipment.objects.get(pk=shipment).reference
    assert message["Subject"].strip() == f"Shipment {reference}: In transit – Acme Freight Hub"
    html = _html(message)
    assert "Acme Freight Hub" in html and "#0b4f9c" in html  # the tenant's product name and primary colour
    assert "In transit" in html and f"PRO {pro}" in html and "Denver, CO" in html
    assert f"Sent by {SENDER} for {world.acme.customer_accounts[0].name}" in _text(message)

    request = until(lambda: [r for r in receiver.requests if r.path == "/hooks/milestones"], "no webhook reached the receiver")[0]
    assert request.body["type"] == "shipment.milestone" and request.headers.get("webhook-signature")
    data = request.body["data"]
    assert data["digest"] is False and data["customer_account"] == world.acme.customer_accounts[0].code
    assert [(item["shipment"], item["milestone"], item["references"]["pro"]) for item in data["milestones"]] == [
        (reference, "in_transit", pro)
    ]
    until(lambda: all(row.status == "sent" for row in _rows(world, by_email) + _rows(world, by_webhook)), "not marked sent")

    # The carrier resends the same event (and repeats its state under a new id): nothing new.
    _send(world, carrier, pro, "in_transit", at, event_id=f"evt_{uuid.uuid4().hex[:10]}")
    _run_by_hand(world, flow)
    clock.sleep(1.0)
    assert len(sink.messages) == 1 and len([r for r in receiver.requests if r.path == "/hooks/milestones"]) == 1
    assert [row.milestone for row in _rows(world, by_email)] == ["in_transit"]
    assert [row.milestone for row in _rows(world, by_webhook)] == ["in_transit"]


@pytest.mark.worker
def test_a_milestone_in_quiet_hours_is_held_until_they_end_then_sent(world, worker, flow, journey, mail_server):
    carrier, pro, subscribe = journey
    sink, _port = mail_server
    now = timezone.now().astimezone(UTC)
    quiet = subscribe(
        milestones=["out_for_delivery"],
        channel="email",
        quiet_start=(now - timedelta(hours=1)).time().replace(second=0, microsecond=0),
        quiet_end=(now + timedelta(hours=2)).time().replace(second=0, microsecond=0),
    )
    _send(world, carrier, pro, "out_for_delivery", now)
    (held,) = until(lambda: _rows(world, quiet), "no notification was noted")
    assert (held.status, held.held) == ("pending", "quiet_hours")
    assert now + timedelta(hours=1) < held.due_at <= now + timedelta(hours=2)
    _run_by_hand(world, flow)
    assert sink.messages == [] and _rows(world, quiet)[0].status == "pending"  # still quiet

    # The quiet hours end (the row's due time reached), and the next pass sends it.
    with schema_context(world.acme.schema):
        MilestoneNotification.objects.filter(pk=held.pk).update(due_at=timezone.now() - timedelta(seconds=1))
    _run_by_hand(world, flow)
    message = until(lambda: sink.messages[:1], "the held email was not sent when quiet hours ended")[0]
    assert "Out for delivery" in message["Subject"] and message["To"] == world.acme.users["customer"].email
    until(lambda: _rows(world, quiet)[0].status == "sent", "the held notification was not marked sent")


@pytest.mark.worker
def test_a_digest_brings_several_milestones_in_one_message(world, worker, flow, journey, mail_server):
    carrier, pro, subscribe = journey
    sink, _port = mail_server
    digest = subscribe(milestones=["picked_up", "in_transit", "delivered"], channel="email", email="digest@coyote.test", digest="hourly")
    start = timezone.now().replace(microsecond=0) - timedelta(hours=3)
    for offset, status in enumerate(("in_transit", "out_for_delivery", "delivered")):
        _send(world, carrier, pro, status, start + timedelta(hours=offset))
    rows = until(lambda: len(_rows(world, digest)) == 2 and _rows(world, digest), "the digest's milestones were not noted")
    assert [(row.milestone, row.held, row.status) for row in rows] == [
        ("in_transit", "digest", "pending"),
        ("delivered", "digest", "pending"),
    ]
    next_hour = timezone.now().replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    assert {row.due_at for row in rows} == {next_hour}

    with schema_context(world.acme.schema):
        MilestoneNotification.objects.filter(subscription=digest).update(due_at=timezone.now() - timedelta(seconds=1))
    _run_by_hand(world, flow)
    message = until(lambda: sink.messages[:1], "the digest was not sent")[0]
    assert message["To"] == "digest@coyote.test" and message["Subject"].strip().startswith("2 shipment updates for 1 shipment")
    text = _text(message)
    assert text.index("In transit") < text.index("Delivered")
    sent = until(lambda: all(row.status == "sent" for row in _rows(world, digest)) and _rows(world, digest), "the digest not marked sent")
    assert len({row.message_key for row in sent}) == 1
    clock.sleep(0.5)
    assert len(sink.messages) == 1
