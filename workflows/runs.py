"""Starting runs: idempotent on (definition, business key) and on (definition, idempotency key).

A start inserts the run (ready at once) and its audit row in one transaction; after commit the
engine task is sent for the current schema. If the broker is down the run is still committed
and ready, so a later wake-up (the reaper in `workflows.fire_timers`) advances it: nothing is lost.
"""

from __future__ import annotations

import json
from functools import partial
from typing import Any

import structlog
from django.db import IntegrityError, transaction
from django.utils import timezone

from governance.services import actor_of, audit_record
from tenants.db import connection
from workflows.engine import CONTEXT_LIMIT_BYTES, RUNS_STARTED
from workflows.models import CORRELATION_KEYS, Definition, Run, RunStatus

log = structlog.get_logger("baton.workflows")

INPUT_LIMIT_BYTES = CONTEXT_LIMIT_BYTES
KEY_MAX_LENGTH = 200
TRIGGERS = ("api", "manual", "event", "schedule")


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
    """The idempotency key was used before with a different request."""

    def __init__(self, message: str, run: Run):
        super().__init__(message, field="idempotency_key")
        self.run = run


def _existing(definition: Definition, business_key: str, idempotency_key: str, request_hash: str) -> Run | None:
    if idempotency_key:
        run = Run.objects.filter(definition=definition, idempotency_key=idempotency_key).first()
        if run is not None:
            if request_hash and run.request_hash and run.request_hash != request_hash:
                raise RunConflict(
                    f"The idempotency key '{idempotency_key}' was already used for run {run.pk} with a different request.", run=run
                )
            return run
    if business_key:
        return Run.objects.filter(definition=definition, business_key=business_key).first()
    return None


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
    """Send one `workflows.advance` for the schema unless one is already on its way: a start
    takes the schema's wake token (cache add); the advance task drops the token before it claims,
    so a run committed after that sends a new wake-up and one committed before is claimed. A
    token whose task was lost expires after a few seconds (and the reaper finds the run)."""
    from django.core.cache import cache

    from workflows.tasks import advance

    try:
        if not cache.add(wake_token_key(schema), 1, timeout=WAKE_TOKEN_SECONDS):
            return  # an advance is pending and will claim this run
    except Exception:  # noqa: BLE001 - without the cache, wake every time
        log.warning("wake token unavailable; sending the wake-up", schema=schema)
    try:
        # No publish retries: with the broker down a start must not hang; the reaper wakes it.
        advance.apply_async(headers={"_schema_name": schema}, retry=False)
    except Exception as error:  # noqa: BLE001 - the run is committed and ready: a later wake-up advances it
        log.warning("workflow wake-up not sent; the reaper will pick the run up", schema=schema, error=f"{type(error).__name__}: {error}")


def run_start(
    *,
    definition: Definition,
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
    came with a different request, DefinitionNotPublished, RunInputTooLarge, RunError."""
    if connection.schema_name == "public":
        raise RunError("Runs live in a tenant's workspace; this ran on the public schema.")
    business_key, idempotency_key = business_key.strip(), idempotency_key.strip()
    clean_correlation = _check(input, business_key, idempotency_key, correlation or {}, trigger)
    definition = Definition.objects.select_related("published_version").get(pk=definition.pk)  # the version published now
    version = definition.published_version
    if version is None:
        raise DefinitionNotPublished(f"The workflow '{definition.key}' has no published version yet; publish one before starting runs.")
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
        existing = _existing(definition, business_key, idempotency_key, request_hash)
        if existing is None:
            raise
        return existing, False
    return run, True
