"""Customer accounts' milestone subscriptions in the API (`/api/v1/milestone-subscriptions`): list
and create, read one, disable and enable it, and its notifications in cursor pages. Customer
notifications travel beside customer webhooks, so the same scopes govern them:
`connections:read` reads, `connections:write` (or tenant admins, planners and customer service)
changes."""

from __future__ import annotations

from datetime import time
from typing import Any

from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import exceptions, generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api.authentication import request_actor
from accounts.api.permissions import scoped
from accounts.models import Role, User
from config.problems import serializer_error_pointers
from logistics import notifications
from logistics.models import (
    CustomerAccount,
    DigestMode,
    Milestone,
    MilestoneNotification,
    MilestoneSubscription,
    NotificationChannel,
    NotificationStatus,
)

CanRead = scoped("connections:read")
CanWrite = scoped("connections:write", Role.TENANT_ADMIN, Role.PLANNER, Role.CUSTOMER_SERVICE)


class SubscriptionRequestInvalid(exceptions.APIException):
    """422 problem+json with every problem as {pointer, reason}."""

    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_detail = "The subscription cannot be saved as given."
    default_code = "unprocessable"
    problem_type = "milestone-subscription-invalid"

    def __init__(self, problems: list[tuple[str, str]]):
        first = problems[0] if problems else ("", "")
        super().__init__(detail=f"{len(problems)} problem{'s' if len(problems) != 1 else ''}, first: {first[0] or '/'} {first[1]}.")
        self.problem_errors = [{"pointer": pointer, "reason": reason} for pointer, reason in problems]


class SubscriptionConflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The subscription is already in that state."
    default_code = "conflict"
    problem_type = "milestone-subscription-conflict"


class NotificationsQueryInvalid(exceptions.ValidationError):
    problem_type = "milestone-notifications-query-invalid"

    def __init__(self, pointer: str, reason: str):
        super().__init__(detail={pointer: [reason]})
        self.problem_errors = [{"pointer": pointer, "reason": reason}]


_PROBLEM = inline_serializer(
    "MilestoneSubscriptionProblem",
    fields={
        "type": serializers.CharField(),
        "title": serializers.CharField(),
        "status": serializers.IntegerField(),
        "detail": serializers.CharField(),
        "errors": serializers.ListField(child=serializers.DictField(), required=False),
    },
)
_PROBLEMS = {
    403: OpenApiResponse(_PROBLEM, description="Missing scope or role."),
    404: OpenApiResponse(_PROBLEM, description="Not in this workspace."),
}


class MilestoneSubscriptionSerializer(serializers.ModelSerializer):
    customer_account = serializers.IntegerField(source="customer_account_id", read_only=True)
    customer_account_name = serializers.CharField(source="customer_account.name", read_only=True)
    user = serializers.IntegerField(source="user_id", allow_null=True, read_only=True)
    milestones = serializers.ListField(child=serializers.CharField(), read_only=True, help_text="Milestone values, as in the create body.")

    class Meta:
        model = MilestoneSubscription
        fields = [
            "id",
            "customer_account",
            "customer_account_name",
            "milestones",
            "channel",
            "user",
            "email",
            "event_type",
            "quiet_start",
            "quiet_end",
            "time_zone",
            "digest",
            "digest_at",
            "enabled",
            "disabled_reason",
            "created_by_email",
            "created_at",
        ]
        read_only_fields = fields


class MilestoneSubscriptionCreateSerializer(serializers.Serializer):
    customer_account = serializers.IntegerField(help_text="The customer account's id.")
    milestones = serializers.ListField(child=serializers.ChoiceField(choices=Milestone.choices), min_length=1)
    channel = serializers.ChoiceField(choices=NotificationChannel.choices)
    user = serializers.IntegerField(required=False, allow_null=True, help_text="Email only: one person of the account.")
    email = serializers.EmailField(required=False, allow_blank=True, default="", help_text="Email only: this address.")
    event_type = serializers.CharField(required=False, max_length=100, default=notifications.DEFAULT_EVENT_TYPE)
    quiet_start = serializers.TimeField(required=False, allow_null=True, default=None, help_text="Local time, HH:MM.")
    quiet_end = serializers.TimeField(required=False, allow_null=True, default=None)
    time_zone = serializers.CharField(max_length=64, help_text="IANA time zone of quiet hours and digests.")
    digest = serializers.ChoiceField(choices=DigestMode.choices, required=False, default=DigestMode.OFF)
    digest_at = serializers.TimeField(required=False, allow_null=True, default=None, help_text="Daily digests: the local time.")


class DisableSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=300)


class MilestoneNotificationSerializer(serializers.ModelSerializer):
    shipment = serializers.CharField(source="shipment.reference", read_only=True)
    milestone = serializers.CharField(read_only=True, help_text="A milestone value, as in the subscription's milestones.")
    status = serializers.ChoiceField(
        choices=NotificationStatus.choices,
        read_only=True,
        help_text="pending: waits for due_at (held says why: quiet_hours or digest); sending: an email on its way; sent; failed "
        "(error says why); cancelled: the subscription was disabled first.",
    )

    class Meta:
        model = MilestoneNotification
        fields = ["id", "shipment", "milestone", "occurred_at", "details", "status", "due_at", "held", "message_key", "sent_at", "error"]
        read_only_fields = fields


def _subscription_or_404(subscription_id: int) -> MilestoneSubscription:
    subscription = MilestoneSubscription.objects.select_related("customer_account").filter(pk=subscription_id).first()
    if subscription is None:
        raise exceptions.NotFound(f"There is no milestone subscription {subscription_id} in this workspace.")
    return subscription


def _valid(serializer: serializers.Serializer) -> dict[str, Any]:
    if not serializer.is_valid():
        raise SubscriptionRequestInvalid(serializer_error_pointers(serializer.errors))
    return dict(serializer.validated_data)


class MilestoneSubscriptionListCreate(generics.ListAPIView):
    """Subscriptions, newest first; POST subscribes a customer account."""

    serializer_class = MilestoneSubscriptionSerializer

    def get_permissions(self):
        return [CanWrite()] if self.request.method == "POST" else [CanRead()]

    def get_queryset(self):
        params = self.request.query_params
        account = params.get("customer_account", "")
        return notifications.subscriptions_list(
            notifications.SubscriptionFilter(
                customer_account_id=int(account) if account.isdigit() else None,
                channel=params.get("channel", ""),
                state=params.get("state", ""),
                query=params.get("search", "")[:100],
            )
        )

    @extend_schema(
        operation_id="milestone_subscriptions_list",
        parameters=[
            OpenApiParameter("customer_account", OpenApiTypes.INT),
            OpenApiParameter("channel", OpenApiTypes.STR, enum=list(NotificationChannel.values)),
            OpenApiParameter("state", OpenApiTypes.STR, enum=["enabled", "disabled"]),
            OpenApiParameter("search", OpenApiTypes.STR, description="Matches the account's name, the email or the event type."),
        ],
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(
        operation_id="milestone_subscriptions_create",
        request=MilestoneSubscriptionCreateSerializer,
        responses={
            201: MilestoneSubscriptionSerializer,
            403: _PROBLEMS[403],
            422: OpenApiResponse(_PROBLEM, description="Every problem, as `errors: [{pointer, reason}]`."),
        },
    )
    def post(self, request):
        body = _valid(MilestoneSubscriptionCreateSerializer(data=request.data))
        account = CustomerAccount.objects.filter(pk=body["customer_account"]).first()
        if account is None:
            raise SubscriptionRequestInvalid([("/customer_account", f"There is no customer account {body['customer_account']} here.")])
        return subscription_created(request, body, account, SubscriptionRequestInvalid)


class MilestoneSubscriptionDetail(APIView):
    permission_classes = [CanRead]

    @extend_schema(
        operation_id="milestone_subscription_retrieve",
        responses={200: MilestoneSubscriptionSerializer, 403: _PROBLEMS[403], 404: _PROBLEMS[404]},
    )
    def get(self, request, subscription_id: int):
        return Response(MilestoneSubscriptionSerializer(_subscription_or_404(subscription_id)).data)


class MilestoneSubscriptionDisable(APIView):
    """Nothing new is noted, and what was waiting is cancelled; audited with the reason."""

    permission_classes = [CanWrite]

    @extend_schema(
        operation_id="milestone_subscription_disable",
        request=DisableSerializer,
        responses={
            200: MilestoneSubscriptionSerializer,
            **_PROBLEMS,
            409: OpenApiResponse(_PROBLEM, description="Disabled already."),
            422: OpenApiResponse(_PROBLEM),
        },
    )
    def post(self, request, subscription_id: int):
        subscription = _subscription_or_404(subscription_id)
        body = _valid(DisableSerializer(data=request.data))
        try:
            subscription = notifications.subscription_disable(
                subscription=subscription, reason=body["reason"], actor=request_actor(request)
            )
        except notifications.SubscriptionRefused as error:
            if error.field:
                raise SubscriptionRequestInvalid([(f"/{error.field}", error.message)]) from error
            raise SubscriptionConflict(error.message) from error
        return Response(MilestoneSubscriptionSerializer(_subscription_or_404(subscription.pk)).data)


class MilestoneSubscriptionEnable(APIView):
    permission_classes = [CanWrite]

    @extend_schema(
        operation_id="milestone_subscription_enable",
        request=None,
        responses={200: MilestoneSubscriptionSerializer, **_PROBLEMS, 409: OpenApiResponse(_PROBLEM, description="Enabled already.")},
    )
    def post(self, request, subscription_id: int):
        subscription = _subscription_or_404(subscription_id)
        try:
            notifications.subscription_enable(subscription=subscription, actor=request_actor(request))
        except notifications.SubscriptionRefused as error:
            raise SubscriptionConflict(error.message) from error
        return Response(MilestoneSubscriptionSerializer(_subscription_or_404(subscription.pk)).data)


class MilestoneSubscriptionNotifications(generics.ListAPIView):
    """The subscription's notifications, newest first (cursor pages)."""

    serializer_class = MilestoneNotificationSerializer
    permission_classes = [CanRead]

    def get_queryset(self):
        wanted = self.request.query_params.get("status", "")
        if wanted and wanted not in NotificationStatus.values:
            raise NotificationsQueryInvalid("status", f"'{wanted}' is not a status; use {', '.join(NotificationStatus.values)}")
        return notifications.subscription_notifications(_subscription_or_404(self.kwargs["subscription_id"]), wanted)

    @extend_schema(
        operation_id="milestone_subscription_notifications_list",
        parameters=[OpenApiParameter("status", OpenApiTypes.STR, enum=list(NotificationStatus.values))],
        responses={
            200: MilestoneNotificationSerializer(many=True),
            400: OpenApiResponse(_PROBLEM, description="A filter's value is not allowed."),
            **_PROBLEMS,
        },
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


urlpatterns = [
    path("milestone-subscriptions", MilestoneSubscriptionListCreate.as_view(), name="api-milestone-subscriptions"),
    path("milestone-subscriptions/<int:subscription_id>", MilestoneSubscriptionDetail.as_view(), name="api-milestone-subscription"),
    path(
        "milestone-subscriptions/<int:subscription_id>/disable",
        MilestoneSubscriptionDisable.as_view(),
        name="api-milestone-subscription-disable",
    ),
    path(
        "milestone-subscriptions/<int:subscription_id>/enable",
        MilestoneSubscriptionEnable.as_view(),
        name="api-milestone-subscription-enable",
    ),
    path(
        "milestone-subscriptions/<int:subscription_id>/notifications",
        MilestoneSubscriptionNotifications.as_view(),
        name="api-milestone-subscription-notifications",
    ),
]


def subscription_created(request, body: dict[str, Any], account: CustomerAccount, invalid: type[exceptions.APIException]) -> Response:
    """The 201 answer for a validated create body, shared by this API and the Experience API's
    `/subscriptions`: the person named (active, not a support session), the service, its
    refusal as `invalid` pointing at the field (the service refuses a person of another account)."""
    user = None
    if body.get("user") is not None:
        user = User.objects.filter(pk=body["user"], is_active=True, support_grant_id__isnull=True).first()
        if user is None:
            raise invalid([("/user", f"There is no active person {body['user']} here.")])
    times: dict[str, time | None] = {name: body.get(name) for name in ("quiet_start", "quiet_end", "digest_at")}
    try:
        subscription = notifications.subscription_create(
            customer_account=account,
            milestones=body["milestones"],
            channel=body["channel"],
            email=body["email"],
            user=user,
            event_type=body["event_type"],
            time_zone=body["time_zone"],
            digest=body["digest"],
            actor=request_actor(request),
            **times,
        )
    except notifications.SubscriptionRefused as error:
        raise invalid([(f"/{error.field}" if error.field else "", error.message)]) from error
    return Response(
        MilestoneSubscriptionSerializer(subscription).data,
        status=status.HTTP_201_CREATED,
        headers={"Location": f"/api/v1/milestone-subscriptions/{subscription.pk}"},
    )
