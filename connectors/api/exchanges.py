"""A connection's outbound log in the API: its calls newest first in cursor pages (filtered by
outcome), and one call with its redacted request and answer. Read-only: the log is written by
the calls themselves (`connectors.exchanges`)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, generics, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from connectors.api.permissions import CanRead
from connectors.api.serializers import ConnectionProblemSerializer
from connectors.api.views import _connection_or_404
from connectors.exchanges import FAILED, OUTCOMES, exchange_get, exchanges_list
from connectors.models import ConnectorExchange, ExchangeOrigin

OUTCOME_HELP = (
    "ok, or the error kind the call ended in: HttpClientError (4xx), HttpServerError (5xx), RateLimited (429), Timeout, "
    "ConnectionError, BadResponse (an answer that is not a JSON object, or a redirect), Refused (the address guard), "
    "AuthFailed (no token or unreadable secrets)."
)

# --- serializers -------------------------------------------------------------------------------------


class ConnectorExchangeSerializer(serializers.ModelSerializer):
    """A call as the log lists it (headers and bodies are in its detail)."""

    connection = serializers.CharField(source="connection_key", read_only=True, help_text="The connection's key.")
    origin = serializers.ChoiceField(
        choices=ExchangeOrigin.choices, read_only=True, help_text="step: a workflow's connector step; test: Test connection."
    )
    outcome = serializers.CharField(read_only=True, help_text=OUTCOME_HELP)
    url = serializers.CharField(read_only=True, help_text="As called, with user info and secret-looking query values redacted.")
    response_status = serializers.IntegerField(read_only=True, allow_null=True, help_text="null: no answer (see outcome and error).")
    run_id = serializers.IntegerField(read_only=True, allow_null=True, help_text="The workflow run whose step made the call.")

    class Meta:
        model = ConnectorExchange
        fields = [
            "id",
            "connection",
            "origin",
            "action",
            "method",
            "url",
            "response_status",
            "outcome",
            "error",
            "duration_ms",
            "idempotency_key",
            "run_id",
            "step_id",
            "request_size",
            "response_size",
            "created_at",
        ]
        read_only_fields = fields


class ConnectorExchangeDetailSerializer(ConnectorExchangeSerializer):
    request_headers = serializers.DictField(
        child=serializers.CharField(), read_only=True, help_text='As sent; credentials and secret-looking headers are "[redacted]".'
    )
    request_body = serializers.CharField(read_only=True, help_text="Secrets redacted; the first 4 KiB (request_size is the whole).")
    request_cut = serializers.BooleanField(read_only=True, help_text="Whether request_body is only the start of the body.")
    response_headers = serializers.DictField(child=serializers.CharField(), read_only=True)
    response_body = serializers.CharField(read_only=True, help_text="Secrets redacted; the first 4 KiB (response_size is the whole).")
    response_cut = serializers.BooleanField(read_only=True, help_text="Whether response_body is only the start of the body.")

    class Meta(ConnectorExchangeSerializer.Meta):
        fields = [
            *ConnectorExchangeSerializer.Meta.fields,
            "request_headers",
            "request_body",
            "request_cut",
            "response_headers",
            "response_body",
            "response_cut",
        ]
        read_only_fields = fields


# --- views -------------------------------------------------------------------------------------------

_PROBLEMS = {
    403: OpenApiResponse(ConnectionProblemSerializer, description="Missing scope or role."),
    404: OpenApiResponse(ConnectionProblemSerializer, description="Not in this workspace."),
}


class ExchangesQueryInvalid(exceptions.ValidationError):
    """400 problem+json naming the bad query parameter."""

    problem_type = "connector-exchanges-query-invalid"

    def __init__(self, pointer: str, reason: str):
        super().__init__(detail={pointer: [reason]})
        self.problem_errors = [{"pointer": pointer, "reason": reason}]


class ConnectorExchangeList(generics.ListAPIView):
    """The connection's outbound log, newest first (cursor pagination)."""

    serializer_class = ConnectorExchangeSerializer
    permission_classes = [CanRead]

    def get_queryset(self):
        outcome = self.request.query_params.get("outcome", "")
        if outcome and outcome != FAILED and outcome not in OUTCOMES:
            raise ExchangesQueryInvalid("outcome", f"'{outcome}' is not an outcome; use {FAILED}, {', '.join(OUTCOMES)}")
        return exchanges_list(connection=_connection_or_404(self.kwargs["key"]), outcome=outcome)

    @extend_schema(
        operation_id="connection_exchanges_list",
        parameters=[
            OpenApiParameter("outcome", OpenApiTypes.STR, enum=[FAILED, *OUTCOMES], description="failed: every outcome but ok."),
        ],
        responses={
            200: ConnectorExchangeSerializer(many=True),
            400: OpenApiResponse(ConnectionProblemSerializer, description="The outcome is not one of the list: `errors` names it."),
            403: _PROBLEMS[403],
            404: _PROBLEMS[404],
        },
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class ConnectorExchangeDetail(APIView):
    """One call of the connection's outbound log: the request as sent and the answer, redacted."""

    permission_classes = [CanRead]

    @extend_schema(
        operation_id="connection_exchange_retrieve",
        responses={200: ConnectorExchangeDetailSerializer, 403: _PROBLEMS[403], 404: _PROBLEMS[404]},
    )
    def get(self, request, key: str, exchange_id: int):
        exchange = exchange_get(connection=_connection_or_404(key), exchange_id=exchange_id)
        if exchange is None:
            raise exceptions.NotFound(f"There is no call {exchange_id} in the outbound log of '{key}'.")
        return Response(ConnectorExchangeDetailSerializer(exchange).data)
