"""The operations API: pause, resume and cancel runs; read, retry and restart incidents; decide
approvals; hand in events that wake waiting runs and start event-triggered ones.

Each view checks the request, calls one service of `workflows.operations` (or `waits` /
`triggers` for events) and answers with the object as it is afterwards. A service's
`OperationRefused` means the run or task is not in a state the operation applies to: 409 with
the service's words.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api.authentication import ApiKeyPrincipal, request_actor
from workflows.api.permissions import CanApprove, CanOperate, CanSendEvents
from workflows.api.serializers import (
    ApprovalDecisionSerializer,
    ApprovalSerializer,
    EventAcceptedSerializer,
    EventSerializer,
    IncidentDetailSerializer,
    IncidentListFilterSerializer,
    IncidentRestartSerializer,
    IncidentRetrySerializer,
    IncidentSerializer,
    IncidentsRetriedSerializer,
    IncidentsRetrySerializer,
    ProblemSerializer,
    RunDetailSerializer,
    RunOperationSerializer,
)
from workflows.api.views import UnprocessableRequest, _run_or_404, _serializer_problems, run_detail_response
from workflows.models import Approval, ApprovalStatus, Incident, Run
from workflows.operations import (
    OperationRefused,
    approval_can_decide,
    approval_decide,
    incident_restart,
    incident_retry,
    incidents_retry,
    run_cancel,
    run_pause,
    run_resume,
)
from workflows.selectors import approval_get, approvals_list, incident_get, incidents_list
from workflows.services import DefinitionProblem
from workflows.triggers import event_triggers_start
from workflows.waits import event_deliver


class OperationConflict(exceptions.APIException):
    """409: the run, incident or approval is not in a state the operation applies to."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "The operation does not apply in the current state."
    default_code = "conflict"
    problem_type = "operation-refused"


class OperationRequestInvalid(UnprocessableRequest):
    problem_type = "operation-request-invalid"


def _valid(form_class: type[serializers.Serializer], data: Any) -> serializers.Serializer:
    """The bound, validated form; 422 listing every problem by JSON pointer otherwise."""
    if not isinstance(data, dict):
        raise OperationRequestInvalid([DefinitionProblem("", "the body must be a JSON object")])
    form = form_class(data=data)
    if not form.is_valid():
        raise OperationRequestInvalid(_serializer_problems(form.errors))
    return form


def _refused(refusal: OperationRefused) -> OperationConflict:
    return OperationConflict(str(refusal))


_FORBIDDEN = OpenApiResponse(ProblemSerializer, description="Missing scope or role.")
_INVALID = OpenApiResponse(ProblemSerializer, description="Every problem, as `errors: [{pointer, reason}]`.")


# --- runs: pause, resume, cancel -------------------------------------------------------------------


def _run_operation_schema(summary: str, conflict: str) -> Callable:
    return extend_schema(
        summary=summary,
        request=RunOperationSerializer,
        responses={
            200: OpenApiResponse(RunDetailSerializer, description="The run as it is now."),
            403: _FORBIDDEN,
            404: OpenApiResponse(ProblemSerializer, description="No such run in this workspace."),
            409: OpenApiResponse(ProblemSerializer, description=conflict),
            422: _INVALID,
        },
        examples=[OpenApiExample("With a reason", value={"reason": "carrier asked us to hold the tender"}, request_only=True)],
    )


def _run_operate(request: Request, run_id: int, service: Callable[..., Run]) -> Response:
    run = _run_or_404(run_id)
    reason = _valid(RunOperationSerializer, request.data).validated_data["reason"]
    try:
        service(run=run, actor=request_actor(request), reason=reason)
    except OperationRefused as refusal:
        raise _refused(refusal) from refusal
    return run_detail_response(run_id)


class RunPause(APIView):
    """Hold a run: the engine stops taking it (a step in flight finishes first); timers still fire."""

    permission_classes = [CanOperate]

    @_run_operation_schema("Pause a run", "The run is finished or already paused.")
    def post(self, request, run_id: int):
        return _run_operate(request, run_id, run_pause)


class RunResume(APIView):
    """Let the engine take a paused run again, where it was."""

    permission_classes = [CanOperate]

    @_run_operation_schema("Resume a paused run", "The run is not paused.")
    def post(self, request, run_id: int):
        return _run_operate(request, run_id, run_resume)


class RunCancel(APIView):
    """Cancel an unfinished run (or a failed one with an open incident): its waits close, completed
    steps with compensation handlers are undone (`compensating`, then `compensated`), its unfinished
    children are cancelled too."""

    permission_classes = [CanOperate]

    @_run_operation_schema("Cancel a run", "The run is already finished or compensating.")
    def post(self, request, run_id: int):
        return _run_operate(request, run_id, run_cancel)


# --- incidents ------------------------------------------------------------------------------------------

_INCIDENT_FILTERS = [
    OpenApiParameter("definition", OpenApiTypes.STR, description="A workflow's key."),
    OpenApiParameter("step", OpenApiTypes.STR, description="The failed step's id."),
    OpenApiParameter("error_class", OpenApiTypes.STR, description="e.g. `Unavailable`, `AuthError`, `StepFailed`."),
    OpenApiParameter("opened_after", OpenApiTypes.DATETIME, description="Opened at or after (ISO 8601)."),
    OpenApiParameter("opened_before", OpenApiTypes.DATETIME, description="Opened before (ISO 8601)."),
]


def _incident_or_404(incident_id: int) -> Incident:
    incident = incident_get(incident_id=incident_id)
    if incident is None:
        raise exceptions.NotFound(f"There is no incident {incident_id} in this workspace.")
    return incident


class IncidentList(generics.ListAPIView):
    """Incidents newest first: steps that failed for good and wait for an operator."""

    serializer_class = IncidentSerializer
    permission_classes = [CanOperate]

    @extend_schema(
        parameters=[OpenApiParameter("status", OpenApiTypes.STR, enum=["open", "resolved"]), *_INCIDENT_FILTERS],
        responses={200: IncidentSerializer(many=True), 403: _FORBIDDEN, 422: _INVALID},
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        form = _valid(IncidentListFilterSerializer, self.request.query_params.dict())
        return incidents_list(filter=form.incident_filter(), status=form.validated_data["status"])


class IncidentDetail(APIView):
    """One incident: the error, the failed attempts, what the step was given, and how it was resolved."""

    permission_classes = [CanOperate]

    @extend_schema(
        responses={
            200: IncidentDetailSerializer,
            403: _FORBIDDEN,
            404: OpenApiResponse(ProblemSerializer, description="No such incident in this workspace."),
        }
    )
    def get(self, request, incident_id: int):
        return Response(IncidentDetailSerializer(_incident_or_404(incident_id)).data)


_INCIDENT_CONFLICT = OpenApiResponse(ProblemSerializer, description="The incident is already resolved (or cannot be acted on).")


class IncidentRetry(APIView):
    """Retry the failed step, after correcting the run's input or context if needed (the audit log
    keeps the keys that changed, before and after). Attempts are counted afresh."""

    permission_classes = [CanOperate]

    @extend_schema(
        request=IncidentRetrySerializer,
        responses={
            200: OpenApiResponse(RunDetailSerializer, description="The run, ready to go on from the failed step."),
            403: _FORBIDDEN,
            404: OpenApiResponse(ProblemSerializer, description="No such incident in this workspace."),
            409: _INCIDENT_CONFLICT,
            422: _INVALID,
        },
        examples=[
            OpenApiExample("Plain retry", value={"comment": "carrier is back"}, request_only=True),
            OpenApiExample(
                "With a corrected input",
                value={"input": {"order_id": "SO-1042", "total": 250}, "comment": "order id had a typo"},
                request_only=True,
            ),
        ],
    )
    def post(self, request, incident_id: int):
        incident = _incident_or_404(incident_id)
        data = _valid(IncidentRetrySerializer, request.data).validated_data
        try:
            run = incident_retry(
                incident=incident,
                actor=request_actor(request),
                input=data.get("input"),
                context=data.get("context"),
                comment=data["comment"],
            )
        except OperationRefused as refusal:
            raise _refused(refusal) from refusal
        return run_detail_response(run.pk)


class IncidentRestart(APIView):
    """Run the workflow again from the beginning on its published version (a fix published since
    is used): a new generation, so every step's effects happen again."""

    permission_classes = [CanOperate]

    @extend_schema(
        request=IncidentRestartSerializer,
        responses={
            200: OpenApiResponse(RunDetailSerializer, description="The run, restarted."),
            403: _FORBIDDEN,
            404: OpenApiResponse(ProblemSerializer, description="No such incident in this workspace."),
            409: OpenApiResponse(ProblemSerializer, description="Already resolved, or the workflow has no published version."),
            422: _INVALID,
        },
        examples=[OpenApiExample("Restart", value={"comment": "v4 fixes the mapping"}, request_only=True)],
    )
    def post(self, request, incident_id: int):
        incident = _incident_or_404(incident_id)
        comment = _valid(IncidentRestartSerializer, request.data).validated_data["comment"]
        try:
            run = incident_restart(incident=incident, actor=request_actor(request), comment=comment)
        except OperationRefused as refusal:
            raise _refused(refusal) from refusal
        return run_detail_response(run.pk)


class IncidentsRetry(APIView):
    """Retry every open incident the filter matches, each on its own: after an outage, all of one
    carrier's `Unavailable` failures at once. An incident resolved meanwhile is skipped, with why."""

    permission_classes = [CanOperate]

    @extend_schema(
        operation_id="incidents_retry_bulk",
        request=IncidentsRetrySerializer,
        responses={200: IncidentsRetriedSerializer, 403: _FORBIDDEN, 422: _INVALID},
        examples=[
            OpenApiExample(
                "After a carrier outage",
                value={"definition": "order-release", "error_class": "Unavailable", "comment": "carrier API back up"},
                request_only=True,
            ),
            OpenApiExample(
                "Answer",
                value={"retried": [812, 815], "skipped": [{"incident": 77, "reason": "Incident 77 is already resolved (retried)."}]},
                response_only=True,
            ),
        ],
    )
    def post(self, request):
        form = _valid(IncidentsRetrySerializer, request.data)
        data = form.validated_data
        outcome = incidents_retry(filter=form.incident_filter(), actor=request_actor(request), comment=data["comment"], limit=data["limit"])
        skipped = [{"incident": incident_id, "reason": reason} for incident_id, reason in sorted(outcome.skipped.items())]
        return Response(IncidentsRetriedSerializer({"retried": outcome.retried, "skipped": skipped}).data)


# --- approvals ------------------------------------------------------------------------------------------


def _decider(request: Request) -> Any:
    """The person whose role decides what they may decide; None for an API key (its scope decides)."""
    return None if isinstance(request.user, ApiKeyPrincipal) else request.user


def _approval_or_404(approval_id: int) -> Approval:
    approval = approval_get(approval_id=approval_id)
    if approval is None:
        raise exceptions.NotFound(f"There is no approval {approval_id} in this workspace.")
    return approval


class ApprovalList(generics.ListAPIView):
    """Approvals newest first, pending ones unless `status` says otherwise. A signed-in person sees
    those they may decide (tenant admins: all); an API key sees all."""

    serializer_class = ApprovalSerializer
    permission_classes = [CanApprove]

    @extend_schema(
        parameters=[OpenApiParameter("status", OpenApiTypes.STR, enum=list(ApprovalStatus.values), default=ApprovalStatus.PENDING.value)]
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "decider": _decider(self.request)}

    def get_queryset(self):
        wanted = self.request.query_params.get("status", ApprovalStatus.PENDING)
        if wanted not in ApprovalStatus.values:
            raise OperationRequestInvalid([DefinitionProblem("/status", f"use one of {', '.join(ApprovalStatus.values)}")])
        return approvals_list(status=wanted, decider=_decider(self.request))


class ApprovalDetail(APIView):
    """One approval: what is asked, of whom, by when, and the decision once made."""

    permission_classes = [CanApprove]

    @extend_schema(
        responses={
            200: ApprovalSerializer,
            403: _FORBIDDEN,
            404: OpenApiResponse(ProblemSerializer, description="No such approval in this workspace."),
        }
    )
    def get(self, request, approval_id: int):
        approval = _approval_or_404(approval_id)
        return Response(ApprovalSerializer(approval, context={"decider": _decider(request)}).data)


class ApprovalDecision(APIView):
    """Decide a pending approval; the run goes on along the decision's path. Rejecting and
    requesting changes need a comment (the requester acts on it)."""

    permission_classes = [CanApprove]

    @extend_schema(
        request=ApprovalDecisionSerializer,
        responses={
            200: OpenApiResponse(ApprovalSerializer, description="The approval, decided."),
            403: OpenApiResponse(ProblemSerializer, description="Missing scope, or the approval is assigned to other roles."),
            404: OpenApiResponse(ProblemSerializer, description="No such approval in this workspace."),
            409: OpenApiResponse(ProblemSerializer, description="Already decided (or cancelled)."),
            422: _INVALID,
        },
        examples=[
            OpenApiExample("Approve", value={"decision": "approved", "comment": ""}, request_only=True),
            OpenApiExample("Reject", value={"decision": "rejected", "comment": "rate is 20% over the contract"}, request_only=True),
        ],
    )
    def post(self, request, approval_id: int):
        approval = _approval_or_404(approval_id)
        data = _valid(ApprovalDecisionSerializer, request.data).validated_data
        decider = _decider(request)
        if decider is not None and not approval_can_decide(approval, decider):
            raise exceptions.PermissionDenied("This approval is assigned to other roles.")
        try:
            decided = approval_decide(
                approval=approval, decision=data["decision"], actor=request_actor(request), comment=data["comment"], via="api"
            )
        except OperationRefused as refusal:
            raise _refused(refusal) from refusal
        return Response(ApprovalSerializer(approval_get(approval_id=decided.pk), context={"decider": decider}).data)


# --- events ----------------------------------------------------------------------------------------------


class EventIngest(APIView):
    """Hand in an event: runs waiting for it (type and correlation) go on, and workflows with a
    matching event trigger start (once per event id). The durable, signed inbox comes later; this
    is the entry point for internal and partner systems until then."""

    permission_classes = [CanSendEvents]

    @extend_schema(
        request=EventSerializer,
        responses={202: EventAcceptedSerializer, 403: _FORBIDDEN, 422: _INVALID},
        examples=[
            OpenApiExample(
                "Delivered",
                value={
                    "event_type": "tracking.delivered",
                    "event_id": "carrier-x:evt-88121",
                    "correlation": {"shipment": "SHP-1042"},
                    "payload": {"delivered_at": "2026-03-02T14:05:00Z", "signed_by": "J. Ortiz"},
                },
                request_only=True,
            ),
            OpenApiExample(
                "Accepted",
                value={"event_id": "carrier-x:evt-88121", "woken_runs": [812], "started_runs": [], "duplicate_runs": [], "problems": []},
                response_only=True,
            ),
        ],
    )
    def post(self, request):
        data = _valid(EventSerializer, request.data).validated_data
        woken = event_deliver(
            event_type=data["event_type"], correlation=data["correlation"], payload=data["payload"], event_id=data["event_id"]
        )
        fired = event_triggers_start(
            event_type=data["event_type"],
            payload=data["payload"],
            correlation=data["correlation"],
            event_id=data["event_id"],
            actor=request_actor(request),
        )
        body = {
            "event_id": data["event_id"],
            "woken_runs": woken,
            "started_runs": [run.pk for run in fired.started],
            "duplicate_runs": [run.pk for run in fired.duplicates],
            "problems": [asdict(problem) for problem in fired.problems],
        }
        return Response(EventAcceptedSerializer(body).data, status=status.HTTP_202_ACCEPTED)
