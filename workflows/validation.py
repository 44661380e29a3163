"""Is a definition (or a set of parameters) acceptable, and if not, exactly where and why.

Every problem is reported at once, each with a JSON pointer into the document and a reason a
person can act on: the schema's errors first sorted into document order together with the
checks a schema cannot express (targets exist, reachability, CEL, durations, cron).
Expressions are only parsed here, never evaluated.
"""

from __future__ import annotations

import copy
import re
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import celpy
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError as SchemaError

from workflows.definition_schema import (
    DEFINITION_SCHEMA,
    PLACEHOLDER,
    TARGET_FIELDS,
    placeholders_used,
    pointer_join,
)


@dataclass(frozen=True)
class DefinitionProblem:
    pointer: str
    reason: str


class DefinitionInvalid(Exception):
    """A definition, a parameter set or a parameters schema was refused; `problems` says why."""

    def __init__(self, problems: list[DefinitionProblem]):
        self.problems = list(problems)
        first = self.problems[0] if self.problems else DefinitionProblem("", "invalid")
        count = len(self.problems)
        super().__init__(f"{count} problem{'s' if count != 1 else ''}: {first.pointer or '/'} {first.reason}")


_DEFINITION_VALIDATOR = Draft202012Validator(DEFINITION_SCHEMA)
_CEL = celpy.Environment()

_TYPE_NAMES = {
    "string": "a string",
    "object": "an object",
    "array": "a list",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}
_NAME_RULE = "must be lowercase letters, digits, '-' or '_', starting with a letter or digit (at most 80)"
_PATTERN_REASONS = {
    r"^[a-z0-9][a-z0-9_-]{0,79}$": _NAME_RULE,
    r"^[a-z0-9][a-z0-9_-]*(\.[a-z0-9][a-z0-9_-]*)*$": "must be an event type such as 'order.received'",
}
_REQUIRED = re.compile(r"^'(?P<name>.+)' is a required property$")
DURATION_PATTERN = re.compile(
    r"^P(?!$)(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)


def _pointer(base: str, path: Any) -> str:
    return pointer_join(base, *path)


def _schema_reasons(error: SchemaError, base: str, noun: str = "") -> list[DefinitionProblem]:
    """One schema error as problems, each at the most precise pointer available."""
    at = _pointer(base, error.absolute_path)
    kind = error.validator
    value = error.validator_value
    if kind == "required":
        match = _REQUIRED.match(error.message)
        if match:
            return [DefinitionProblem(pointer_join(at, match.group("name")), "is required")]
    if kind == "additionalProperties" and isinstance(error.instance, dict):
        known = set((error.schema or {}).get("properties", {}))
        what = noun or "an allowed property here"
        if isinstance(error.instance.get("kind"), str) and noun:
            what = f"a property of {noun} of kind '{error.instance['kind']}'"
        return [DefinitionProblem(pointer_join(at, extra), f"is not {what}") for extra in error.instance if extra not in known]
    if kind == "enum":
        return [DefinitionProblem(at, "must be one of: " + ", ".join(str(v) for v in value))]
    if kind == "const":
        return [DefinitionProblem(at, f"must be {value!r}")]
    if kind == "type":
        types = value if isinstance(value, list) else [value]
        return [DefinitionProblem(at, "must be " + " or ".join(_TYPE_NAMES.get(str(t), str(t)) for t in types))]
    if kind == "pattern":
        return [DefinitionProblem(at, _PATTERN_REASONS.get(value, f"must match the pattern {value}"))]
    if kind == "propertyNames":
        return [DefinitionProblem(at, f"{error.instance!r} is not a valid name here: {error.message}")]
    if kind in ("minItems", "minProperties", "minLength") and value == 1:
        return [DefinitionProblem(at, "must not be empty")]
    if kind == "minItems":
        return [DefinitionProblem(at, f"must have at least {value} items")]
    if kind == "uniqueItems":
        return [DefinitionProblem(at, "must not list the same item twice")]
    if kind == "minimum":
        return [DefinitionProblem(at, f"must be at least {value}")]
    if kind == "maximum":
        return [DefinitionProblem(at, f"must be at most {value}")]
    return [DefinitionProblem(at, error.message)]


def _natural_key(problem: DefinitionProblem) -> tuple:
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in problem.pointer.split("/")), problem.reason


def _sorted_unique(problems: list[DefinitionProblem]) -> list[DefinitionProblem]:
    return sorted(set(problems), key=_natural_key)


# --- formats ---------------------------------------------------------------------------


def duration_problem(text: Any) -> str:
    """Why `text` is not a usable ISO 8601 duration, or '' when it is."""
    if not isinstance(text, str):
        return ""  # the schema reports the type
    match = DURATION_PATTERN.match(text)
    if not match:
        return "must be an ISO 8601 duration such as PT4H or P1DT12H"
    if not any(float(value) for value in match.groupdict().values() if value):
        return "must be longer than zero"
    return ""


def until_problem(text: Any) -> str:
    """`until` is a relative duration or an absolute date-time with its UTC offset."""
    if not isinstance(text, str) or not duration_problem(text):
        return ""
    if text.startswith("P"):
        return duration_problem(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or "T" not in text:
        return "must be an ISO 8601 duration (PT1H) or a date-time with a UTC offset (2026-01-31T06:00:00+01:00)"
    if moment.tzinfo is None:
        return "must carry a UTC offset (such as +01:00 or Z), or be a duration such as PT1H"
    return ""


_CRON_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    (
        "month",
        1,
        12,
        {
            name: number
            for number, name in enumerate(["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1)
        },
    ),
    ("day of week", 0, 7, {name: number for number, name in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}),
)


def cron_problem(text: Any) -> str:
    """Why `text` is not a five-field cron line (minute hour day-of-month month day-of-week), or ''."""
    if not isinstance(text, str):
        return ""
    fields = text.split()
    if len(fields) != 5:
        return f"must have 5 fields (minute hour day-of-month month day-of-week), not {len(fields)}"
    for field, (label, low, high, names) in zip(fields, _CRON_FIELDS, strict=True):
        for item in field.split(","):
            problem = _cron_item_problem(item.lower(), low, high, names)
            if problem:
                return f"the {label} field {field!r} {problem}"
    return ""


def _cron_item_problem(item: str, low: int, high: int, names: dict[str, int]) -> str:
    span, _, step = item.partition("/")
    if step and (not step.isdigit() or int(step) == 0):
        return f"has an invalid step {step!r}"
    if span == "*":
        return ""
    if step and "-" not in span:
        return "may only use a step after '*' or a range"
    start, _, end = span.partition("-")
    bounds = []
    for part in (start, end) if end or "-" in span else (start,):
        number = names.get(part, int(part) if part.isdigit() else None)
        if number is None:
            return f"has {part!r}, which is not a number{' or a name' if names else ''}"
        if not low <= number <= high:
            return f"has {number}, outside {low}-{high}"
        bounds.append(number)
    if len(bounds) == 2 and bounds[0] > bounds[1]:
        return f"has a range {span!r} that runs backwards"
    return ""


def cel_problem(expression: Any) -> str:
    """Why `expression` does not parse as CEL, or ''. Parsing only: nothing is evaluated."""
    if not isinstance(expression, str) or not expression.strip():
        return ""
    try:
        _CEL.compile(expression)
    except celpy.CELParseError as error:
        return f"is not a valid CEL expression: syntax error at line {error.line}, column {error.column}"
    return ""


# --- definitions -----------------------------------------------------------------------


def definition_validate(definition: Any, *, placeholders: bool = False) -> list[DefinitionProblem]:
    """Every problem with `definition`, by JSON pointer; an empty list means it is valid.

    With `placeholders` (a template version before rendering), values holding a
    `{{params.NAME}}` placeholder are not checked: they are checked once rendered.
    Without it, a placeholder left in the definition is itself the problem reported there.
    """
    problems: list[DefinitionProblem] = []
    for error in _DEFINITION_VALIDATOR.iter_errors(definition):
        if _holds_placeholder(error.instance):
            continue  # checked once rendered (or reported below as unbound)
        noun = "a step" if _is_step_path(error.absolute_path) else ("a trigger" if _is_trigger_path(error.absolute_path) else "")
        problems.extend(_schema_reasons(error, "", noun))
    if not placeholders:
        for pointer, name in placeholders_used(definition):
            problems.append(DefinitionProblem(pointer, f"still holds the placeholder {{{{params.{name}}}}}: bind the parameter"))
    if isinstance(definition, dict):
        problems.extend(_semantic_problems(definition))
    return _sorted_unique(problems)


def _holds_placeholder(value: Any) -> bool:
    return isinstance(value, str) and bool(PLACEHOLDER.search(value))


def _is_step_path(path: Any) -> bool:
    parts = list(path)
    return len(parts) == 2 and parts[0] == "steps"


def _is_trigger_path(path: Any) -> bool:
    parts = list(path)
    return len(parts) == 2 and parts[0] == "triggers"


def step_edges(step: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """(pointer under the step, label, target) for every transition a step can take."""
    edges: list[tuple[str, str, Any]] = []
    for field in TARGET_FIELDS:
        if step.get(field) is not None:
            edges.append((f"/{field}", field, step[field]))
    cases = step.get("cases")
    if isinstance(cases, list):
        for index, case in enumerate(cases):
            if isinstance(case, dict) and case.get("next") is not None:
                edges.append((f"/cases/{index}/next", "when", case["next"]))
    branches = step.get("branches")
    if isinstance(branches, list):
        for index, branch in enumerate(branches):
            edges.append((f"/branches/{index}", "branch", branch))
    return edges


def _steps_by_index(definition: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    steps = definition.get("steps")
    if not isinstance(steps, list):
        return []
    return [(index, step) for index, step in enumerate(steps) if isinstance(step, dict)]


def _semantic_problems(definition: dict[str, Any]) -> list[DefinitionProblem]:
    problems: list[DefinitionProblem] = []
    steps = _steps_by_index(definition)
    first_index: dict[str, int] = {}
    for index, step in steps:
        step_id = step.get("id")
        if not isinstance(step_id, str):
            continue
        if step_id in first_index:
            problems.append(DefinitionProblem(f"/steps/{index}/id", f"'{step_id}' is already the id of /steps/{first_index[step_id]}"))
        else:
            first_index[step_id] = index

    def missing(pointer: str, target: Any) -> None:
        if isinstance(target, str) and target not in first_index and not _holds_placeholder(target):
            problems.append(DefinitionProblem(pointer, f"'{target}' is not the id of a step in this definition"))

    missing("/start", definition.get("start"))
    for index, step in steps:
        for pointer, _label, target in step_edges(step):
            missing(f"/steps/{index}{pointer}", target)
    compensation = definition.get("compensation")
    if isinstance(compensation, dict):
        for key, handler in compensation.items():
            pointer = pointer_join("/compensation", key)
            if key not in first_index:
                problems.append(DefinitionProblem(pointer, f"compensates '{key}', which is not the id of a step in this definition"))
            missing(pointer, handler)
            if key == handler:
                problems.append(DefinitionProblem(pointer, "a step cannot compensate itself"))

    problems.extend(_unreachable(definition, steps, first_index))
    problems.extend(_format_problems(definition, steps))
    return problems


def _unreachable(definition: dict[str, Any], steps: list[tuple[int, dict[str, Any]]], index_of: dict[str, int]) -> list[DefinitionProblem]:
    """Steps no path reaches from `start` (a compensation handler is reached from the step it undoes)."""
    start = definition.get("start")
    if not isinstance(start, str) or start not in index_of:
        return []  # reported as a missing target; reachability would only repeat it
    by_id = {step["id"]: step for _index, step in steps if isinstance(step.get("id"), str)}
    declared = definition.get("compensation")
    compensation: dict[str, Any] = declared if isinstance(declared, dict) else {}
    seen = {start}
    queue = deque([start])
    while queue:
        step = by_id[queue.popleft()]
        targets = [target for _pointer, _label, target in step_edges(step)]
        if step["id"] in compensation:
            targets.append(compensation[step["id"]])
        for target in targets:
            if isinstance(target, str) and target in by_id and target not in seen:
                seen.add(target)
                queue.append(target)
    return [
        DefinitionProblem(f"/steps/{index}", f"step '{step['id']}' cannot be reached from the start step '{start}'")
        for index, step in steps
        if isinstance(step.get("id"), str) and step["id"] not in seen and index_of.get(step["id"]) == index
    ]


def _format_problems(definition: dict[str, Any], steps: list[tuple[int, dict[str, Any]]]) -> list[DefinitionProblem]:
    problems: list[DefinitionProblem] = []

    def check(pointer: str, value: Any, rule: Any) -> None:
        if _holds_placeholder(value):
            return
        reason = rule(value)
        if reason:
            problems.append(DefinitionProblem(pointer, reason))

    triggers = definition.get("triggers")
    if isinstance(triggers, list):
        for index, trigger in enumerate(triggers):
            if not isinstance(trigger, dict):
                continue
            if trigger.get("kind") == "event" and "filter" in trigger:
                check(f"/triggers/{index}/filter", trigger["filter"], cel_problem)
            if trigger.get("kind") == "schedule" and "cron" in trigger:
                check(f"/triggers/{index}/cron", trigger["cron"], cron_problem)
    for index, step in steps:
        at = f"/steps/{index}"
        kind = step.get("kind")
        cases = step.get("cases")
        if kind == "decision" and isinstance(cases, list):
            for case_index, case in enumerate(cases):
                if isinstance(case, dict) and "when" in case:
                    check(f"{at}/cases/{case_index}/when", case["when"], cel_problem)
        correlate = step.get("correlate")
        if kind == "wait_event" and isinstance(correlate, dict):
            for key, expression in correlate.items():
                check(pointer_join(f"{at}/correlate", key), expression, cel_problem)
        for field in ("timeout", "due"):
            if field in step and kind in ("connector", "wait_event", "approval"):
                check(f"{at}/{field}", step[field], duration_problem)
        if kind == "wait_until" and "until" in step:
            check(f"{at}/until", step["until"], until_problem)
    return problems


# --- parameters ------------------------------------------------------------------------


def parameters_schema_validate(schema: Any) -> list[DefinitionProblem]:
    """A template's parameters schema must be a JSON Schema for an object whose defaults fit."""
    base = "/parameters_schema"
    if not isinstance(schema, dict):
        return [DefinitionProblem(base, "must be an object (a JSON Schema)")]
    meta = Draft202012Validator(Draft202012Validator.META_SCHEMA)
    problems = [DefinitionProblem(_pointer(base, error.absolute_path), error.message) for error in meta.iter_errors(schema)]
    if problems:
        return _sorted_unique(problems)
    if schema.get("type") != "object":
        problems.append(DefinitionProblem(f"{base}/type", "must be 'object': parameters are named values"))
    properties = schema.get("properties", {})
    for name, prop in properties.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            problems.append(DefinitionProblem(pointer_join(base, "properties", name), "must be a name of letters, digits and '_'"))
        if isinstance(prop, dict) and "default" in prop:
            for error in Draft202012Validator(prop).iter_errors(prop["default"]):
                problems.append(
                    DefinitionProblem(pointer_join(base, "properties", name, "default"), f"does not fit its own schema: {error.message}")
                )
    return _sorted_unique(problems)


def parameters_declared_problems(definition: Any, schema: dict[str, Any]) -> list[DefinitionProblem]:
    """Every `{{params.NAME}}` in a template definition must be declared in its parameters schema."""
    declared = set((schema or {}).get("properties", {}))
    return [
        DefinitionProblem(pointer, f"uses the parameter '{name}', which the parameters schema does not declare")
        for pointer, name in placeholders_used(definition)
        if name not in declared
    ]


def _with_defaults(schema: Any, value: Any) -> Any:
    if not isinstance(schema, dict) or not isinstance(value, dict):
        return value
    result = dict(value)
    for name, prop in (schema.get("properties") or {}).items():
        if not isinstance(prop, dict):
            continue
        if name not in result and "default" in prop:
            result[name] = copy.deepcopy(prop["default"])
        if name in result:
            result[name] = _with_defaults(prop, result[name])
    return result


def parameter_defaults(schema: dict[str, Any]) -> dict[str, Any]:
    return _with_defaults(schema, {})


def value_problems(schema: Any, value: Any) -> list[str]:
    """Why `value` does not fit one parameter's schema (reasons without pointers)."""
    if not isinstance(schema, dict):
        return []
    return [problem.reason for error in Draft202012Validator(schema).iter_errors(value) for problem in _schema_reasons(error, "")]


def parameters_validate(schema: dict[str, Any], values: Any) -> tuple[dict[str, Any], list[DefinitionProblem]]:
    """`values` with the schema's defaults applied, and every problem under /parameters.

    A name the schema does not declare is refused unless the schema explicitly allows
    additional properties: a misspelt parameter must not be silently ignored.
    """
    if not isinstance(values, dict):
        return {}, [DefinitionProblem("/parameters", "must be an object of parameter values")]
    schema = schema or {"type": "object"}
    merged = _with_defaults(schema, values)
    checked = schema
    if not {"additionalProperties", "patternProperties", "unevaluatedProperties"} & set(schema):
        checked = {**schema, "additionalProperties": False}
    problems: list[DefinitionProblem] = []
    for error in Draft202012Validator(checked).iter_errors(merged):
        if error.validator == "additionalProperties" and not error.absolute_path:
            known = set(checked.get("properties", {}))
            problems.extend(
                DefinitionProblem(pointer_join("/parameters", extra), "is not a parameter of this template")
                for extra in error.instance
                if extra not in known
            )
            continue
        problems.extend(_schema_reasons(error, "/parameters"))
    return merged, _sorted_unique(problems)
