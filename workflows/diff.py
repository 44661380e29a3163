"""What changed between two definition specs.

Steps are matched by id, not by their place in the list: moving a step changes nothing, and a
step's changes are reported under `/steps/<step id>/...` (so these pointers name a step by its
id where a JSON pointer into the document would use its index). Other lists are compared
item by item when their length is unchanged, and as a whole otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from workflows.definition_schema import pointer_join

ChangeKind = Literal["added", "removed", "changed"]
_MISSING = object()
# The order a reader expects; any other top-level key follows, alphabetically.
_TOP_LEVEL_ORDER = ("start", "description", "triggers", "steps", "compensation")


@dataclass(frozen=True)
class SpecChange:
    pointer: str
    kind: ChangeKind
    old: Any = None
    new: Any = None


def spec_diff(old: dict[str, Any], new: dict[str, Any]) -> list[SpecChange]:
    changes: list[SpecChange] = []
    keys = [key for key in _TOP_LEVEL_ORDER if key in old or key in new]
    keys += sorted((set(old) | set(new)) - set(_TOP_LEVEL_ORDER))
    for key in keys:
        pointer = pointer_join("", key)
        before, after = old.get(key, _MISSING), new.get(key, _MISSING)
        if key == "steps" and isinstance(before, list) and isinstance(after, list):
            changes.extend(_steps_diff(before, after))
        else:
            changes.extend(_value_diff(pointer, before, after))
    return changes


def _steps_by_id(steps: list[Any]) -> dict[str, Any]:
    by_id: dict[str, Any] = {}
    for step in steps:
        if isinstance(step, dict) and isinstance(step.get("id"), str):
            by_id.setdefault(step["id"], step)
    return by_id


def _steps_diff(old: list[Any], new: list[Any]) -> list[SpecChange]:
    before, after = _steps_by_id(old), _steps_by_id(new)
    order = list(after) + [step_id for step_id in before if step_id not in after]
    changes: list[SpecChange] = []
    for step_id in order:
        changes.extend(_value_diff(pointer_join("/steps", step_id), before.get(step_id, _MISSING), after.get(step_id, _MISSING)))
    return changes


def _value_diff(pointer: str, old: Any, new: Any) -> list[SpecChange]:
    if old is _MISSING and new is _MISSING:
        return []
    if old is _MISSING:
        return [SpecChange(pointer, "added", None, new)]
    if new is _MISSING:
        return [SpecChange(pointer, "removed", old, None)]
    if isinstance(old, dict) and isinstance(new, dict):
        changes: list[SpecChange] = []
        for key in list(old) + [key for key in new if key not in old]:
            changes.extend(_value_diff(pointer_join(pointer, key), old.get(key, _MISSING), new.get(key, _MISSING)))
        return changes
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        changes = []
        for index, (before, after) in enumerate(zip(old, new, strict=True)):
            changes.extend(_value_diff(pointer_join(pointer, index), before, after))
        return changes
    if old == new and type(old) is type(new):
        return []
    return [SpecChange(pointer, "changed", old, new)]
