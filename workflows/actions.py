"""Baton's own actions for connector steps: a step whose connection is `baton` calls a function
another app registered (`action_register`, in its AppConfig.ready) instead of a partner, in the
run's tenant schema, in process – `{"kind": "connector", "connection": "baton", "action":
"exception.open", "input": {…}}`. This is how templates act on Baton's own domain (open an
exception, record a tracking event) with the engine's guarantees for outside calls.

An action is applied once per idempotency key (`<run>:<step>`, the same for every attempt): its
effects and its `ActionReceipt` commit together, and a repeated call answers the stored result.
A refusal of the input (`ActionRefused`) fails the step like a partner's 4xx; anything else is an
`ActionFailed` the step's retry policy may retry.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, OperationalError, transaction
from django.utils import timezone
from django_tenants.utils import schema_context

from workflows.engine import ConnectorError
from workflows.models import ActionReceipt

BATON_CONNECTION = "baton"

ActionFunction = Callable[..., dict[str, Any]]


class ActionRefused(ConnectorError):
    """The action cannot take this input (what and why in the message): retrying will not help."""

    def __init__(self, message: str):
        super().__init__(message, kind="ActionRefused")


@dataclass(frozen=True)
class Action:
    name: str
    function: ActionFunction  # function(payload, *, idempotency_key) -> a JSON object
    description: str
    heavy: bool = False  # takes a tenth of a second of CPU or more (a PDF): the engine rations these per advance


_ACTIONS: dict[str, Action] = {}


def action_register(name: str, function: ActionFunction, description: str, *, heavy: bool = False) -> None:
    """Make `name` callable from connector steps on the `baton` connection."""
    _ACTIONS[name] = Action(name, function, description, heavy)


def action_is_heavy(name: str) -> bool:
    registered = _ACTIONS.get(name)
    return registered is not None and registered.heavy


def actions_known() -> list[Action]:
    return sorted(_ACTIONS.values(), key=lambda action: action.name)


# A deadlock or a serialization failure is the database's verdict on two transactions at the same
# moment, not the action's on its input: the action (all of it, in one transaction) goes again.
TRANSIENT_SQLSTATES = frozenset({"40P01", "40001"})
TRANSIENT_ATTEMPTS = 3


def _applied(registered: Action, action: str, payload: dict[str, Any], idempotency_key: str) -> dict[str, Any]:
    """The action and its receipt in one transaction, again after a deadlock (a few times)."""
    for attempt in range(1, TRANSIENT_ATTEMPTS + 1):
        try:
            with transaction.atomic():
                result = registered.function(payload, idempotency_key=idempotency_key)
                ActionReceipt.objects.create(idempotency_key=idempotency_key, action=action, result=result, created_at=timezone.now())
            return result
        except OperationalError as error:
            if getattr(error.__cause__, "sqlstate", None) not in TRANSIENT_SQLSTATES or attempt == TRANSIENT_ATTEMPTS:
                raise
            time.sleep(random.uniform(0.05, 0.25) * attempt)
    raise AssertionError("unreachable")


def action_call(*, tenant: str, action: str, payload: dict[str, Any], idempotency_key: str) -> dict[str, Any]:
    """Apply `action` to `payload` in `tenant`'s schema once per idempotency key (see the module)."""
    registered = _ACTIONS.get(action)
    if registered is None:
        known = ", ".join(sorted(_ACTIONS)) or "none"
        raise ActionRefused(f"Baton has no action '{action}' (known: {known})")
    with schema_context(tenant):
        done = ActionReceipt.objects.filter(idempotency_key=idempotency_key).first()
        if done is not None:
            return dict(done.result)
        try:
            result = _applied(registered, action, payload, idempotency_key)
        except IntegrityError:
            done = ActionReceipt.objects.filter(idempotency_key=idempotency_key).first()
            if done is None:
                raise
            return dict(done.result)  # another attempt applied it at the same moment
        except ConnectorError:
            raise
        except Exception as error:
            raise ConnectorError(f"{action} failed: {type(error).__name__}: {error}", kind="ActionFailed") from error
        return result
