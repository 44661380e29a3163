"""The EDI upload API: a partner's (or an integration's) X12 interchange posted as it is, stored in
the inbox through `connectors.edi_transport.edi_receive` and answered 202 with the event's id (one
event per interchange when the body holds several, all listed in `events`).

The body is the raw interchange (`application/edi-x12` or `text/plain`); a client that can only
send JSON posts `{"interchange": "ISA*…"}`. A resent interchange (same sender and ISA13) answers
with the first event's id and `duplicate: true`, and changes nothing.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.parsers import BaseParser, JSONParser
from rest_framework.response import Response
from rest_framework.views import APIView

from connectors.api.permissions import CanWrite
from connectors.api.serializers import ConnectionProblemSerializer
from connectors.edi_transport import EDI_MAX_BYTES, EdiRefused, EdiTooLarge, edi_receive
from connectors.models import Connection, EdiPartner
from connectors.selectors import connection_by_key


class X12Parser(BaseParser):
    """The body as bytes, read up to one byte past the limit (so an oversized body is refused, not cut)."""

    media_type = "application/edi-x12"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:  # bytes, not the stubs' Mapping
        return stream.read(EDI_MAX_BYTES + 1) if stream is not None else b""


class PlainTextParser(X12Parser):
    media_type = "text/plain"


class InterchangeJsonSerializer(serializers.Serializer):
    interchange = serializers.CharField(trim_whitespace=False, help_text="The X12 interchange as text, from ISA to IEA.")


class InterchangePartSerializer(serializers.Serializer):
    event_id = serializers.IntegerField(help_text="The inbound event holding this part (GET /api/v1/inbound-events/{id}).")
    external_id = serializers.CharField(help_text="x12:<sender id>:<ISA13> for an interchange; sha256:… for text outside any.")
    duplicate = serializers.BooleanField(help_text="True when this interchange was received before: the first event's id.")
    outside = serializers.BooleanField(help_text="Text outside any interchange: it is quarantined with the reason.")


class InterchangeReceivedSerializer(serializers.Serializer):
    event_id = serializers.IntegerField(help_text="The inbound event holding the (first) interchange (GET /api/v1/inbound-events/{id}).")
    duplicate = serializers.BooleanField(help_text="True when every interchange was received before: the first event's id.")
    events = InterchangePartSerializer(
        many=True, help_text="One per interchange in the body, and per piece of text outside them, in order; each is answered on its own."
    )


class InterchangeTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Interchange too large"
    default_code = "too_large"
    problem_type = "edi-too-large"


class InterchangeUnreadable(exceptions.APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_detail = "Interchange cannot be stored"
    default_code = "unprocessable"
    problem_type = "edi-unreadable"


class NotAnEdiPartner(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "Not an EDI partner"
    default_code = "conflict"
    problem_type = "edi-partner-missing"


class ConnectionDisabled(exceptions.PermissionDenied):
    problem_type = "connection-disabled"


def _partner_connection(key: str) -> Connection:
    connection = connection_by_key(key=key)
    if connection is None:
        raise exceptions.NotFound(f"There is no connection '{key}' in this workspace.")
    if not EdiPartner.objects.filter(connection=connection).exists():
        raise NotAnEdiPartner(f"The connection '{key}' has no EDI partner settings: set up its ISA ids before sending it interchanges.")
    if not connection.enabled:
        raise ConnectionDisabled(f"The connection '{key}' is disabled: nothing is accepted.")
    return connection


def _interchange(request: Any) -> bytes | str:
    declared = request.META.get("CONTENT_LENGTH") or ""
    if declared.isdigit() and int(declared) > EDI_MAX_BYTES:
        raise InterchangeTooLarge(f"The body is {declared} bytes; this endpoint takes interchanges of at most {EDI_MAX_BYTES} bytes.")
    data = request.data
    if isinstance(data, bytes | str):
        return data
    if request.content_type.split(";")[0].strip().lower() != "application/json":
        return b""  # an empty body is never parsed: nothing was sent
    form = InterchangeJsonSerializer(data=data)
    if not form.is_valid():
        raise exceptions.ValidationError(form.errors)
    return str(form.validated_data["interchange"])


class InterchangeReceive(APIView):
    """Store an X12 interchange for the partner connection; it is read, handed on and answered
    with a 997 in a moment (see the inbound event)."""

    permission_classes = [CanWrite]
    parser_classes = [X12Parser, PlainTextParser, JSONParser]

    @extend_schema(
        operation_id="connection_interchange_receive",
        request={"application/edi-x12": OpenApiTypes.BINARY, "text/plain": OpenApiTypes.STR, "application/json": InterchangeJsonSerializer},
        responses={
            202: InterchangeReceivedSerializer,
            403: OpenApiResponse(ConnectionProblemSerializer, description="Missing scope or role, or the connection is disabled."),
            404: OpenApiResponse(ConnectionProblemSerializer, description="Not in this workspace."),
            409: OpenApiResponse(ConnectionProblemSerializer, description="The connection has no EDI partner settings."),
            413: OpenApiResponse(ConnectionProblemSerializer, description="Larger than the limit (20 MiB)."),
            415: OpenApiResponse(ConnectionProblemSerializer, description="Not application/edi-x12, text/plain or application/json."),
            422: OpenApiResponse(ConnectionProblemSerializer, description="Empty, or binary: it cannot be stored as an interchange."),
        },
    )
    def post(self, request, key: str):
        connection = _partner_connection(key)
        data = _interchange(request)
        if not data.strip():
            raise InterchangeUnreadable("The body is empty: send the interchange, from ISA to IEA.")
        try:
            received = edi_receive(connection=connection, data=data, channel="api")
        except EdiTooLarge as error:
            raise InterchangeTooLarge(str(error)) from error
        except EdiRefused as error:
            raise InterchangeUnreadable(str(error)) from error
        parts = [
            {"event_id": part.event.pk, "external_id": part.event.external_id, "duplicate": part.duplicate, "outside": part.outside}
            for part in received.parts
        ]
        answer = InterchangeReceivedSerializer({"event_id": received.event.pk, "duplicate": received.duplicate, "events": parts})
        return Response(answer.data, status=status.HTTP_202_ACCEPTED)
