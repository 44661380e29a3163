"""The shape of a workflow definition: declarative data, never code.

`DEFINITION_SCHEMA` (JSON Schema, draft 2020-12) fixes the structure; `workflows.validation`
adds what a schema cannot say (targets exist, every step is reachable, expressions parse as
CEL, durations and cron lines are valid). Each step kind is a closed object, so a misspelt
property is an error rather than a silently ignored setting.

Placeholders `{{params.NAME}}` appear in template versions and are rendered from the tenant's
parameters at clone time (`render_placeholders`): a string that is exactly one placeholder takes
the parameter's value with its type (a number stays a number); a placeholder inside a longer
string is replaced by the value's text (strings as they are, anything else as JSON, so a list
becomes a CEL list literal).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

STEP_KINDS = (
    "connector",
    "transform",
    "decision",
    "wait_event",
    "wait_until",
    "approval",
    "parallel",
    "child_workflow",
    "notify",
    "end",
)
TRIGGER_KINDS = ("event", "schedule", "manual", "api")
# Tenant staff roles (accounts.models.TENANT_STAFF_ROLES), spelled out so the schema is plain data.
STAFF_ROLES = ("tenant_admin", "planner", "dispatcher", "customer_service", "finance")
NOTIFY_CHANNELS = ("email", "webhook", "sms")
END_OUTCOMES = ("succeeded", "failed", "cancelled")

STEP_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,79}$"
EVENT_TYPE_PATTERN = r"^[a-z0-9][a-z0-9_-]*(\.[a-z0-9][a-z0-9_-]*)*$"
SLUG_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,79}$"

PLACEHOLDER = re.compile(r"\{\{\s*params\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")

_STEP_ID = {"type": "string", "pattern": STEP_ID_PATTERN}
_TARGET = {"type": "string", "pattern": STEP_ID_PATTERN}
# `next: null` ends the run after the step.
_NEXT = {"type": ["string", "null"], "pattern": STEP_ID_PATTERN}
_TEXT = {"type": "string", "minLength": 1}
_ROLES = {"type": "array", "minItems": 1, "uniqueItems": True, "items": {"enum": list(STAFF_ROLES)}}
_COMMON = {"id": _STEP_ID, "kind": {"enum": list(STEP_KINDS)}, "name": {"type": "string"}, "description": {"type": "string"}}
_RETRY = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "attempts": {"type": "integer", "minimum": 1, "maximum": 50},
        "backoff_seconds": {"type": "number", "minimum": 0, "maximum": 86400},
        "max_backoff_seconds": {"type": "number", "minimum": 0, "maximum": 86400},
        "jitter": {"type": "boolean"},
        "non_retryable": {"type": "array", "items": _TEXT, "uniqueItems": True},
    },
}


def _step(kind: str, required: list[str], properties: dict[str, Any]) -> dict[str, Any]:
    """One step kind: a closed object with the common properties plus its own."""
    return {
        "if": {"properties": {"kind": {"const": kind}}, "required": ["kind"]},
        "then": {
            "required": required,
            "properties": {**_COMMON, **properties},
            "additionalProperties": False,
        },
    }


STEP_SCHEMAS: dict[str, dict[str, Any]] = {
    "connector": _step(
        "connector",
        ["connection", "action", "next"],
        {
            "connection": _TEXT,
            "action": _TEXT,
            "input": {"type": "object"},
            "timeout": {"type": "string"},
            "retry": _RETRY,
            "next": _NEXT,
        },
    ),
    "transform": _step("transform", ["mapping", "next"], {"mapping": {"type": "object", "minProperties": 1}, "next": _NEXT}),
    "decision": _step(
        "decision",
        ["cases", "default"],
        {
            "cases": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["when", "next"],
                    "additionalProperties": False,
                    "properties": {"when": _TEXT, "next": _TARGET, "label": {"type": "string"}},
                },
            },
            "default": _TARGET,
        },
    ),
    "wait_event": _step(
        "wait_event",
        ["event_type", "timeout", "next", "on_timeout"],
        {
            "event_type": {"type": "string", "pattern": EVENT_TYPE_PATTERN},
            "correlate": {"type": "object", "additionalProperties": _TEXT},
            "earlier_events": {"type": "boolean"},
            "timeout": {"type": "string"},
            "next": _NEXT,
            "on_timeout": _TARGET,
        },
    ),
    "wait_until": _step(
        "wait_until",
        ["until", "next"],
        {"until": {"type": "string"}, "business_time": {"type": "boolean"}, "next": _NEXT},
    ),
    "approval": _step(
        "approval",
        ["assignee_roles", "next", "on_reject"],
        {
            "assignee_roles": _ROLES,
            "due": {"type": "string"},
            "escalate_to": _ROLES,
            "business_time": {"type": "boolean"},
            "title": {"type": "string"},
            "instructions": {"type": "string"},
            "next": _NEXT,
            "on_reject": _NEXT,
            "on_changes_requested": _NEXT,
        },
    ),
    "parallel": _step(
        "parallel",
        ["branches", "join"],
        {"branches": {"type": "array", "minItems": 2, "uniqueItems": True, "items": _TARGET}, "join": _TARGET},
    ),
    "child_workflow": _step(
        "child_workflow",
        ["definition", "next"],
        {"definition": {"type": "string", "pattern": SLUG_PATTERN}, "input": {"type": "object"}, "next": _NEXT},
    ),
    "notify": _step(
        "notify",
        ["channel", "to_roles", "template", "next"],
        {
            "channel": {"enum": list(NOTIFY_CHANNELS)},
            # "customer" is the customer account the run is about (its notification contacts).
            "to_roles": {"type": "array", "minItems": 1, "uniqueItems": True, "items": {"enum": [*STAFF_ROLES, "customer"]}},
            "template": {"type": "string", "pattern": SLUG_PATTERN},
            "next": _NEXT,
        },
    ),
    "end": _step("end", ["outcome"], {"outcome": {"enum": list(END_OUTCOMES)}}),
}

TRIGGER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["kind"],
    "properties": {"kind": {"enum": list(TRIGGER_KINDS)}},
    "allOf": [
        {
            "if": {"properties": {"kind": {"const": "event"}}, "required": ["kind"]},
            "then": {
                "required": ["event_type"],
                "additionalProperties": False,
                "properties": {"kind": True, "event_type": {"type": "string", "pattern": EVENT_TYPE_PATTERN}, "filter": _TEXT},
            },
        },
        {
            "if": {"properties": {"kind": {"const": "schedule"}}, "required": ["kind"]},
            "then": {"required": ["cron"], "additionalProperties": False, "properties": {"kind": True, "cron": {"type": "string"}}},
        },
        {
            "if": {"properties": {"kind": {"const": "manual"}}, "required": ["kind"]},
            "then": {"additionalProperties": False, "properties": {"kind": True}},
        },
        {
            "if": {"properties": {"kind": {"const": "api"}}, "required": ["kind"]},
            "then": {
                "required": ["key"],
                "additionalProperties": False,
                "properties": {"kind": True, "key": {"type": "string", "pattern": SLUG_PATTERN}},
            },
        },
    ],
}

DEFINITION_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://baton.dev/schemas/workflow-definition.json",
    "title": "Baton workflow definition",
    "type": "object",
    "required": ["start", "steps"],
    "additionalProperties": False,
    "properties": {
        "start": _TARGET,
        "description": {"type": "string"},
        # The engine takes ready runs of a high-priority definition before the others (RunPriority).
        "priority": {"enum": ["high", "normal", "low"]},
        "triggers": {"type": "array", "items": TRIGGER_SCHEMA},
        "steps": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["id", "kind"],
                "properties": {"id": _STEP_ID, "kind": {"enum": list(STEP_KINDS)}},
                "allOf": list(STEP_SCHEMAS.values()),
            },
        },
        "compensation": {
            "type": "object",
            "propertyNames": {"pattern": STEP_ID_PATTERN},
            "additionalProperties": _TARGET,
        },
    },
}

# Properties that hold a step id (or, for `branches`, a list of them).
TARGET_FIELDS = ("next", "default", "on_timeout", "on_reject", "on_changes_requested", "join")


@dataclass(frozen=True)
class PlaceholderProblem:
    pointer: str
    name: str


def pointer_join(base: str, *parts: str | int) -> str:
    """Extend a JSON pointer (RFC 6901: '~' and '/' escaped in each segment)."""
    escaped = (str(part).replace("~", "~0").replace("/", "~1") for part in parts)
    return "/".join([base, *escaped]) if parts else base


def placeholders_used(definition: Any, pointer: str = "") -> list[tuple[str, str]]:
    """Every `{{params.NAME}}` as (pointer, NAME), in document order."""
    found: list[tuple[str, str]] = []
    if isinstance(definition, str):
        found.extend((pointer, match.group(1)) for match in PLACEHOLDER.finditer(definition))
    elif isinstance(definition, dict):
        for key, value in definition.items():
            found.extend(placeholders_used(value, pointer_join(pointer, key)))
    elif isinstance(definition, list):
        for index, value in enumerate(definition):
            found.extend(placeholders_used(value, pointer_join(pointer, index)))
    return found


def render_placeholders(definition: Any, values: dict[str, Any], *, keep_unbound: bool = False) -> tuple[Any, list[PlaceholderProblem]]:
    """The definition with `{{params.NAME}}` replaced by `values[NAME]`.

    Unknown names are problems; with `keep_unbound` they stay as written (used to check a
    template rendered with only the defaults its parameters declare).
    """
    problems: list[PlaceholderProblem] = []

    def render(node: Any, pointer: str) -> Any:
        if isinstance(node, dict):
            return {key: render(value, pointer_join(pointer, key)) for key, value in node.items()}
        if isinstance(node, list):
            return [render(value, pointer_join(pointer, index)) for index, value in enumerate(node)]
        if not isinstance(node, str) or "{{" not in node:
            return node
        whole = PLACEHOLDER.fullmatch(node.strip())
        if whole and node.strip() == node:
            name = whole.group(1)
            if name in values:
                return values[name]
            if not keep_unbound:
                problems.append(PlaceholderProblem(pointer, name))
            return node

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in values:
                if not keep_unbound:
                    problems.append(PlaceholderProblem(pointer, name))
                return match.group(0)
            value = values[name]
            return value if isinstance(value, str) else json.dumps(value)

        return PLACEHOLDER.sub(substitute, node)

    return render(definition, ""), problems
