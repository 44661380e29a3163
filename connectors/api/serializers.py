"""Connections and their inbound events in the API. Secrets are write-only: requests send them in
`auth`, answers show only `auth.secrets`, a mask per stored secret ("••••1234")."""

from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from connectors.auth import AUTH_SETTINGS, CLIENT_AUTH, HMAC_ALGORITHMS
from connectors.models import AuthMethod, CircuitState, Connection, ConnectionKind, HealthMethod, InboundEvent, InboundStatus, Transport
from connectors.selectors import connection_health, connection_secret_masks, inbound_event_dispatch, inbound_event_replays
from governance.models import AuditEvent


class ConnectionProblemItemSerializer(serializers.Serializer):
    pointer = serializers.CharField(help_text="JSON pointer into the request body, e.g. /auth/token_url.")
    reason = serializers.CharField()


class ConnectionProblemSerializer(serializers.Serializer):
    type = serializers.CharField()
    title = serializers.CharField()
    status = serializers.IntegerField()
    detail = serializers.CharField()
    instance = serializers.CharField()
    # A declared field, so the metaclass removes the attribute; only the stubs see the clash with .errors.
    errors = ConnectionProblemItemSerializer(many=True, required=False)  # type: ignore[assignment]


def _text(help_text: str, **kwargs: Any) -> serializers.CharField:
    return serializers.CharField(required=False, allow_blank=True, max_length=500, help_text=help_text, **kwargs)


def _secret(help_text: str) -> serializers.CharField:
    return serializers.CharField(
        required=False, allow_blank=True, max_length=4096, write_only=True, trim_whitespace=False, help_text=help_text + " Write-only."
    )


class AuthWriteSerializer(serializers.Serializer):
    """The auth method and its fields; only the chosen method's fields are kept. A secret left out
    (or empty) keeps the stored one when the method does not change."""

    method = serializers.ChoiceField(choices=AuthMethod.choices)
    header = _text("api_key, hmac: the header that carries the key or signature (X-Api-Key, X-Baton-Signature).")
    key = _secret("api_key: the key.")
    username = _text("basic: the user name.")
    password = _secret("basic: the password.")
    token_url = _text("oauth2_client_credentials: where tokens come from.")
    client_id = _text("oauth2_client_credentials: the client id.")
    client_secret = _secret("oauth2_client_credentials: the client secret.")
    scope = _text("oauth2_client_credentials: the scope to ask for (optional).")
    audience = _text("oauth2_client_credentials: the audience to ask for (optional).")
    client_auth = serializers.ChoiceField(
        choices=CLIENT_AUTH,
        required=False,
        help_text="oauth2_client_credentials: client id and secret in HTTP Basic (default) or in the body.",
    )
    algorithm = serializers.ChoiceField(choices=HMAC_ALGORITHMS, required=False, help_text="hmac: the digest (sha256 by default).")
    secret = _secret("hmac: the signing secret.")


class ConnectionCreateSerializer(serializers.Serializer):
    """A new connection. Transport and auth method default to what the kind usually takes."""

    key = serializers.CharField(max_length=80, help_text="How workflows name it: lowercase letters, digits, '-' and '_'. Cannot change.")
    name = serializers.CharField(max_length=120)
    kind = serializers.ChoiceField(choices=ConnectionKind.choices)
    transport = serializers.ChoiceField(choices=Transport.choices, required=False)
    base_url = serializers.CharField(max_length=500, help_text="https://…, sftp://host:22, mqtts://host:8883 or smtp://host:587.")
    health_path = serializers.CharField(
        max_length=200, required=False, allow_blank=True, help_text="What a test requests under the base URL."
    )
    health_method = serializers.ChoiceField(choices=HealthMethod.choices, required=False)
    connect_timeout = serializers.FloatField(required=False, min_value=0.1, max_value=60)
    read_timeout = serializers.FloatField(required=False, min_value=0.1, max_value=300)
    settings = serializers.DictField(required=False, help_text="Non-secret options, stored in plain text.")
    auth = AuthWriteSerializer(required=False)


class ConnectionUpdateSerializer(ConnectionCreateSerializer):
    """Only the fields sent change; the key never does."""

    key = None  # type: ignore[assignment]
    name = serializers.CharField(max_length=120, required=False)
    kind = serializers.ChoiceField(choices=ConnectionKind.choices, required=False)
    base_url = serializers.CharField(max_length=500, required=False)
    enabled = serializers.BooleanField(required=False, help_text="false disables the connection, true enables it again.")


class AuthReadSerializer(serializers.Serializer):
    method = serializers.ChoiceField(choices=AuthMethod.choices)
    settings = serializers.DictField(child=serializers.CharField(), help_text="The method's non-secret fields.")
    secrets = serializers.DictField(
        child=serializers.CharField(), help_text='A mask per secret field ("••••1234"); empty when none is stored.'
    )


class HealthSerializer(serializers.Serializer):
    calls = serializers.IntegerField()
    failures = serializers.IntegerField()
    error_rate = serializers.FloatField(allow_null=True, help_text="Failed calls out of all, 0–1; null before the first call.")
    last_success_at = serializers.DateTimeField(allow_null=True)
    last_failure_at = serializers.DateTimeField(allow_null=True)
    circuit_state = serializers.ChoiceField(choices=CircuitState.choices)
    circuit_opened_at = serializers.DateTimeField(allow_null=True)


class LastTestSerializer(serializers.Serializer):
    at = serializers.DateTimeField(source="last_test_at", allow_null=True)
    ok = serializers.BooleanField(source="last_test_ok", allow_null=True)
    message = serializers.CharField(source="last_test_message")


class ConnectionSerializer(serializers.ModelSerializer):
    auth = serializers.SerializerMethodField()
    health = serializers.SerializerMethodField()
    last_test = LastTestSerializer(source="*")

    class Meta:
        model = Connection
        fields = [
            "key",
            "name",
            "kind",
            "transport",
            "base_url",
            "health_path",
            "health_method",
            "connect_timeout",
            "read_timeout",
            "settings",
            "enabled",
            "auth",
            "health",
            "last_test",
            "created_at",
            "updated_at",
        ]

    @extend_schema_field(AuthReadSerializer)
    def get_auth(self, connection: Connection) -> dict[str, Any]:
        names = AUTH_SETTINGS.get(connection.auth_method, ())
        return {
            "method": connection.auth_method,
            "settings": {name: connection.auth_settings.get(name, "") for name in names},
            "secrets": connection_secret_masks(connection),
        }

    @extend_schema_field(HealthSerializer)
    def get_health(self, connection: Connection) -> dict[str, Any]:
        return dict(HealthSerializer(connection_health(connection)).data)


class ConnectionTestResultSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    message = serializers.CharField(help_text="What happened, in words: “Reached https://… in 84 ms: HTTP 200”.")
    tested_at = serializers.DateTimeField()


# --- the inbox ------------------------------------------------------------------------------------


class CanonicalEventSerializer(serializers.Serializer):
    event_type = serializers.CharField()
    event_id = serializers.CharField()
    correlation = serializers.DictField(child=serializers.CharField(), help_text="order, shipment, po, bol, pro.")
    payload = serializers.DictField()
    woken_runs = serializers.ListField(child=serializers.IntegerField(), help_text="Waiting runs this event woke.")
    started_runs = serializers.ListField(child=serializers.IntegerField(), help_text="Runs this event's triggers started.")


class InboundEventSerializer(serializers.ModelSerializer):
    """An inbound event as the log lists it (the body and headers are in its detail)."""

    connection = serializers.CharField(source="connection.key", read_only=True, help_text="The connection's key.")
    status = serializers.ChoiceField(
        choices=InboundStatus.choices,
        read_only=True,
        help_text="received: stored, waiting to be handed on; delivered: normalized and handed to workflows; "
        "quarantined: could not be normalized, waits for an operator (see error and error_pointer).",
    )
    canonical = CanonicalEventSerializer(many=True, read_only=True, help_text="What normalization made of it (empty until delivered).")

    class Meta:
        model = InboundEvent
        fields = [
            "id",
            "connection",
            "channel",
            "external_id",
            "content_type",
            "status",
            "received_at",
            "delivered_at",
            "replays",
            "error",
            "error_pointer",
            "canonical",
        ]


class InboundDispatchSerializer(serializers.Serializer):
    created_at = serializers.DateTimeField(help_text="When the event was stored or last replayed.")
    attempts = serializers.IntegerField(help_text="Failed attempts so far; quarantined after 5.")
    last_error = serializers.CharField()


class InboundReplayRecordSerializer(serializers.Serializer):
    occurred_at = serializers.DateTimeField()
    actor = serializers.CharField(source="actor_email")
    fixed = serializers.SerializerMethodField(help_text="Whether the replay came with a fixed body.")

    def get_fixed(self, audit: AuditEvent) -> bool:
        return bool(audit.data.get("fixed"))


class InboundEventDetailSerializer(InboundEventSerializer):
    headers = serializers.DictField(
        child=serializers.CharField(), read_only=True, help_text="The headers kept: what identifies and verifies it."
    )
    body = serializers.CharField(read_only=True, help_text="As received (or as last fixed), verified byte for byte.")
    original_body = serializers.CharField(read_only=True, help_text="The body as it arrived, when an operator fixed it; else empty.")
    dispatch = serializers.SerializerMethodField()
    replay_history = serializers.SerializerMethodField()

    class Meta(InboundEventSerializer.Meta):
        fields = [*InboundEventSerializer.Meta.fields, "headers", "body", "original_body", "acknowledgement", "dispatch", "replay_history"]

    @extend_schema_field(InboundDispatchSerializer(allow_null=True))
    def get_dispatch(self, event: InboundEvent) -> dict[str, Any] | None:
        """The pending hand-on (null once delivered or quarantined)."""
        dispatch = inbound_event_dispatch(event)
        return dict(InboundDispatchSerializer(dispatch).data) if dispatch else None

    @extend_schema_field(InboundReplayRecordSerializer(many=True))
    def get_replay_history(self, event: InboundEvent) -> list[dict[str, Any]]:
        return [dict(item) for item in InboundReplayRecordSerializer(inbound_event_replays(event), many=True).data]


class InboundReplaySerializer(serializers.Serializer):
    body = serializers.CharField(
        required=False,
        allow_blank=False,
        trim_whitespace=False,
        max_length=settings.BATON_WEBHOOK_MAX_BYTES,
        help_text="A fixed body to replay with (JSON when the event is); left out, the event is replayed as it is. The original is kept.",
    )
