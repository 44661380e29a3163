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

    class Meta:
        ordering = ["name", "key"]

    def __str__(self) -> str:
        return self.name
