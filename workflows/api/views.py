"""The workflow API on a tenant's host: the library it may use, its own definitions, and the
process API that starts and reads runs."""

import hashlib
import json
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api.authentication import request_actor
from config.problems import PROBLEM_BASE, serializer_error_pointers
from workflows.api.permissions import CanRead, CanStartRuns, CanWrite
from workflows.api.serializers import (
    DefinitionCloneSerializer,
    DefinitionDetailSerializer,
    DefinitionDraftCreatedSerializer,
    DefinitionDraftSerializer,
    DefinitionSerializer,
    DefinitionVersionSerializer,
    ProblemSerializer,
    RunBatchItemSerializer,
    RunBatchStartedSerializer,
    RunBatchStartSerializer,
    RunDetailSerializer,
    RunSerializer,
    RunStartSerializer,
    TemplateDetailSerializer,
    TemplateSerializer,
)
from workflows.models import CORRELATION_KEYS, Definition, Run, RunStatus, TemplateCategory
from workflows.runs import (
    BATCH_START_LIMIT,
    DefinitionNotPublished,
    RunConflict,
    RunError,
    RunInputTooLarge,
    RunRequest,
    RunStarted,
    definition_for_start,
    run_start,
    runs_start_many,
)
from workflows.selectors import (
    definition_by_key,
    definition_current_version,
    definition_versions,
    definitions_list,
    library_search,
    library_template,
    run_get,
    run_operations,
    runs_list,
    template_latest_version,
    template_version_get,
    template_versions,
)
from workflows.services import (
    ApprovalRefused,
    DefinitionInvalid,
    DefinitionProblem,
    WorkflowError,
    connection_bindings_check,
    definition_clone,
    definition_draft_create,
)


class UnprocessableRequest(exceptions.APIException):
    """422 problem+json listing every problem as {pointer, reason} (see config.problems)."""

    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_detail = "The request cannot be applied."
    default_code = "unprocessable"
    problem_type = "definition-invalid"

    def __init__(self, problems: list[DefinitionProblem]):
        count = len(problems)
        first = problems[0] if problems else None
        summary = f"{count} problem{'s' if count != 1 else ''}" + (f", first: {first.pointer or '/'} {first.reason}" if first else "")
        super().__init__(detail=summary + ".")
        self.problem_errors = [{"pointer": problem.pointer, "reason": problem.reason} for problem in problems]


def _partner_id(request) -> int | None:
    return getattr(getattr(request, "tenant", None), "partner_id", None)


def _serializer_problems(errors: Any, pointer: str = "") -> list[DefinitionProblem]:
    return [DefinitionProblem(at, reason) for at, reason in serializer_error_pointers(errors, pointer)]


_PROBLEM_RESPONSES = {
    403: OpenApiResponse(ProblemSerializer, description="Missing scope or role."),
    404: OpenApiResponse(ProblemSerializer, description="Not in this workspace."),
}


class LibraryTemplateList(generics.ListAPIView):
    """Templates this workspace may clone: the platform's and its provider's."""

    serializer_class = TemplateSerializer
    permission_classes = [CanRead]

    @extend_schema(
        parameters=[
            OpenApiParameter("search", OpenApiTypes.STR, description="Matches the key, name or description."),
            OpenApiParameter("category", OpenApiTypes.STR, enum=list(TemplateCategory.values)),
        ]
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        params = self.request.query_params
        return library_search(query=params.get("search", ""), category=params.get("category", ""), partner_id=_partner_id(self.request))


class LibraryTemplateDetail(APIView):
    """One template with its newest version in full and its version history."""

    permission_classes = [CanRead]

    @extend_schema(responses={200: TemplateDetailSerializer, **_PROBLEM_RESPONSES})
    def get(self, request, key: str):
        template = library_template(key=key, partner_id=_partner_id(request))
        if template is None:
            raise exceptions.NotFound(f"There is no template '{key}' in your library.")
        versions = list(template_versions(template=template))
        return Response(TemplateDetailSerializer(template, context={"versions": versions}).data)


class DefinitionListCreate(generics.ListAPIView):
    """This workspace's workflows; POST clones a library template into a new one."""

    serializer_class = DefinitionSerializer

    def get_permissions(self):
        return [CanWrite()] if self.request.method == "POST" else [CanRead()]

    def get_queryset(self):
        return definitions_list(query=self.request.query_params.get("search", ""))

    @extend_schema(parameters=[OpenApiParameter("search", OpenApiTypes.STR, description="Matches the key, name or template key.")])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request=DefinitionCloneSerializer,
        responses={
            201: DefinitionDetailSerializer,
            403: _PROBLEM_RESPONSES[403],
            422: OpenApiResponse(ProblemSerializer, description="Every problem, as `errors: [{pointer, reason}]`."),
        },
    )
    def post(self, request):
        form = DefinitionCloneSerializer(data=request.data)
        if not form.is_valid():
            raise UnprocessableRequest(_serializer_problems(form.errors))
        data = form.validated_data
        template = library_template(key=data["template"], partner_id=_partner_id(request))
        if template is None:
            raise UnprocessableRequest([DefinitionProblem("/template", f"there is no template '{data['template']}' in your library")])
        version = (
            template_version_get(template=template, version=data["version"])
            if data["version"]
            else template_latest_version(template=template)
        )
        if version is None:
            raise UnprocessableRequest([DefinitionProblem("/version", f"{template.name} has no published version '{data['version']}'")])
        try:
            definition = definition_clone(
                template_version=version,
                key=data["key"],
                name=data["name"],
                parameters=data["parameters"],
                connection_bindings=data["connection_bindings"],
                actor=request_actor(request),
            )
        except DefinitionInvalid as error:
            raise UnprocessableRequest(error.problems) from error
        except ApprovalRefused as error:
            raise exceptions.PermissionDenied(error.message) from error
        except WorkflowError as error:
            if error.field == "role":
                raise exceptions.PermissionDenied(error.message) from error
            raise UnprocessableRequest([DefinitionProblem(f"/{error.field}" if error.field else "", error.message)]) from error
        created = definition_by_key(key=definition.key)
        body = DefinitionDetailSerializer(created, context={"current": definition_current_version(definition=definition)}).data
        return Response(body, status=status.HTTP_201_CREATED, headers={"Location": f"/api/v1/definitions/{definition.key}"})


def _definition_or_404(key: str) -> Definition:
    definition = definition_by_key(key=key)
    if definition is None:
        raise exceptions.NotFound(f"There is no workflow '{key}' in this workspace.")
    return definition


class DefinitionDetail(APIView):
    """One workflow with its published (or newest) version in full."""

    permission_classes = [CanRead]

    @extend_schema(responses={200: DefinitionDetailSerializer, **_PROBLEM_RESPONSES})
    def get(self, request, key: str):
        definition = _definition_or_404(key)
        current = definition_current_version(definition=definition)
        return Response(DefinitionDetailSerializer(definition, context={"current": current}).data)


class DefinitionVersionList(generics.ListAPIView):
    """Every version of one workflow, newest first; POST makes a new draft from an edited spec."""

    serializer_class = DefinitionVersionSerializer

    def get_permissions(self):
        return [CanWrite()] if self.request.method == "POST" else [CanRead()]

    def get_queryset(self):
        return definition_versions(definition=_definition_or_404(self.kwargs["key"]))

    @extend_schema(
        request=DefinitionDraftSerializer,
        responses={
            201: DefinitionDraftCreatedSerializer,
            **_PROBLEM_RESPONSES,
            422: OpenApiResponse(ProblemSerializer, description="Every problem, as `errors: [{pointer, reason}]`."),
        },
    )
    def post(self, request, key: str):
        definition = _definition_or_404(key)
        form = DefinitionDraftSerializer(data=request.data)
        if not form.is_valid():
            raise UnprocessableRequest(_serializer_problems(form.errors))
        data = form.validated_data
        requested = data.get("connection_bindings")
        try:
            version = definition_draft_create(
                definition=definition,
                spec=data["spec"],
                parameters=data.get("parameters"),
                connection_bindings=requested,
                comment=data["comment"],
                actor=request_actor(request),
            )
        except DefinitionInvalid as error:
            raise UnprocessableRequest(error.problems) from error
        except WorkflowError as error:
            if error.field == "role" or isinstance(error, ApprovalRefused):
                raise exceptions.PermissionDenied(error.message) from error
            raise UnprocessableRequest([DefinitionProblem(f"/{error.field}" if error.field else "", error.message)]) from error
        # The notes describe what was sent: the bindings given, or the ones the draft kept.
        notes = connection_bindings_check(
            spec=version.spec, bindings=requested if requested is not None else version.connection_bindings
        ).notes
        return Response(DefinitionDraftCreatedSerializer(version, context={"notes": notes}).data, status=status.HTTP_201_CREATED)


# --- the process API: start runs, read them ----------------------------------------------


class RunConflictError(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The idempotency key was used with a different request."
    default_code = "conflict"
    problem_type = "idempotency-key-reused"


class RunInputTooLargeError(UnprocessableRequest):
    problem_type = "run-input-too-large"


class RunRequestInvalid(UnprocessableRequest):
    problem_type = "run-request-invalid"


def _request_hash(body: Any) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _startable_definition_or_404(key: str) -> Definition:
    definition = definition_for_start(key=key)
    if definition is None:
        raise exceptions.NotFound(f"There is no workflow '{key}' in this workspace.")
    return definition


_IDEMPOTENCY_KEY_HEADER = OpenApiParameter(
    "Idempotency-Key",
    OpenApiTypes.STR,
    location=OpenApiParameter.HEADER,
    required=False,
    description="Retries with the same key and body return the same run; a different body is refused with 409.",
)


class ProcessRunStart(APIView):
    """Start a run of a published workflow. Idempotent: the same `business_key` or
    `Idempotency-Key` returns the first run (200); the same key with a different body is a 409."""

    permission_classes = [CanStartRuns]

    @extend_schema(
        operation_id="process_run_start",
        request=RunStartSerializer,
        parameters=[_IDEMPOTENCY_KEY_HEADER],
        responses={
            201: OpenApiResponse(RunSerializer, description="Started."),
            200: OpenApiResponse(RunSerializer, description="Already started with this key: the same run."),
            403: _PROBLEM_RESPONSES[403],
            404: OpenApiResponse(ProblemSerializer, description="No such workflow, or nothing published."),
            409: OpenApiResponse(ProblemSerializer, description="The idempotency key was used with a different body."),
            422: OpenApiResponse(ProblemSerializer, description="Every problem, as `errors: [{pointer, reason}]`."),
        },
    )
    def post(self, request, key: str):
        definition = _startable_definition_or_404(key)  # with its published version: run_start reads neither again
        if not isinstance(request.data, dict):
            raise RunRequestInvalid([DefinitionProblem("", "the body must be a JSON object")])
        form = RunStartSerializer(data=request.data)
        if not form.is_valid():
            raise RunRequestInvalid(_serializer_problems(form.errors))
        data = form.validated_data
        try:
            run, created = run_start(
                definition=definition,
                version=definition.published_version,
                input=data["input"],
                business_key=data["business_key"],
                idempotency_key=request.headers.get("Idempotency-Key", ""),
                request_hash=_request_hash(request.data),
                correlation=data["correlation"],
                trigger="api",
                actor=request_actor(request),
            )
        except DefinitionNotPublished as error:
            raise exceptions.NotFound(error.message) from error
        except RunConflict as error:
            raise RunConflictError(error.message) from error
        except RunInputTooLarge as error:
            raise RunInputTooLargeError([DefinitionProblem("/input", error.message)]) from error
        except RunError as error:
            pointer = "/header/Idempotency-Key" if error.field == "idempotency_key" else (f"/{error.field}" if error.field else "")
            raise RunRequestInvalid([DefinitionProblem(pointer, error.message)]) from error
        return Response(
            RunSerializer(run if created else run_get(run_id=run.pk)).data,  # a new run is as created
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
            headers={"Location": f"/api/v1/runs/{run.pk}"},
        )


def _run_problem(index: int, error: RunError) -> dict[str, Any]:
    """A refused run of a batch, as the single start would have answered it."""
    pointer = f"/runs/{index}" + (f"/{error.field}" if error.field else "")
    if isinstance(error, RunConflict) and error.field == "business_key":
        return _batch_problem(409, "business-key-reused", "The business key was used with a different request.", error.message, pointer)
    if isinstance(error, RunConflict):
        return _batch_problem(409, RunConflictError.problem_type, str(RunConflictError.default_detail), error.message, pointer)
    kind = RunInputTooLargeError.problem_type if isinstance(error, RunInputTooLarge) else RunRequestInvalid.problem_type
    return _batch_problem(422, kind, str(RunRequestInvalid.default_detail), error.message, pointer)


def _batch_problem(status_code: int, kind: str, title: str, detail: str, pointer: str) -> dict[str, Any]:
    return {"type": PROBLEM_BASE + kind, "title": title, "status": status_code, "detail": detail, "pointer": pointer}


def _invalid_run(problems: list[DefinitionProblem]) -> dict[str, Any]:
    detail = problems[0].reason if len(problems) == 1 else "; ".join(f"{problem.pointer}: {problem.reason}" for problem in problems)
    return _batch_problem(422, RunRequestInvalid.problem_type, str(RunRequestInvalid.default_detail), detail, problems[0].pointer)


def _batch_runs(body: Any) -> list[Any]:
    """The body's `runs`, or a 422 for the whole request: only a run's own problems are the run's."""
    if not isinstance(body, dict):
        raise RunRequestInvalid([DefinitionProblem("", "the body must be a JSON object")])
    if "runs" not in body:
        raise RunRequestInvalid([DefinitionProblem("/runs", "This field is required.")])
    runs = body["runs"]
    if not isinstance(runs, list) or not runs:
        raise RunRequestInvalid([DefinitionProblem("/runs", f"must be a list of 1 to {BATCH_START_LIMIT} runs")])
    if len(runs) > BATCH_START_LIMIT:
        raise RunRequestInvalid(
            [
                DefinitionProblem(
                    "/runs", f"holds {len(runs)} runs; at most {BATCH_START_LIMIT} start in one request, send the rest in another"
                )
            ]
        )
    return runs


class ProcessRunBatchStart(APIView):
    """Start many runs of a published workflow in one request and one transaction: each run
    exactly as the single start would start it (same checks, same idempotency by business key
    or idempotency key, whichever way the earlier run was started). A refused run does not stop
    the others: every run gets its own answer, in request order. Each run names its own
    `idempotency_key`; there is no Idempotency-Key header for the batch as a whole."""

    permission_classes = [CanStartRuns]

    @extend_schema(
        operation_id="process_run_start_batch",
        request=RunBatchStartSerializer,
        responses={
            200: OpenApiResponse(RunBatchStartedSerializer, description="Each run started, found by its key, or refused."),
            403: _PROBLEM_RESPONSES[403],
            404: OpenApiResponse(ProblemSerializer, description="No such workflow, or nothing published."),
            422: OpenApiResponse(
                ProblemSerializer, description="The request as a whole (not one of its runs): `errors: [{pointer, reason}]`."
            ),
        },
    )
    def post(self, request, key: str):
        definition = _startable_definition_or_404(key)
        runs = _batch_runs(request.data)
        # One serializer checks every run: building its fields per run would cost more than the start.
        form = RunBatchItemSerializer()
        answers: list[dict[str, Any]] = [{"index": index} for index in range(len(runs))]
        requests: list[RunRequest] = []
        indexes: list[int] = []
        for index, item in enumerate(runs):
            if not isinstance(item, dict):
                answers[index]["error"] = _invalid_run([DefinitionProblem(f"/runs/{index}", "each run must be a JSON object")])
                continue
            try:
                data = form.run_validation(item)
            except serializers.ValidationError as error:
                answers[index]["error"] = _invalid_run(_serializer_problems(error.detail, f"/runs/{index}"))
                continue
            body = {name: value for name, value in item.items() if name != "idempotency_key"}  # the single start's body
            requests.append(
                RunRequest(
                    input=data["input"],
                    business_key=data["business_key"],
                    idempotency_key=data["idempotency_key"],
                    request_hash=_request_hash(body),
                    correlation=data["correlation"],
                )
            )
            indexes.append(index)
        try:
            started = runs_start_many(
                definition=definition, version=definition.published_version, requests=requests, trigger="api", actor=request_actor(request)
            )
        except DefinitionNotPublished as error:
            raise exceptions.NotFound(error.message) from error
        for index, outcome in zip(indexes, started, strict=True):
            answers[index].update(_run_answer(index, outcome))
        created = sum(1 for answer in answers if answer.get("created"))
        refused = sum(1 for answer in answers if "error" in answer)
        return Response({"runs": answers, "created": created, "existing": len(answers) - created - refused, "refused": refused})


def _run_answer(index: int, outcome: RunStarted) -> dict[str, Any]:
    if outcome.error is not None:
        return {"error": _run_problem(index, outcome.error)}
    return {"id": outcome.run_id, "status": outcome.status, "created": outcome.created}


def _correlation_filter(text: str) -> dict[str, str]:
    if not text:
        return {}
    name, _, value = text.partition(":")
    if name not in CORRELATION_KEYS or not value:
        raise RunRequestInvalid([DefinitionProblem("/correlation", f"use name:value with a name among {', '.join(CORRELATION_KEYS)}")])
    return {name: value}


class RunList(generics.ListAPIView):
    """This workspace's runs, newest first, filtered by status, business key, workflow or correlation key."""

    serializer_class = RunSerializer
    permission_classes = [CanRead]

    @extend_schema(
        parameters=[
            OpenApiParameter("status", OpenApiTypes.STR, enum=list(RunStatus.values)),
            OpenApiParameter("business_key", OpenApiTypes.STR),
            OpenApiParameter("definition", OpenApiTypes.STR, description="A workflow's key."),
            OpenApiParameter(
                "correlation", OpenApiTypes.STR, description="`name:value`, e.g. `order:123` (order, shipment, po, bol, pro)."
            ),
        ]
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        params = self.request.query_params
        return runs_list(
            status=params.get("status", ""),
            business_key=params.get("business_key", ""),
            definition_key=params.get("definition", ""),
            correlation=_correlation_filter(params.get("correlation", "")),
        )


def _run_or_404(run_id: int) -> Run:
    run = run_get(run_id=run_id)
    if run is None:
        raise exceptions.NotFound(f"There is no run {run_id} in this workspace.")
    return run


def run_detail_response(run_id: int) -> Response:
    """The run as its detail shows it: timeline, children, pending timers, open incident, approvals."""
    run = _run_or_404(run_id)
    return Response(RunDetailSerializer(run, context=run_operations(run=run).as_context()).data)


class RunDetail(APIView):
    """One run with its timeline of step executions and what an operator needs to act on it."""

    permission_classes = [CanRead]

    @extend_schema(responses={200: RunDetailSerializer, **_PROBLEM_RESPONSES})
    def get(self, request, run_id: int):
        return run_detail_response(run_id)
