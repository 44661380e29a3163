"""`GET /api/v1/insights/outcomes`: the outcomes page's figures as JSON, for the workspace's staff
and API keys with the `insights:read` scope (never a customer's key: the figures span every
customer). Included by `portal/api/urls.py` like the other apps' API routes."""

from __future__ import annotations

from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api.permissions import scoped
from insights.presentation import outcomes_data
from insights.selectors import DAYS_DEFAULT, DAYS_MAX, DAYS_MIN, PeriodInvalid, outcome_periods, outcomes
from workflows.api.serializers import ProblemSerializer
from workflows.api.views import UnprocessableRequest, _serializer_problems
from workflows.validation import DefinitionProblem


class OutcomesRequestInvalid(UnprocessableRequest):
    problem_type = "outcomes-request-invalid"


class OutcomesQuerySerializer(serializers.Serializer):
    days = serializers.IntegerField(min_value=DAYS_MIN, max_value=DAYS_MAX, default=DAYS_DEFAULT)
    baseline_start = serializers.DateField(required=False, allow_null=True, default=None)
    baseline_end = serializers.DateField(required=False, allow_null=True, default=None)


class PeriodSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField(help_text="Exclusive.")
    days = serializers.FloatField()


class GoLiveSerializer(serializers.Serializer):
    definition = serializers.CharField(help_text="The workflow's key.")
    name = serializers.CharField()
    template = serializers.CharField(help_text="The library template it was cloned from.")
    published_at = serializers.DateTimeField()


class BaselineSerializer(PeriodSerializer):
    # Declared fields named like Field's attributes: the metaclass removes those; only the stubs see a clash.
    source = serializers.ChoiceField(  # type: ignore[assignment]
        choices=["chosen", "go_live", "before_now"],
        help_text="chosen: the dates asked for; go_live: the days before the first logistics workflow went live; before_now: none has.",
    )
    go_live = GoLiveSerializer(allow_null=True)


class FiguresSerializer(serializers.Serializer):
    count = serializers.IntegerField(help_text="What was measured: orders picked up, exceptions closed, deliveries, invoices.")
    median_seconds = serializers.FloatField(required=False, allow_null=True)
    p90_seconds = serializers.FloatField(required=False, allow_null=True)
    rate = serializers.FloatField(required=False, allow_null=True, help_text="A fraction from 0 to 1.")
    hits = serializers.IntegerField(required=False, help_text="On-time deliveries, disputed invoices.")
    rated = serializers.IntegerField(required=False, help_text="The rate's denominator.")
    without_promise = serializers.IntegerField(required=False, help_text="Deliveries with no appointment or planned ETA.")
    open_at_end = serializers.IntegerField(required=False, help_text="Exceptions open at the period's end.")


class ChangeSerializer(serializers.Serializer):
    direction = serializers.ChoiceField(choices=["better", "worse", "unchanged", "unknown"])
    summary = serializers.CharField()


class WeekSerializer(serializers.Serializer):
    week = serializers.DateField(help_text="The Monday the week starts on, in the tenant's time zone.")
    count = serializers.IntegerField()
    value = serializers.FloatField(allow_null=True, help_text="The week's median (seconds) or rate (fraction).")


class OutcomeMetricSerializer(serializers.Serializer):
    key = serializers.ChoiceField(
        choices=["order_cycle_time", "exception_handling_time", "on_time_delivery", "pod_to_invoice_lag", "dispute_rate"]
    )
    label = serializers.CharField()  # type: ignore[assignment]
    unit = serializers.ChoiceField(choices=["seconds", "fraction"])
    better = serializers.ChoiceField(choices=["lower", "higher"])
    definition = serializers.CharField()
    baseline = FiguresSerializer()
    now = FiguresSerializer()
    change = ChangeSerializer()
    weeks = WeekSerializer(many=True)


class OutcomesSerializer(serializers.Serializer):
    time_zone = serializers.CharField()
    now = PeriodSerializer()
    baseline = BaselineSerializer()
    periods_overlap = serializers.BooleanField()
    metrics = OutcomeMetricSerializer(many=True)


class OutcomesView(APIView):
    """The five outcome metrics – order cycle time, exception handling time, on-time delivery,
    POD-to-invoice lag, dispute rate – for the baseline and for the last `days` days, with the
    change and the weekly trend."""

    permission_classes = [scoped("insights:read")]  # never a customer's key: the figures span every customer

    @extend_schema(
        summary="Outcome metrics, baseline against now",
        parameters=[
            OpenApiParameter(
                "days", OpenApiTypes.INT, description=f"'Now' is the last this many days ({DAYS_MIN}–{DAYS_MAX}, default 30)."
            ),
            OpenApiParameter("baseline_start", OpenApiTypes.DATE, description="The baseline's first day (with baseline_end)."),
            OpenApiParameter("baseline_end", OpenApiTypes.DATE, description="The baseline's last day, included."),
        ],
        responses={
            200: OutcomesSerializer,
            403: OpenApiResponse(ProblemSerializer, description="Missing scope or role, or a customer's key."),
            422: OpenApiResponse(ProblemSerializer, description="Every problem, as `errors: [{pointer, reason}]`."),
        },
    )
    def get(self, request):
        query = OutcomesQuerySerializer(data=request.query_params.dict())
        if not query.is_valid():
            raise OutcomesRequestInvalid(_serializer_problems(query.errors))
        asked = query.validated_data
        try:
            periods = outcome_periods(
                time_zone=getattr(request.tenant, "time_zone", "") or "",
                days=asked["days"],
                baseline_start=asked["baseline_start"],
                baseline_end=asked["baseline_end"],
            )
        except PeriodInvalid as problem:
            raise OutcomesRequestInvalid([DefinitionProblem(f"/{problem.field}", problem.message)]) from problem
        return Response(outcomes_data(outcomes(periods)))


urlpatterns = [
    path("insights/outcomes", OutcomesView.as_view(), name="api-insights-outcomes"),
]
