"""Customer webhook endpoints and their deliveries in the API: list and create (the signing secret
in the 201 answer only), read and change one, rotate its secret (the new one in that answer
only), its delivery log in cursor pages, replaying a delivery. Answers carry masks, never secrets."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api.authentication import request_actor
from connectors.api.permissions import CanRead, CanWrite
from connectors.api.serializers import ConnectionProblemSerializer
from connectors.api.views import ConnectionRequestInvalid, _serializer_problems
from connectors.deliveries import (
    DEFAULT_SECRET_OVERLAP,
    EndpointInvalid,
    ReplayRefused,
    delivery_replay,
    webhook_endpoint_create,
    webhook_endpoint_disable,
    webhook_endpoint_enable,
    webhook_endpoint_rotate,
    webhook_endpoint_update,
)
from connectors.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from connectors.selectors import webhook_deliveries_list, webhook_delivery_get, webhook_endpoint_get, webhook_endpoints_list
from connectors.services import ConnectionProblem
from logistics.selectors import customer_accounts_all

EVENT_TYPES_HELP = 'Event types ("shipment.milestone"), patterns ("shipment.*") or "*" for every event.'

# --- serializers -------------------------------------------------------------------------------------


class WebhookEndpointSerializer(serializers.ModelSerializer):
    """An endpoint with its secrets' masks and what waits to be delivered."""

    customer_account = serializers.IntegerField(
        source="customer_account_id", allow_null=True, read_only=True, help_text="The customer's account id; null: the workspace's own."
    )
    customer_account_name = serializers.CharField(source="customer_account.name", default=None, allow_null=True, read_only=True)
    event_types = serializers.ListField(child=serializers.CharField(), read_only=True, help_text=EVENT_TYPES_HELP)
    secret_masks = serializers.ListField(
        child=serializers.CharField(), read_only=True, help_text="The current secret's mask first, then any previous one still signing."
    )
    pending_deliveries = serializers.IntegerField(source="pending_count", read_only=True)
    failed_deliveries = serializers.IntegerField(source="failed_count", read_only=True)

    class Meta:
        model = WebhookEndpoint
        fields = [
            "id",
            "url",
            "customer_account",
            "customer_account_name",
            "description",
            "event_types",
            "secret_masks",
            "enabled",
            "disabled_at",
            "disabled_reason",
            "failing_since",
            "created_by_email",
            "created_at",
            "pending_deliveries",
            "failed_deliveries",
        ]
        read_only_fields = fields


class WebhookEndpointSecretSerializer(WebhookEndpointSerializer):
    secret = serializers.SerializerMethodField(help_text="The new signing secret (whsec_…): in this answer only, never again.")

    class Meta(WebhookEndpointSerializer.Meta):
        fields = [*WebhookEndpointSerializer.Meta.fields, "secret"]
        read_only_fields = fields

    def get_secret(self, endpoint: WebhookEndpoint) -> str:
        return str(self.context["secret"])


class WebhookEndpointCreateSerializer(serializers.Serializer):
    url = serializers.CharField(max_length=500, help_text="https:// (http:// only for a test receiver); checked against the SSRF guard.")
    customer_account = serializers.IntegerField(
        required=False, allow_null=True, help_text="A customer account's id: that customer's events only. Left out: the workspace's own."
    )
    event_types = serializers.ListField(child=serializers.CharField(max_length=120), min_length=1, help_text=EVENT_TYPES_HELP)
    description = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")

    def validate_customer_account(self, value: int | None) -> int | None:
        if value is not None and not customer_accounts_all().filter(pk=value).exists():
            raise serializers.ValidationError(f"There is no customer account {value} in this workspace.")
        return value


class WebhookEndpointUpdateSerializer(serializers.Serializer):
    event_types = serializers.ListField(
        child=serializers.CharField(max_length=120), min_length=1, required=False, help_text=EVENT_TYPES_HELP
    )
    description = serializers.CharField(required=False, allow_blank=True, max_length=200)
    enabled = serializers.BooleanField(required=False, help_text="false stops deliveries; true sends new events again.")
    disabled_reason = serializers.CharField(required=False, allow_blank=True, max_length=300, help_text="Why, with enabled: false.")


class WebhookRotateSerializer(serializers.Serializer):
    overlap_hours = serializers.IntegerField(
        required=False,
        min_value=0,
        max_value=168,
        default=int(DEFAULT_SECRET_OVERLAP.total_seconds() // 3600),
        help_text="How long the previous secret keeps signing alongside the new one; 0 stops it at once.",
    )


class WebhookDeliverySerializer(serializers.ModelSerializer):
    endpoint = serializers.IntegerField(source="endpoint_id", read_only=True)
    status = serializers.ChoiceField(
        choices=DeliveryStatus.choices,
        read_only=True,
        help_text="pending: waiting for its (next) attempt; delivered: the receiver answered 2xx; failed: given up after the retry "
        "schedule, or the endpoint was disabled.",
    )
    last_response = serializers.CharField(read_only=True, help_text="The start of the receiver's last answer.")

    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "endpoint",
            "event_type",
            "event_id",
            "webhook_id",
            "payload",
            "status",
            "attempts",
            "next_attempt_at",
            "last_status_code",
            "last_error",
            "last_response",
            "created_at",
            "delivered_at",
        ]
        read_only_fields = fields


# --- views -------------------------------------------------------------------------------------------

_PROBLEMS = {
    403: OpenApiResponse(ConnectionProblemSerializer, description="Missing scope or role."),
    404: OpenApiResponse(ConnectionProblemSerializer, description="Not in this workspace."),
    422: OpenApiResponse(ConnectionProblemSerializer, description="Every problem, as `errors: [{pointer, reason}]`."),
}


class DeliveryNotReplayable(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The delivery cannot be replayed now."
    default_code = "conflict"
    problem_type = "webhook-delivery-not-replayable"


class DeliveriesQueryInvalid(exceptions.ValidationError):
    """400 problem+json naming the bad query parameter."""

    problem_type = "webhook-deliveries-query-invalid"

    def __init__(self, pointer: str, reason: str):
        super().__init__(detail={pointer: [reason]})
        self.problem_errors = [{"pointer": pointer, "reason": reason}]


def _endpoint_or_404(endpoint_id: int) -> WebhookEndpoint:
    endpoint = webhook_endpoint_get(endpoint_id=endpoint_id)
    if endpoint is None:
        raise exceptions.NotFound(f"There is no webhook endpoint {endpoint_id} in this workspace.")
    return endpoint


def _invalid(error: EndpointInvalid) -> ConnectionRequestInvalid:
    return ConnectionRequestInvalid([ConnectionProblem(f"/{error.field}" if error.field else "", error.message)])


def _valid(serializer: serializers.Serializer) -> dict[str, Any]:
    if not serializer.is_valid():
        raise ConnectionRequestInvalid(_serializer_problems(serializer.errors))
    return dict(serializer.validated_data)


class WebhookEndpointListCreate(generics.ListAPIView):
    """This workspace's webhook endpoints, newest first; POST adds one and answers its signing secret, once."""

    serializer_class = WebhookEndpointSerializer

    def get_permissions(self):
        return [CanWrite()] if self.request.method == "POST" else [CanRead()]

    def get_queryset(self):
        params = self.request.query_params
        return webhook_endpoints_list(
            query=params.get("search", ""), customer_account=params.get("customer_account", ""), status=params.get("status", "")
        )

    @extend_schema(
        operation_id="webhook_endpoints_list",
        parameters=[
            OpenApiParameter("search", OpenApiTypes.STR, description="Matches the URL or description."),
            OpenApiParameter("customer_account", OpenApiTypes.STR, description='A customer account id, or "workspace" for the own ones.'),
            OpenApiParameter("status", OpenApiTypes.STR, enum=["enabled", "disabled", "failing"]),
        ],
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(
        operation_id="webhook_endpoints_create",
        request=WebhookEndpointCreateSerializer,
        responses={201: WebhookEndpointSecretSerializer, 403: _PROBLEMS[403], 422: _PROBLEMS[422]},
    )
    def post(self, request):
        body = _valid(WebhookEndpointCreateSerializer(data=request.data))
        try:
            endpoint, secret = webhook_endpoint_create(
                url=body["url"].strip(),
                event_types=body["event_types"],
                description=body["description"],
                customer_account_id=body.get("customer_account"),
                actor=request_actor(request),
            )
        except EndpointInvalid as error:
            raise _invalid(error) from error
        answer = WebhookEndpointSecretSerializer(_endpoint_or_404(endpoint.pk), context={"secret": secret}).data
        response = Response(answer, status=status.HTTP_201_CREATED, headers={"Location": f"/api/v1/webhook-endpoints/{endpoint.pk}"})
        response["Cache-Control"] = "no-store"
        return response


class WebhookEndpointDetail(APIView):
    """One endpoint; PATCH changes its event types, description or whether it is enabled."""

    def get_permissions(self):
        return [CanWrite()] if self.request.method == "PATCH" else [CanRead()]

    @extend_schema(
        operation_id="webhook_endpoint_retrieve", responses={200: WebhookEndpointSerializer, 403: _PROBLEMS[403], 404: _PROBLEMS[404]}
    )
    def get(self, request, endpoint_id: int):
        return Response(WebhookEndpointSerializer(_endpoint_or_404(endpoint_id)).data)

    @extend_schema(
        operation_id="webhook_endpoint_update",
        request=WebhookEndpointUpdateSerializer,
        responses={200: WebhookEndpointSerializer, **_PROBLEMS},
    )
    def patch(self, request, endpoint_id: int):
        endpoint = _endpoint_or_404(endpoint_id)
        body = _valid(WebhookEndpointUpdateSerializer(data=request.data))
        actor = request_actor(request)
        try:
            webhook_endpoint_update(
                endpoint=endpoint, event_types=body.get("event_types"), description=body.get("description"), actor=actor
            )
        except EndpointInvalid as error:
            raise _invalid(error) from error
        if body.get("enabled") is False:
            webhook_endpoint_disable(endpoint=endpoint, actor=actor, reason=body.get("disabled_reason", ""))
        elif body.get("enabled") is True and not endpoint.enabled:
            webhook_endpoint_enable(endpoint=endpoint, actor=actor)
        return Response(WebhookEndpointSerializer(_endpoint_or_404(endpoint.pk)).data)


class WebhookEndpointRotate(APIView):
    """A new signing secret, in this answer only; the previous one keeps signing for `overlap_hours`."""

    permission_classes = [CanWrite]

    @extend_schema(
        operation_id="webhook_endpoint_rotate",
        request=WebhookRotateSerializer,
        responses={200: WebhookEndpointSecretSerializer, **_PROBLEMS},
    )
    def post(self, request, endpoint_id: int):
        endpoint = _endpoint_or_404(endpoint_id)
        body = _valid(WebhookRotateSerializer(data=request.data))
        secret = webhook_endpoint_rotate(endpoint=endpoint, actor=request_actor(request), overlap=timedelta(hours=body["overlap_hours"]))
        response = Response(WebhookEndpointSecretSerializer(_endpoint_or_404(endpoint.pk), context={"secret": secret}).data)
        response["Cache-Control"] = "no-store"
        return response


class WebhookEndpointDeliveries(generics.ListAPIView):
    """The endpoint's deliveries, newest first (cursor pagination), with attempts and last answers."""

    serializer_class = WebhookDeliverySerializer
    permission_classes = [CanRead]

    def get_queryset(self):
        params = self.request.query_params
        status_ = params.get("status", "")
        if status_ and status_ not in DeliveryStatus.values:
            raise DeliveriesQueryInvalid("status", f"'{status_}' is not a status; use {', '.join(DeliveryStatus.values)}")
        endpoint = _endpoint_or_404(self.kwargs["endpoint_id"])
        return webhook_deliveries_list(endpoint=endpoint, status=status_, event_type=params.get("event_type", ""))

    @extend_schema(
        operation_id="webhook_endpoint_deliveries_list",
        parameters=[
            OpenApiParameter("status", OpenApiTypes.STR, enum=list(DeliveryStatus.values)),
            OpenApiParameter("event_type", OpenApiTypes.STR, description="An exact event type."),
        ],
        responses={
            200: WebhookDeliverySerializer(many=True),
            400: OpenApiResponse(ConnectionProblemSerializer, description="A filter's value is not allowed: `errors` names it."),
            403: _PROBLEMS[403],
            404: _PROBLEMS[404],
        },
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class WebhookDeliveryReplay(APIView):
    """Send a delivery again now (a failed one, or a delivered one the receiver lost); audited. 202:
    it is sent in a moment, on the retry schedule from there."""

    permission_classes = [CanWrite]

    @extend_schema(
        operation_id="webhook_delivery_replay",
        request=None,
        responses={
            202: WebhookDeliverySerializer,
            403: _PROBLEMS[403],
            404: _PROBLEMS[404],
            409: OpenApiResponse(ConnectionProblemSerializer, description="The endpoint is disabled: enable it first."),
        },
    )
    def post(self, request, delivery_id: int):
        delivery = webhook_delivery_get(delivery_id=delivery_id)
        if delivery is None:
            raise exceptions.NotFound(f"There is no webhook delivery {delivery_id} in this workspace.")
        try:
            delivery = delivery_replay(delivery=delivery, actor=request_actor(request))
        except ReplayRefused as refused:
            raise DeliveryNotReplayable(
                f"Webhook endpoint {delivery.endpoint_id} is disabled: enable it first (PATCH enabled: true), or the replay fails at once."
            ) from refused
        return Response(WebhookDeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)
