"""Starting runs: idempotent on (definition, business key) and on (definition, idempotency key).

A start inserts the run (ready at once) and its audit row in one transaction; after commit the
engine task is sent for the current schema. If the broker is down the run is still committed
and ready, so a later wake-up (the reaper in `workflows.fire_timers`) advances it: nothing is lost.
A batch (`runs_start_many`) does the same for many runs with one insert, one audit row and one
wake-up, so a caller with hundreds of orders pays the per-request costs once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Field, Q
from django.utils import timezone

from governance.services import actor_of, audit_record
from tenants.db import connection
from tenants.tasks import schema_wake
from workflows.engine import CONTEXT_LIMIT_BYTES, RUNS_STARTED
from workflows.models import CORRELATION_KEYS, Definition, DefinitionVersion, Run, RunPriority, RunStatus

INPUT_LIMIT_BYTES = CONTEXT_LIMIT_BYTES
KEY_MAX_LENGTH = 200
TRIGGERS = ("api", "manual", "event", "schedule")
# Runs one batch may start: a batch is one transaction, its rows locked to its commit.
BATCH_START_LIMIT = 500


class RunError(Exception):
    """A refused start, with the request field it concerns (if any) and a message for people."""

    def __init__(self, message: str, field: str = ""):
        super().__init__(message)
        self.message = message
        self.field = field


class DefinitionNotPublished(RunError):
    """The definition has no published version, so there is nothing to run."""


class RunInputTooLarge(RunError):
    """The input is over the limit; large payloads belong in documents, referenced from the input."""


class RunConflict(RunError):
    """The idempotency key was used before with a different request (or, in a batch, the
    idempotency or business key came earlier in the same batch with a different request)."""

    def __init__(self, message: str, run: Run | None = None, field: str = "idempotency_key"):
        super().__init__(message, field=field)
        self.run = run


@dataclass(frozen=True)
class RunRequest:
    """One start of a batch as the caller sent it; `request_hash` identifies its body, so the
    same body sent again is the same start and another body under the same key a conflict."""

    input: Any
    business_key: str = ""
    idempotency_key: str = ""
    request_hash: str = ""
    correlation: Any = None


@dataclass(frozen=True)
class RunStarted:
    """What became of one start of a batch: the run (new, or the one its key started before),
    or the refusal."""

    run_id: int | None = None
    status: str = ""
    created: bool = False
    error: RunError | None = None


@dataclass(frozen=True)
class _Start:
    """A checked start of a batch, at its position in the request."""

    position: int
    input: dict[str, Any]
    business_key: str
    idempotency_key: str
    request_hash: str
    correlation: dict[str, str]


def definition_for_start(*, key: str) -> Definition | None:
    """The workflow by key with the version published now: the one read a start needs."""
    return Definition.objects.select_related("published_version").filter(key=key).first()


def _published_version(definition: Definition, version: DefinitionVersion | None) -> DefinitionVersion:
    if version is None:  # the version published now, not the one the caller's object remembers
        version = Definition.objects.select_related("published_version").get(pk=definition.pk).published_version
    if version is None:
        raise DefinitionNotPublished(f"The workflow '{definition.key}' has no published version yet; publish one before starting runs.")
    return version


def _same_request(first_hash: str, second_hash: str) -> bool:
    """Without a hash on either side there is nothing to tell them apart by."""
    return not first_hash or not second_hash or first_hash == second_hash


def _runs_by_keys(definition: Definition, idempotency_keys: set[str], business_keys: set[str]) -> tuple[dict[str, Run], dict[str, Run]]:
    """The definition's runs holding these keys, by idempotency key and by business key (one query)."""
    runs = Run.objects.filter(definition=definition).filter(
        Q(idempotency_key__in=idempotency_keys - {""}) | Q(business_key__in=business_keys - {""})
    )
    by_idempotency: dict[str, Run] = {}
    by_business: dict[str, Run] = {}
    for run in runs.only("id", "status", "business_key", "idempotency_key", "request_hash"):
        if run.idempotency_key:
            by_idempotency[run.idempotency_key] = run
        if run.business_key:
            by_business[run.business_key] = run
    return by_idempotency, by_business


def _existing(
    by_idempotency: dict[str, Run], by_business: dict[str, Run], business_key: str, idempotency_key: str, request_hash: str
) -> Run | None:
    """The run these keys started before: the idempotency key's (RunConflict if it came with
    another request), else the business key's."""
    run = by_idempotency.get(idempotency_key) if idempotency_key else None
    if run is not None:
        if not _same_request(run.request_hash, request_hash):
            raise RunConflict(
                f"The idempotency key '{idempotency_key}' was already used for run {run.pk} with a different request.", run=run
            )
        return run
    return by_business.get(business_key) if business_key else None


def _check(input: Any, business_key: str, idempotency_key: str, correlation: Any, trigger: str) -> dict[str, str]:
    if trigger not in TRIGGERS:
        raise RunError(f"Unknown trigger '{trigger}'; use one of {', '.join(TRIGGERS)}.", field="trigger")
    if not isinstance(input, dict):
        raise RunError("The input must be a JSON object.", field="input")
    size = len(json.dumps(input, default=str).encode())
    if size > INPUT_LIMIT_BYTES:
        raise RunInputTooLarge(
            f"The input is {size // 1024} KB; the limit is {INPUT_LIMIT_BYTES // 1024} KB. Store large payloads as documents and pass their ids.",
            field="input",
        )
    for name, value in (("business_key", business_key), ("idempotency_key", idempotency_key)):
        if len(value) > KEY_MAX_LENGTH:
            raise RunError(f"The {name.replace('_', ' ')} is longer than {KEY_MAX_LENGTH} characters.", field=name)
    if not isinstance(correlation, dict):
        raise RunError("The correlation must be an object of keys.", field="correlation")
    unknown = sorted(set(correlation) - set(CORRELATION_KEYS))
    if unknown:
        raise RunError(f"Unknown correlation key '{unknown[0]}'; use {', '.join(CORRELATION_KEYS)}.", field="correlation")
    clean: dict[str, str] = {}
    for name, value in correlation.items():
        if not isinstance(value, str | int) or isinstance(value, bool) or not str(value).strip() or len(str(value)) > KEY_MAX_LENGTH:
            raise RunError(
                f"The correlation key '{name}' must be a non-empty text of at most {KEY_MAX_LENGTH} characters.", field="correlation"
            )
        clean[name] = str(value).strip()
    return clean


WAKE_TOKEN_SECONDS = 5


def wake_token_key(schema: str) -> str:
    return f"workflows:wake:{schema}"


def _wake(schema: str) -> None:
    """Send one `workflows.advance` for the schema unless one is already on its way
    (`tenants.tasks.schema_wake`); a lost wake-up leaves the run to the reaper."""
    from workflows.tasks import advance

    schema_wake(advance, schema, token=wake_token_key(schema), token_seconds=WAKE_TOKEN_SECONDS)


def run_start(
    *,
    definition: Definition,
    version: DefinitionVersion | None = None,
    input: dict[str, Any],
    business_key: str = "",
    idempotency_key: str = "",
    request_hash: str = "",
    correlation: dict[str, Any] | None = None,
    trigger: str,
    actor: Any,
) -> tuple[Run, bool]:
    """Start a run on the definition's published version, or return the run the same business
    key or idempotency key already started (created False). Raises RunConflict when the key
    came with a different request, DefinitionNotPublished, RunInputTooLarge, RunError.

    `version` is the published version when the caller read it with the definition a moment
    ago (`definition_for_start`); left out, it is read here."""
    if connection.schema_name == "public":
        raise RunError("Runs live in a tenant's workspace; this ran on the public schema.")
    business_key, idempotency_key = business_key.strip(), idempotency_key.strip()
    clean_correlation = _check(input, business_key, idempotency_key, correlation or {}, trigger)
    version = _published_version(definition, version)
    # Insert first: a repeated key is rare, and the unique indexes catch it (IntegrityError below),
    # so the common start pays no look-up.
    try:
        with transaction.atomic():
            run = Run.objects.create(
                definition=definition,
                definition_version=version,
                status=RunStatus.QUEUED,
                trigger=trigger,
                business_key=business_key,
                idempotency_key=idempotency_key,
                request_hash=request_hash,
                input=input,
                correlation=clean_correlation,
                current_step=version.spec["start"],
                ready_at=timezone.now(),
                priority=run_priority(version.spec),
                created_by_email=actor_of(actor).email,
            )
            audit_record(
                actor=actor,
                action="workflow_run.started",
                target=run,
                data={
                    "definition": definition.key,
                    "version": version.number,
                    "trigger": trigger,
                    "business_key": business_key,
                    "idempotency_key": idempotency_key,
                },
            )
            transaction.on_commit(partial(_wake, connection.schema_name))
            transaction.on_commit(lambda: RUNS_STARTED.labels(trigger).inc())
    except IntegrityError:
        # The key started a run before (or a concurrent start committed first): return that run.
        by_idempotency, by_business = _runs_by_keys(definition, {idempotency_key}, {business_key})
        existing = _existing(by_idempotency, by_business, business_key, idempotency_key, request_hash)
        if existing is None:
            raise
        return existing, False
    return run, True


def runs_start_many(
    *,
    definition: Definition,
    version: DefinitionVersion | None = None,
    requests: Sequence[RunRequest],
    trigger: str,
    actor: Any,
) -> list[RunStarted]:
    """Start many runs on the definition's published version, each exactly as `run_start` would
    (same checks, same idempotency on business key and idempotency key, whichever way the
    earlier run was started), in one transaction: one insert, one audit row for the batch, one
    wake-up. Returns one RunStarted per request, in order; a refused request refuses only itself.
    Within the batch, a key repeated with the same request is the same run (created False), with
    another request a RunConflict. Raises DefinitionNotPublished, RunError (public schema, trigger)."""
    if connection.schema_name == "public":
        raise RunError("Runs live in a tenant's workspace; this ran on the public schema.")
    if trigger not in TRIGGERS:
        raise RunError(f"Unknown trigger '{trigger}'; use one of {', '.join(TRIGGERS)}.", field="trigger")
    version = _published_version(definition, version)
    outcomes: list[RunStarted] = [RunStarted()] * len(requests)
    starts: list[_Start] = []  # the first request for each key: these are inserted
    repeats: list[tuple[int, int]] = []  # (position, position of the earlier request with its key and body)
    firsts_by_idempotency: dict[str, _Start] = {}
    firsts_by_business: dict[str, _Start] = {}
    for position, request in enumerate(requests):
        business_key, idempotency_key = request.business_key.strip(), request.idempotency_key.strip()
        try:
            correlation = _check(request.input, business_key, idempotency_key, request.correlation or {}, trigger)
        except RunError as error:
            outcomes[position] = RunStarted(error=error)
            continue
        start = _Start(position, request.input, business_key, idempotency_key, request.request_hash, correlation)
        first, field, key = firsts_by_idempotency.get(idempotency_key), "idempotency_key", idempotency_key
        if first is None and business_key:
            first, field, key = firsts_by_business.get(business_key), "business_key", business_key
        if first is None:
            starts.append(start)
            if idempotency_key:
                firsts_by_idempotency[idempotency_key] = start
            if business_key:
                firsts_by_business[business_key] = start
        elif _same_request(first.request_hash, start.request_hash):
            repeats.append((position, first.position))
        else:
            label = field.replace("_", " ")
            outcomes[position] = RunStarted(
                error=RunConflict(f"The {label} '{key}' came earlier in this batch with a different request.", field=field)
            )
    with transaction.atomic():
        inserted = _runs_insert(_run_template(definition, version, trigger, actor), starts) if starts else {}
        for start in starts:
            if start.position in inserted:
                outcomes[start.position] = RunStarted(run_id=inserted[start.position], status=RunStatus.QUEUED, created=True)
        _outcomes_of_known_keys(definition, [start for start in starts if start.position not in inserted], outcomes)
        created = [start for start in starts if start.position in inserted]
        if created:
            audit_record(
                actor=actor,
                action="workflow_run.started_many",
                target=definition,
                data={
                    "definition": definition.key,
                    "version": version.number,
                    "trigger": trigger,
                    "count": len(created),
                    "runs": [
                        {"id": inserted[start.position], "business_key": start.business_key, "idempotency_key": start.idempotency_key}
                        for start in created
                    ],
                },
            )
            transaction.on_commit(partial(_wake, connection.schema_name))
            transaction.on_commit(partial(RUNS_STARTED.labels(trigger).inc, len(created)))
    for position, first_position in repeats:
        outcomes[position] = replace(outcomes[first_position], created=False)
    return outcomes


def _outcomes_of_known_keys(definition: Definition, starts: list[_Start], outcomes: list[RunStarted]) -> None:
    """The starts the insert skipped: their keys already have a run, found in one query."""
    if not starts:
        return
    by_idempotency, by_business = _runs_by_keys(
        definition, {start.idempotency_key for start in starts}, {start.business_key for start in starts}
    )
    for start in starts:
        try:
            run = _existing(by_idempotency, by_business, start.business_key, start.idempotency_key, start.request_hash)
        except RunConflict as error:
            outcomes[start.position] = RunStarted(error=error)
            continue
        if run is None:  # the run holding the key was deleted since the insert skipped this start
            field = "idempotency_key" if start.idempotency_key else "business_key"
            removed = RunConflict("The run holding this key was removed while this batch started; send this run again.", field=field)
            outcomes[start.position] = RunStarted(error=removed)
        else:
            outcomes[start.position] = RunStarted(run_id=run.pk, status=run.status, created=False)


def _run_template(definition: Definition, version: DefinitionVersion, trigger: str, actor: Any) -> Run:
    """What every run of a batch has in common, as a single start makes it."""
    return Run(
        definition=definition,
        definition_version=version,
        status=RunStatus.QUEUED,
        trigger=trigger,
        current_step=version.spec["start"],
        ready_at=timezone.now(),
        priority=run_priority(version.spec),
        created_by_email=actor_of(actor).email,
    )


def run_priority(spec: dict[str, Any]) -> int:
    """A definition's `priority` as its runs carry it (normal when the definition names none)."""
    return RunPriority[str(spec.get("priority") or "normal").upper()].value


# The columns that differ between the runs of a batch; the others are the template's.
_PER_RUN = ("business_key", "idempotency_key", "request_hash", "input", "correlation")


def _cast(field: Field) -> str:
    return re.sub(r"\(\d+\)", "", field.db_type(connection) or "")


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _runs_insert(template: Run, starts: list[_Start]) -> dict[int, int]:
    """Insert a run per start in one statement; a start whose business or idempotency key
    already has a run is skipped (ON CONFLICT DO NOTHING on the partial unique indexes).
    Returns {position: new run id} of those inserted. Ids are drawn from the sequence first,
    so each inserted row is known by its id whatever order RETURNING gives."""
    quote = connection.ops.quote_name
    fields = [field for field in Run._meta.concrete_fields if not field.primary_key]
    columns, values, params = [], [], []
    for field in fields:
        columns.append(quote(field.column))
        if field.name in _PER_RUN:
            values.append(f"batch.{field.name}::{_cast(field)}")
        else:
            values.append(f"%s::{_cast(field)}")
            params.append(field.get_db_prep_save(field.pre_save(template, add=True), connection))
    table, pk = quote(Run._meta.db_table), quote(Run._meta.pk.column)
    # Batches insert in key order, so two overlapping ones wait for each other instead of deadlocking.
    sql = f"""
        WITH batch AS (
            SELECT nextval(pg_get_serial_sequence(%s, %s)) AS id, item.*
            FROM unnest(%s::int[], {", ".join(["%s::text[]"] * len(_PER_RUN))}) AS item(ordinal, {", ".join(_PER_RUN)})
        ), inserted AS (
            INSERT INTO {table} ({pk}, {", ".join(columns)})
            SELECT batch.id, {", ".join(values)} FROM batch ORDER BY batch.business_key, batch.idempotency_key
            ON CONFLICT DO NOTHING
            RETURNING {pk}
        )
        SELECT batch.ordinal, batch.id FROM batch JOIN inserted ON inserted.{pk} = batch.id
    """
    per_run = [[_as_text(getattr(start, name)) for start in starts] for name in _PER_RUN]
    with connection.cursor() as cursor:
        cursor.execute(sql, [Run._meta.db_table, Run._meta.pk.column, [start.position for start in starts], *per_run, *params])
        return dict(cursor.fetchall())
