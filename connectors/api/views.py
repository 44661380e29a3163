"""The connections API: list and create, read and change one, test it; and the inbox: the
inbound event log, one event, replaying a quarantined one. Each view translates the request into
one selector or service call; secrets go in, masks come out."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api.authentication import request_actor
from config.problems import serializer_error_pointers
from connectors.api.permissions import CanRead, CanWrite
from connectors.api.serializers import (
    ConnectionCreateSerializer,
    ConnectionProblemSerializer,
    ConnectionSerializer,
    ConnectionTestResultSerializer,
    ConnectionUpdateSerializer,
    InboundEventDetailSerializer,
    InboundEventSerializer,
    InboundReplaySerializer,
)
from connectors.auth import AUTH_SECRETS, AUTH_SETTINGS
from connectors.inbox import InboxError, inbound_replay
from connectors.models import Connection, ConnectionKind, InboundEvent, InboundStatus
from connectors.selectors import (
    INBOUND_CHANNELS,
    InboxFilters,
    connection_by_key,
    connection_input,
    connections_list,
    inbound_event_get,
    inbound_event_is_json,
    inbound_events_list,
    inbound_fix_of,
)
from connectors.services import (
    KIND_DEFAULTS,
    ConnectionInput,
    ConnectionInvalid,
    ConnectionProblem,
    connection_create,
    connection_disable,
    connection_enable,
    connection_test,
    connection_update,
)


class ConnectionRequestInvalid(exceptions.APIException):
    """422 problem+json listing every problem as {pointer, reason} (see config.problems)."""

    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_detail = "The connection cannot be saved as given."
    default_code = "unprocessable"
    problem_type = "connection-invalid"

    def __init__(self, problems: list[ConnectionProblem]):
        first = problems[0] if problems else None
        count = len(problems)
        summary = f"{count} problem{'s' if count != 1 else ''}" + (f", first: {first.pointer or '/'} {first.reason}" if first else "")
        super().__init__(detail=summary + ".")
        self.problem_errors = [{"pointer": problem.pointer, "reason": problem.reason} for problem in problems]


def _serializer_problems(errors: Any, pointer: str = "") -> list[ConnectionProblem]:
    return [ConnectionProblem(at, reason) for at, reason in serializer_error_pointers(errors, pointer)]


def _connection_or_404(key: str) -> Connection:
    connection = connection_by_key(key=key)
    if connection is None:
        raise exceptions.NotFound(f"There is no connection '{key}' in this workspace.")
    return connection


def _merged(current: ConnectionInput, body: dict[str, Any]) -> ConnectionInput:
    """`current` with what the request sent; `auth` replaces the method's fields it names."""
    for name in (
        "name",
        "kind",
        "transport",
        "base_url",
        "health_path",
        "health_method",
        "connect_timeout",
        "read_timeout",
        "settings",
    ):
        if name in body:
            setattr(current, name, body[name])
    auth = body.get("auth")
    if auth is not None:
        method = auth["method"]
        kept = current.auth_settings if method == current.auth_method else {}
        current.auth_method = method
        current.auth_settings = {name: auth.get(name, kept.get(name, "")) for name in AUTH_SETTINGS[method]}
        current.secrets = {name: auth[name] for name in AUTH_SECRETS[method] if auth.get(name)}
    return current


_PROBLEMS = {
    403: OpenApiResponse(ConnectionProblemSerializer, description="Missing scope or role."),
    404: OpenApiResponse(ConnectionProblemSerializer, description="Not in this workspace."),
    422: OpenApiResponse(ConnectionProblemSerializer, description="Every problem, as `errors: [{pointer, reason}]`."),
}


class ConnectionListCreate(generics.ListAPIView):
    """This workspace's connections; POST adds one."""

    serializer_class = ConnectionSerializer

    def get_permissions(self):
        return [CanWrite()] if self.request.method == "POST" else [CanRead()]

    def get_queryset(self):
        params = self.request.query_params
        return connections_list(query=params.get("search", ""), kind=params.get("kind", ""), status=params.get("status", ""))

    @extend_schema(
        parameters=[
            OpenApiParameter("search", OpenApiTypes.STR, description="Matches the name, key or address."),
            OpenApiParameter("kind", OpenApiTypes.STR, enum=list(ConnectionKind.values)),
            OpenApiParameter("status", OpenApiTypes.STR, enum=["enabled", "disabled"]),
        ]
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(request=ConnectionCreateSerializer, responses={201: ConnectionSerializer, 403: _PROBLEMS[403], 422: _PROBLEMS[422]})
    def post(self, request):
        form = ConnectionCreateSerializer(data=request.data)
        if not form.is_valid():
            raise ConnectionRequestInvalid(_serializer_problems(form.errors))
        body = form.validated_data
        defaults = KIND_DEFAULTS[body["kind"]]
        start = ConnectionInput(
            key=body["key"],
            name=body["name"],
            kind=body["kind"],
            base_url=body["base_url"],
            transport=body.get("transport", defaults.transport),
            auth_method=defaults.auth_method,
            health_path=body.get("health_path", defaults.health_path),
            auth_settings=dict(defaults.auth_settings),
        )
        try:
            connection = connection_create(data=_merged(start, body), actor=request_actor(request))
        except ConnectionInvalid as error:
            raise ConnectionRequestInvalid(error.problems) from error
        headers = {"Location": f"/api/v1/connections/{connection.key}"}
        return Response(ConnectionSerializer(connection).data, status=status.HTTP_201_CREATED, headers=headers)


class ConnectionDetail(APIView):
    """One connection; PATCH changes the fields sent (secrets left out are kept)."""

    def get_permissions(self):
        return [CanWrite()] if self.request.method == "PATCH" else [CanRead()]

    @extend_schema(responses={200: ConnectionSerializer, 403: _PROBLEMS[403], 404: _PROBLEMS[404]})
    def get(self, request, key: str):
        return Response(ConnectionSerializer(_connection_or_404(key)).data)

    @extend_schema(request=ConnectionUpdateSerializer, responses={200: ConnectionSerializer, **_PROBLEMS})
    def patch(self, request, key: str):
        connection = _connection_or_404(key)
        form = ConnectionUpdateSerializer(data=request.data)
        if not form.is_valid():
            raise ConnectionRequestInvalid(_serializer_problems(form.errors))
        body = form.validated_data
        actor = request_actor(request)
        if set(body) - {"enabled"}:
            try:
                connection = connection_update(connection=connection, data=_merged(connection_input(connection), body), actor=actor)
            except ConnectionInvalid as error:
                raise ConnectionRequestInvalid(error.problems) from error
        if body.get("enabled") is False:
            connection = connection_disable(connection=connection, actor=actor)
        elif body.get("enabled") is True:
            connection = connection_enable(connection=connection, actor=actor)
        return Response(ConnectionSerializer(connection).data)


class ConnectionTest(APIView):
    """Call the partner once with the stored credentials and say what happened."""

    permission_classes = [CanWrite]

    @extend_schema(
        operation_id="connection_test",
        request=None,
        responses={200: ConnectionTestResultSerializer, 403: _PROBLEMS[403], 404: _PROBLEMS[404]},
    )
    def post(self, request, key: str):
        result = connection_test(connection=_connection_or_404(key), actor=request_actor(request))
        return Response(ConnectionTestResultSerializer(result).data)


# --- the inbox ------------------------------------------------------------------------------------


class InboundEventNotQuarantined(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "Only a quarantined event can be replayed."
    default_code = "conflict"
    problem_type = "inbound-event-not-quarantined"


def _inbox_filters(params) -> InboxFilters:
    """The log's filters from the query, each bad value refused with what is allowed."""
    problems = []
    status_ = params.get("status", "")
    if status_ and status_ not in InboundStatus.values:
        problems.append(ConnectionProblem("status", f"'{status_}' is not a status; use {', '.join(InboundStatus.values)}"))
    channel = params.get("channel", "")
    if channel and channel not in INBOUND_CHANNELS:
        problems.append(ConnectionProblem("channel", f"'{channel}' is not a channel; use {', '.join(INBOUND_CHANNELS)}"))
    dates = {}
    for name in ("received_from", "received_to"):
        raw = params.get(name, "")
        try:
            dates[name] = date.fromisoformat(raw) if raw else None
        except ValueError:
            problems.append(ConnectionProblem(name, f"'{raw}' is not a date; write YYYY-MM-DD"))
    if problems:
        raise InboxQueryInvalid(problems)
    return InboxFilters(
        connection=params.get("connection", ""),
        status=status_,
        channel=channel,
        received_from=dates["received_from"],
        received_to=dates["received_to"],
        query=params.get("search", ""),
    )


class InboxQueryInvalid(exceptions.ValidationError):
    """400 problem+json naming each bad query parameter."""

    problem_type = "inbound-events-query-invalid"

    def __init__(self, problems: list[ConnectionProblem]):
        super().__init__(detail={problem.pointer: [problem.reason] for problem in problems})
        self.problem_errors = [{"pointer": problem.pointer, "reason": problem.reason} for problem in problems]


def _inbound_event_or_404(event_id: int) -> InboundEvent:
    event = inbound_event_get(event_id=event_id)
    if event is None:
        raise exceptions.NotFound(f"There is no inbound event {event_id} in this workspace.")
    return event


class InboundEventList(generics.ListAPIView):
    """What partners sent, newest first, with what each became (cursor pagination)."""

    serializer_class = InboundEventSerializer
    permission_classes = [CanRead]

    def get_queryset(self):
        return inbound_events_list(_inbox_filters(self.request.query_params))

    @extend_schema(
        operation_id="inbound_events_list",
        parameters=[
            OpenApiParameter("connection", OpenApiTypes.STR, description="A connection's key."),
            OpenApiParameter("status", OpenApiTypes.STR, enum=list(InboundStatus.values)),
            OpenApiParameter("channel", OpenApiTypes.STR, enum=list(INBOUND_CHANNELS)),
            OpenApiParameter("received_from", OpenApiTypes.DATE, description="Received on or after this day (UTC)."),
            OpenApiParameter("received_to", OpenApiTypes.DATE, description="Received on or before this day (UTC)."),
            OpenApiParameter(
                "search",
                OpenApiTypes.STR,
                description="An exact external id or event id, a correlation value (PRO, order…) or event id of what an event "
                "became, or text in the body of an event not handed on yet.",
            ),
        ],
        responses={
            200: InboundEventSerializer(many=True),
            400: OpenApiResponse(ConnectionProblemSerializer, description="A filter's value is not allowed: `errors` names each."),
            403: _PROBLEMS[403],
        },
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class InboundEventDetail(APIView):
    """One inbound event: headers kept, body, what it became, its pending dispatch, its replays."""

    permission_classes = [CanRead]

    @extend_schema(
        operation_id="inbound_event_retrieve", responses={200: InboundEventDetailSerializer, 403: _PROBLEMS[403], 404: _PROBLEMS[404]}
    )
    def get(self, request, event_id: int):
        return Response(InboundEventDetailSerializer(_inbound_event_or_404(event_id)).data)


class InboundEventReplay(APIView):
    """Send a quarantined event through normalization again, as it is or with a fixed `body`
    (the original is kept; audited). 202: it is handed on in a moment."""

    permission_classes = [CanWrite]

    @extend_schema(
        operation_id="inbound_event_replay",
        request=InboundReplaySerializer,
        responses={
            202: InboundEventDetailSerializer,
            403: _PROBLEMS[403],
            404: _PROBLEMS[404],
            409: OpenApiResponse(ConnectionProblemSerializer, description="The event is not quarantined."),
            422: OpenApiResponse(ConnectionProblemSerializer, description="The fixed body is not JSON where the event is."),
        },
    )
    def post(self, request, event_id: int):
        event = _inbound_event_or_404(event_id)
        form = InboundReplaySerializer(data=request.data)
        if not form.is_valid():
            raise ConnectionRequestInvalid(_serializer_problems(form.errors))
        body = form.validated_data.get("body")
        if body is not None and inbound_event_is_json(event):
            try:
                json.loads(body)
            except json.JSONDecodeError as error:
                problem = ConnectionProblem("/body", f"is not JSON: {error.msg} at line {error.lineno}, column {error.colno}")
                raise ConnectionRequestInvalid([problem]) from error
        try:
            event = inbound_replay(event=event, actor=request_actor(request), body=inbound_fix_of(event, body))
        except InboxError as error:
            raise InboundEventNotQuarantined(str(error)) from error
        return Response(InboundEventDetailSerializer(event).data, status=status.HTTP_202_ACCEPTED)
