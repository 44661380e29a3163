"""A tenant's connections to other systems (ERPs, TMSs, carriers, EDI partners, sensors, mail),
with their credentials encrypted at rest.

Secrets live only in `credentials`: one MultiFernet token (`config.encryption`, keys that are not
SECRET_KEY) of a JSON object holding the auth method's secret fields. What pages, the API and logs
show of them is `credential_masks` ("••••1234"), written when a secret is set. Everything else
about the auth method (header names, user names, token URL, client id) is plain `auth_settings`.
A connection's health (calls, failures, circuit) lives in Redis, where every worker's calls
count it (`connectors.guards`); "Test connection" writes the `last_test_*` fields.
"""

from django.db import models
from django.utils.translation import gettext_lazy as _


class ConnectionKind(models.TextChoices):
    ERP = "erp", _("ERP")
    TMS = "tms", _("TMS")
    WMS = "wms", _("WMS")
    CRM = "crm", _("CRM")
    CARRIER = "carrier", _("Carrier")
    EDI_PARTNER = "edi_partner", _("EDI partner")
    IOT = "iot", _("IoT / telemetry")
    CUSTOMER_WEBHOOK = "customer_webhook", _("Customer webhook")
    EMAIL = "email", _("Email")


class Transport(models.TextChoices):
    HTTPS = "https", "HTTPS"
    SFTP = "sftp", "SFTP"
    MQTT = "mqtt", "MQTT"
    SMTP = "smtp", "SMTP"


class AuthMethod(models.TextChoices):
    NONE = "none", _("No authentication")
    API_KEY = "api_key", _("API key")
    BASIC = "basic", _("Basic (user and password)")
    OAUTH2 = "oauth2_client_credentials", _("OAuth2 client credentials")
    HMAC = "hmac", _("HMAC signature")


class HealthMethod(models.TextChoices):
    GET = "GET", "GET"
    HEAD = "HEAD", "HEAD"


class CircuitState(models.TextChoices):
    CLOSED = "closed", _("Closed")
    OPEN = "open", _("Open")
    HALF_OPEN = "half_open", _("Half-open")


class InboundScheme(models.TextChoices):
    STANDARD_WEBHOOKS = "standard_webhooks", _("Standard Webhooks")
    GITHUB = "github", _("GitHub style (X-Hub-Signature-256)")
    SHOPIFY = "shopify", _("Shopify style (X-Shopify-Hmac-Sha256)")
    STRIPE = "stripe", _("Stripe style (Stripe-Signature)")
    EASYPOST = "easypost", _("EasyPost style (X-Hmac-Signature)")
    CUSTOM = "custom", _("Custom HMAC")


class InboundMapper(models.TextChoices):
    CANONICAL = "canonical", _("Baton events (event_type, event_id, correlation, payload)")
    EASYPOST = "easypost", _("EasyPost-style tracker events")
    MAPPING = "mapping", _("A mapping of JSON paths")
    X12 = "x12", _("X12 EDI interchanges")


class Connection(models.Model):
    key = models.SlugField(max_length=80, unique=True, help_text="How workflows and bindings name this connection.")
    name = models.CharField(max_length=120)
    kind = models.CharField(max_length=20, choices=ConnectionKind.choices)
    transport = models.CharField(max_length=10, choices=Transport.choices, default=Transport.HTTPS)
    base_url = models.CharField(max_length=500, help_text="https://…, sftp://host:22, mqtts://host:8883 or smtp://host:587.")
    health_path = models.CharField(max_length=200, blank=True, help_text="What “Test connection” requests, relative to the base URL.")
    health_method = models.CharField(max_length=4, choices=HealthMethod.choices, default=HealthMethod.GET)
    connect_timeout = models.FloatField(default=5)
    read_timeout = models.FloatField(default=30)
    settings = models.JSONField(default=dict, blank=True, help_text="Non-secret options.")
    auth_method = models.CharField(max_length=30, choices=AuthMethod.choices, default=AuthMethod.NONE)
    auth_settings = models.JSONField(default=dict, blank=True)
    credentials = models.TextField(blank=True, help_text="Encrypted JSON of the auth method's secrets.")
    credential_masks = models.JSONField(default=dict, blank=True)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    created_by_email = models.CharField(max_length=254, blank=True)

    last_test_at = models.DateTimeField(null=True, blank=True)
    last_test_ok = models.BooleanField(null=True, blank=True)
    last_test_message = models.TextField(blank=True)

    # Inbound: webhooks posted to /hooks/<key> are verified with `inbound_scheme` (empty: the
    # connection takes no webhooks) and turned into canonical events by `inbound_mapper`.
    inbound_scheme = models.CharField(max_length=30, choices=InboundScheme.choices, blank=True)
    inbound_scheme_settings = models.JSONField(default=dict, blank=True, help_text="A custom HMAC scheme's fields.")
    inbound_secrets = models.TextField(blank=True, help_text="Encrypted JSON list of signing secrets: the current one first.")
    inbound_secret_masks = models.JSONField(default=list, blank=True)
    inbound_mapper = models.CharField(max_length=20, choices=InboundMapper.choices, default=InboundMapper.CANONICAL)
    inbound_mapping = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["name", "key"]

    def __str__(self) -> str:
        return self.name


class InboundStatus(models.TextChoices):
    RECEIVED = "received", "Received"  # committed; its dispatch is pending
    DELIVERED = "delivered", "Delivered"  # normalized and handed to workflows
    QUARANTINED = "quarantined", "Quarantined"  # could not be normalized: waits for an operator


class InboundEvent(models.Model):
    """Something a partner sent, kept exactly as it arrived (the body verified, byte for byte).

    Written with its `EventDispatch` in one transaction before the sender gets its 202, so a
    broker outage delays its dispatch but cannot lose it; unique on (connection, external id),
    so a redelivery gets the first event's id and no second effect. Normalization fills
    `canonical` (the events handed to workflows) or quarantines it with `error` at `error_pointer`;
    an operator's fix keeps the original in `original_body`."""

    connection = models.ForeignKey(Connection, on_delete=models.PROTECT, related_name="inbound_events")
    channel = models.CharField(max_length=20, default="webhook")  # webhook, api, upload, sftp, mqtt
    external_id = models.CharField(max_length=200, blank=True)
    content_type = models.CharField(max_length=100, blank=True)
    headers = models.JSONField(default=dict, blank=True)
    body = models.TextField()
    original_body = models.TextField(blank=True)
    received_at = models.DateTimeField()
    status = models.CharField(max_length=20, choices=InboundStatus.choices, default=InboundStatus.RECEIVED)
    canonical = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)
    error_pointer = models.CharField(max_length=300, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    replays = models.PositiveIntegerField(default=0)
    acknowledgement = models.TextField(blank=True, help_text="The 997 answering an X12 interchange.")

    class Meta:
        ordering = ["-pk"]
        constraints = [
            models.UniqueConstraint(fields=["connection", "external_id"], condition=~models.Q(external_id=""), name="inbound_event_once"),
        ]
        indexes = [models.Index(fields=["status", "received_at"], name="inbound_event_status")]

    def __str__(self) -> str:
        return f"{self.connection_id}:{self.external_id or self.pk}"


class EventDispatch(models.Model):
    """The inbox's outbox row: it exists while its event still has to be handed on. The dispatch
    task deletes it when done; the sweeper sends a task again for rows left behind."""

    event = models.OneToOneField(InboundEvent, on_delete=models.CASCADE, related_name="dispatch")
    created_at = models.DateTimeField()
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return f"dispatch of {self.event_id}"


# --- MQTT telemetry ---------------------------------------------------------------------------------


class TelemetrySubscription(models.Model):
    """One device family's stream on an MQTT connection: a topic filter (`+` and `#` wildcards)
    and where each value sits in a message's JSON (`$.a.b` paths; an empty path: not sent). A
    message may carry any of the values: a position-only or temperature-only message updates just
    that, one with neither still counts as a ping. The counters say what the listener made of the
    messages, so a device sending garbage shows up here with the reason."""

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="telemetry_subscriptions")
    topic_filter = models.CharField(max_length=250, help_text="MQTT topic filter, e.g. fleet/+/telemetry.")
    device_path = models.CharField(max_length=200, default="$.device_id", blank=True, help_text="The trailer's or device's id.")
    device_topic_level = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Which level of the topic (0 first) names the trailer, when the message does not."
    )
    shipment_path = models.CharField(max_length=200, default="$.shipment", blank=True)
    latitude_path = models.CharField(max_length=200, default="$.lat", blank=True)
    longitude_path = models.CharField(max_length=200, default="$.lon", blank=True)
    temperature_path = models.CharField(max_length=200, default="$.temperature", blank=True, help_text="Degrees Celsius.")
    timestamp_path = models.CharField(
        max_length=200, default="$.ts", blank=True, help_text="ISO 8601 or Unix seconds/milliseconds; absent: when it arrived."
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    messages_total = models.PositiveBigIntegerField(default=0)
    messages_rejected = models.PositiveBigIntegerField(default=0)
    last_message_at = models.DateTimeField(null=True, blank=True)
    last_rejection = models.TextField(blank=True)
    last_rejection_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["connection_id", "topic_filter"]
        constraints = [models.UniqueConstraint(fields=["connection", "topic_filter"], name="telemetry_subscription_once")]

    def __str__(self) -> str:
        return self.topic_filter


class TelemetryAssetKind(models.TextChoices):
    TRAILER = "trailer", _("Trailer or device")
    SHIPMENT = "shipment", _("Shipment")


class TelemetryAsset(models.Model):
    """The latest a subscription knows of one trailer (or of a shipment, when messages name only
    the shipment): position, temperature, when each was measured, and the last `recent` readings
    (at most `connectors.telemetry.services.RECENT_READINGS`). No further history is kept: the excursions it raised are
    in the inbox."""

    subscription = models.ForeignKey(TelemetrySubscription, on_delete=models.CASCADE, related_name="assets")
    kind = models.CharField(max_length=10, choices=TelemetryAssetKind.choices)
    key = models.CharField(max_length=120)
    shipment_ref = models.CharField(max_length=120, blank=True)
    latitude = models.FloatField(null=True, blank=True)
    longitude = models.FloatField(null=True, blank=True)
    position_at = models.DateTimeField(null=True, blank=True)
    temperature = models.FloatField(null=True, blank=True)
    temperature_at = models.DateTimeField(null=True, blank=True)
    last_seen_at = models.DateTimeField()
    last_topic = models.CharField(max_length=250, blank=True)
    recent = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["kind", "key"]
        constraints = [models.UniqueConstraint(fields=["subscription", "kind", "key"], name="telemetry_asset_once")]
        indexes = [models.Index(fields=["shipment_ref", "last_seen_at"], name="telemetry_asset_shipment")]

    def __str__(self) -> str:
        return f"{self.kind} {self.key}"


class TelemetryRuleKind(models.TextChoices):
    TEMPERATURE_RANGE = "temperature_range", _("Temperature out of range")
    NO_PING = "no_ping", _("No message for N minutes")


class TelemetryRule(models.Model):
    """A threshold on a subscription's assets; with `asset_key` it applies to that trailer (or
    shipment) alone and replaces the subscription-wide rule of the same kind for it."""

    subscription = models.ForeignKey(TelemetrySubscription, on_delete=models.CASCADE, related_name="rules")
    kind = models.CharField(max_length=20, choices=TelemetryRuleKind.choices)
    asset_key = models.CharField(max_length=120, blank=True, help_text="Empty: every asset of the subscription.")
    temperature_min = models.FloatField(null=True, blank=True)
    temperature_max = models.FloatField(null=True, blank=True)
    silence_minutes = models.PositiveIntegerField(null=True, blank=True)
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["subscription_id", "kind", "asset_key"]
        constraints = [models.UniqueConstraint(fields=["subscription", "kind", "asset_key"], name="telemetry_rule_once")]

    def __str__(self) -> str:
        return f"{self.kind} {self.asset_key or '*'}"


class TelemetryExcursion(models.Model):
    """One trip of a rule by an asset, from the reading that tripped it until one that cleared it.
    At most one is open per asset and kind, so a rule raises its inbox event once per excursion,
    however many readings stay out of range."""

    asset = models.ForeignKey(TelemetryAsset, on_delete=models.CASCADE, related_name="excursions")
    rule = models.ForeignKey(TelemetryRule, on_delete=models.SET_NULL, null=True, blank=True, related_name="excursions")
    kind = models.CharField(max_length=20, choices=TelemetryRuleKind.choices)
    started_at = models.DateTimeField()
    cleared_at = models.DateTimeField(null=True, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    inbound_event = models.ForeignKey(InboundEvent, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")

    class Meta:
        ordering = ["-started_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["asset", "kind"], condition=models.Q(cleared_at__isnull=True), name="telemetry_excursion_open_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} of {self.asset_id} from {self.started_at:%Y-%m-%d %H:%M}"


# --- customer webhooks (events out) ---------------------------------------------------------------


class WebhookEndpoint(models.Model):
    """Where a customer (or, without one, the tenant itself) wants Baton's events: deliveries are
    signed with Standard Webhooks using `secrets` (encrypted list, the current one first; the
    previous keeps signing during a rotation) and retried for a day. An endpoint whose deliveries
    keep failing is disabled (`disabled_reason`) and its owner told."""

    customer_account = models.ForeignKey(
        "logistics.CustomerAccount", null=True, blank=True, on_delete=models.CASCADE, related_name="webhook_endpoints"
    )
    url = models.CharField(max_length=500)
    description = models.CharField(max_length=200, blank=True)
    event_types = models.JSONField(default=list, help_text='Event types, "prefix.*" patterns, or ["*"] for all.')
    secrets = models.TextField(blank=True)
    secret_masks = models.JSONField(default=list, blank=True)
    enabled = models.BooleanField(default=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.TextField(blank=True)
    failing_since = models.DateTimeField(null=True, blank=True)
    created_by_email = models.CharField(max_length=254, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return self.url


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    DELIVERED = "delivered", _("Delivered")
    FAILED = "failed", _("Failed")  # gave up after the retry schedule


class WebhookDelivery(models.Model):
    """One event for one endpoint: delivered at most once on purpose (unique per endpoint and
    event id), at least once in fact (the receiver dedupes on `webhook_id`, the same on every
    attempt). `next_attempt_at` is when a worker may try (a claim moves it past the call's
    timeout, so two workers never send it at once)."""

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    event_type = models.CharField(max_length=120)
    event_id = models.CharField(max_length=200)
    payload = models.JSONField(default=dict)
    webhook_id = models.CharField(max_length=64, unique=True)
    status = models.CharField(max_length=20, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_response = models.TextField(blank=True)
    created_at = models.DateTimeField()
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-pk"]
        constraints = [models.UniqueConstraint(fields=["endpoint", "event_id"], name="webhook_delivery_once")]
        indexes = [
            models.Index(fields=["next_attempt_at"], condition=models.Q(status="pending"), name="webhook_delivery_due"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id} → {self.endpoint_id}"


# --- X12 EDI trading partners ---------------------------------------------------------------------


class EdiUsage(models.TextChoices):
    PRODUCTION = "P", _("Production")
    TEST = "T", _("Test")


class EdiPartner(models.Model):
    """How one EDI partner connection's interchanges are addressed and carried: their ISA ids and
    ours, GS application ids, version, delimiters and usage for what Baton writes to them, whether
    they want 997s, and (SFTP) the folders polled and written. `sftp_host_key` is the server's
    public key (OpenSSH format): empty until the first poll records it, then every connection must
    present it."""

    connection = models.OneToOneField(Connection, on_delete=models.CASCADE, related_name="edi_partner")
    their_qualifier = models.CharField(max_length=2, default="ZZ")
    their_id = models.CharField(max_length=15)
    our_qualifier = models.CharField(max_length=2, default="ZZ")
    our_id = models.CharField(max_length=15)
    their_application_id = models.CharField(max_length=15, blank=True, help_text="GS02 they send; empty: their ISA id.")
    our_application_id = models.CharField(max_length=15, blank=True, help_text="GS02 we send; empty: our ISA id.")
    version = models.CharField(max_length=5, default="00401", help_text="ISA12, like 00401 or 00501.")
    group_version = models.CharField(max_length=12, default="004010", help_text="GS08, like 004010.")
    usage = models.CharField(max_length=1, choices=EdiUsage.choices, default=EdiUsage.PRODUCTION)
    element_separator = models.CharField(max_length=1, default="*")
    component_separator = models.CharField(max_length=1, default=">")
    segment_terminator = models.CharField(max_length=1, default="~")
    repetition_separator = models.CharField(max_length=1, default="^")
    wants_997 = models.BooleanField(default=True, help_text="Answer every interchange with a 997.")
    inbound_folder = models.CharField(max_length=300, default="inbound")
    archive_folder = models.CharField(max_length=300, default="archive")
    error_folder = models.CharField(max_length=300, default="error")
    outbound_folder = models.CharField(max_length=300, default="outbound")
    sftp_host_key = models.TextField(blank=True)
    last_poll_at = models.DateTimeField(null=True, blank=True)
    last_poll_ok = models.BooleanField(null=True, blank=True)
    last_poll_message = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["connection__name"]

    def __str__(self) -> str:
        return f"{self.their_qualifier}:{self.their_id}"


class EdiControlLevel(models.TextChoices):
    INTERCHANGE = "ISA", _("Interchange (ISA13)")
    GROUP = "GS", _("Functional group (GS06)")
    SET = "ST", _("Transaction set (ST02)")


class EdiControlNumber(models.Model):
    """The last control number Baton used towards a partner at one level; taken and moved on in
    one statement under the row's lock, so two workers never write the same number."""

    partner = models.ForeignKey(EdiPartner, on_delete=models.CASCADE, related_name="control_numbers")
    level = models.CharField(max_length=3, choices=EdiControlLevel.choices)
    last = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["partner_id", "level"]
        constraints = [models.UniqueConstraint(fields=["partner", "level"], name="edi_control_number_once")]

    def __str__(self) -> str:
        return f"{self.partner_id} {self.level} {self.last}"


class EdiAcknowledgementStatus(models.TextChoices):
    PENDING = "pending", _("Waiting to be sent")
    SENT = "sent", _("Sent")


class EdiAcknowledgement(models.Model):
    """The 997 answering one inbound interchange event of an SFTP partner that wants them: written
    with the partner's settings and control numbers when the event is dispatched, put in the
    partner's outbound folder by the next poll (`file_name`, named by our ISA13)."""

    event = models.OneToOneField(InboundEvent, on_delete=models.CASCADE, related_name="edi_acknowledgement")
    partner = models.ForeignKey(EdiPartner, on_delete=models.CASCADE, related_name="acknowledgements")
    interchange_control_number = models.CharField(max_length=9)
    file_name = models.CharField(max_length=60)
    text = models.TextField()
    status = models.CharField(max_length=10, choices=EdiAcknowledgementStatus.choices, default=EdiAcknowledgementStatus.PENDING)
    created_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-pk"]
        indexes = [models.Index(fields=["partner", "status"], name="edi_ack_pending")]

    def __str__(self) -> str:
        return self.file_name


# --- outbound request/response log -----------------------------------------------------------------


# Request and response bodies are kept up to this many bytes (UTF-8), their whole size beside them.
EXCHANGE_BODY_LIMIT = 4096


class ExchangeOrigin(models.TextChoices):
    STEP = "step", _("Workflow step")
    TEST = "test", _("Test connection")


class ConnectorExchange(models.Model):
    """One HTTP exchange Baton had with a partner: a connector step's call (or the loopback
    fallback's, which has no `connection`) or a Test connection, as `connectors.exchanges`
    recorded it – secrets redacted, bodies cut at EXCHANGE_BODY_LIMIT bytes with their whole
    size kept. `outcome` is "ok" or the `ConnectorError` kind the call ended in.
    Kept for BATON_CONNECTOR_EXCHANGE_DAYS."""

    # No database constraint: a round's rows go in one INSERT that a connection deleted meanwhile
    # must not fail; Django's collector still deletes a connection's exchanges with it.
    connection = models.ForeignKey(
        Connection, null=True, blank=True, on_delete=models.CASCADE, db_constraint=False, db_index=False, related_name="exchanges"
    )
    connection_key = models.CharField(max_length=80)
    origin = models.CharField(max_length=10, choices=ExchangeOrigin.choices, default=ExchangeOrigin.STEP)
    action = models.CharField(max_length=200, blank=True)
    method = models.CharField(max_length=10)
    url = models.TextField()
    request_headers = models.JSONField(default=dict, blank=True)
    request_body = models.TextField(blank=True)
    request_size = models.PositiveIntegerField(default=0, help_text="The whole body's size in bytes, before it was cut.")
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_headers = models.JSONField(default=dict, blank=True)
    response_body = models.TextField(blank=True)
    response_size = models.PositiveIntegerField(null=True, blank=True, help_text="Bytes; null: no answer, or its size is unknown.")
    duration_ms = models.PositiveIntegerField(default=0)
    outcome = models.CharField(max_length=30)
    error = models.TextField(blank=True)
    idempotency_key = models.CharField(max_length=200, blank=True)
    run_id = models.BigIntegerField(null=True, blank=True)
    step_id = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-pk"]
        indexes = [
            # The log pages read a connection's newest first, keyset on the id.
            models.Index(fields=["connection", "-id"], name="connector_exchange_log"),
            models.Index(fields=["created_at"], name="connector_exchange_age"),
        ]

    def __str__(self) -> str:
        return f"{self.method} {self.url} → {self.response_status or self.outcome}"

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    @property
    def request_cut(self) -> bool:
        return _cut(self.request_body, self.request_size)

    @property
    def response_cut(self) -> bool:
        return _cut(self.response_body, self.response_size)


def _cut(body: str, size: int | None) -> bool:
    """Whether a stored body is only the start of it (cutting at a character may drop 3 more bytes)."""
    return (size is None or size > EXCHANGE_BODY_LIMIT) and len(body.encode()) >= EXCHANGE_BODY_LIMIT - 3
