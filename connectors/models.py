"""A tenant's connections to other systems (ERPs, TMSs, carriers, EDI partners, sensors, mail),
with their credentials encrypted at rest.

Secrets live only in `credentials`: one MultiFernet token (`config.encryption`, keys that are not
SECRET_KEY) of a JSON object holding the auth method's secret fields. What pages, the API and logs
show of them is `credential_masks` ("••••1234"), written when a secret is set. Everything else
about the auth method (header names, user names, token URL, client id) is plain `auth_settings`.
The health fields are filled by outbound calls; "Test connection" writes only the `last_test_*`
fields.
"""

from django.db import models


class ConnectionKind(models.TextChoices):
    ERP = "erp", "ERP"
    TMS = "tms", "TMS"
    WMS = "wms", "WMS"
    CRM = "crm", "CRM"
    CARRIER = "carrier", "Carrier"
    EDI_PARTNER = "edi_partner", "EDI partner"
    IOT = "iot", "IoT / telemetry"
    CUSTOMER_WEBHOOK = "customer_webhook", "Customer webhook"
    EMAIL = "email", "Email"


class Transport(models.TextChoices):
    HTTPS = "https", "HTTPS"
    SFTP = "sftp", "SFTP"
    MQTT = "mqtt", "MQTT"
    SMTP = "smtp", "SMTP"


class AuthMethod(models.TextChoices):
    NONE = "none", "No authentication"
    API_KEY = "api_key", "API key"
    BASIC = "basic", "Basic (user and password)"
    OAUTH2 = "oauth2_client_credentials", "OAuth2 client credentials"
    HMAC = "hmac", "HMAC signature"


class HealthMethod(models.TextChoices):
    GET = "GET", "GET"
    HEAD = "HEAD", "HEAD"


class CircuitState(models.TextChoices):
    CLOSED = "closed", "Closed"
    OPEN = "open", "Open"
    HALF_OPEN = "half_open", "Half-open"


class InboundScheme(models.TextChoices):
    STANDARD_WEBHOOKS = "standard_webhooks", "Standard Webhooks"
    GITHUB = "github", "GitHub style (X-Hub-Signature-256)"
    SHOPIFY = "shopify", "Shopify style (X-Shopify-Hmac-Sha256)"
    STRIPE = "stripe", "Stripe style (Stripe-Signature)"
    EASYPOST = "easypost", "EasyPost style (X-Hmac-Signature)"
    CUSTOM = "custom", "Custom HMAC"


class InboundMapper(models.TextChoices):
    CANONICAL = "canonical", "Baton events (event_type, event_id, correlation, payload)"
    EASYPOST = "easypost", "EasyPost-style tracker events"
    MAPPING = "mapping", "A mapping of JSON paths"


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

    last_success_at = models.DateTimeField(null=True, blank=True)
    last_failure_at = models.DateTimeField(null=True, blank=True)
    calls_total = models.PositiveBigIntegerField(default=0)
    failures_total = models.PositiveBigIntegerField(default=0)
    circuit_state = models.CharField(max_length=10, choices=CircuitState.choices, default=CircuitState.CLOSED)
    circuit_opened_at = models.DateTimeField(null=True, blank=True)

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
