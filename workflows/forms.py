"""Forms for the workflow pages: the clone wizard, the parameters form built from a template's
JSON Schema, the definition editor and the console's template forms."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.http import QueryDict

from workflows.retention import RETENTION_DAYS_MAX, RETENTION_DAYS_MIN, retention_problems

# Definition keys that would collide with the workflow pages' own addresses (/workflows/<key>/).
from workflows.services import RESERVED_DEFINITION_KEYS as RESERVED_KEYS

PARAMETERS_PREFIX = "param"


# PostgreSQL's jsonb keeps no key order; these put the keys a reader looks for first.
_KEYS_FIRST = ("$schema", "title", "type", "id", "kind", "name", "description", "start", "triggers", "steps", "required", "properties")
_KEYS_LAST = ("cases", "default", "branches", "join", "on_timeout", "on_reject", "next", "compensation")


def readable(value: Any) -> Any:
    """`value` with the keys of every object in reading order (ids and kinds first, transitions last)."""
    if isinstance(value, list):
        return [readable(item) for item in value]
    if not isinstance(value, dict):
        return value

    def rank(key: str) -> tuple[int, int, str]:
        if key in _KEYS_FIRST:
            return (0, _KEYS_FIRST.index(key), "")
        if key in _KEYS_LAST:
            return (2, _KEYS_LAST.index(key), "")
        return (1, 0, key)

    return {key: readable(value[key]) for key in sorted(value, key=rank)}


def json_pretty(value: Any) -> str:
    return json.dumps(readable(value), indent=2, ensure_ascii=False)


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def schema_properties(schema: Any) -> dict[str, Any]:
    """The properties of a parameters JSON Schema (empty for anything else)."""
    return as_dict(as_dict(schema).get("properties"))


def parameter_names(schema: dict[str, Any]) -> list[str]:
    """Required parameters first (in the schema's order), then the rest by name."""
    properties = schema_properties(schema)
    required = [name for name in (as_dict(schema).get("required") or []) if name in properties]
    return required + sorted(name for name in properties if name not in required)


def json_compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


class JsonObjectField(forms.CharField):
    """A textarea holding a JSON object; errors name the line and column."""

    def __init__(self, *, rows: int = 16, **kwargs: Any) -> None:
        kwargs.setdefault(
            "widget", forms.Textarea(attrs={"rows": rows, "class": "code-input", "spellcheck": "false", "autocapitalize": "off"})
        )
        kwargs.setdefault("strip", False)
        super().__init__(**kwargs)

    def prepare_value(self, value: Any) -> Any:
        return json_pretty(value) if isinstance(value, dict | list) else value

    def to_python(self, value: Any) -> Any:
        text = super().to_python(value)
        if text in self.empty_values or not str(text).strip():
            return {}
        try:
            parsed = json.loads(str(text))
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}).", code="json") from exc
        if not isinstance(parsed, dict):
            raise forms.ValidationError("Must be a JSON object: {…}.", code="json_object")
        return parsed


def pointer_field(pointer: str) -> str:
    """The parameter a JSON pointer names: "/parameters/max_delay/0" and "/max_delay" give "max_delay"."""
    parts = [part.replace("~1", "/").replace("~0", "~") for part in pointer.split("/")[1:]]
    if parts and parts[0] == "parameters":
        parts = parts[1:]
    return parts[0] if parts else ""


class CloneNameForm(forms.Form):
    """Wizard step 1: what the tenant calls its copy."""

    name = forms.CharField(max_length=120, help_text="How your team will know this workflow.")
    key = forms.SlugField(
        max_length=80, help_text="Lowercase letters, digits and hyphens. Used in the address and the process API; it cannot change later."
    )

    def clean_key(self) -> str:
        key = self.cleaned_data["key"].lower()
        if key in RESERVED_KEYS:
            raise forms.ValidationError(f"“{key}” is reserved for a page of its own; choose another key.")
        return key


def _json_type(prop: dict[str, Any]) -> str:
    kind = prop.get("type", "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    return str(kind)


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return ", ".join(value) or "none"
    return json_compact(value) if isinstance(value, dict | list) else str(value)


class ParametersForm(forms.Form):
    """A form generated from a template's parameters JSON Schema.

    Supports string, integer, number, boolean and enum properties with defaults and
    descriptions; a list of strings is one value per line; anything else is edited as JSON.
    An empty optional input is left out, so the template's default applies.
    """

    prefix = PARAMETERS_PREFIX

    def __init__(self, *args: Any, schema: dict[str, Any] | None = None, values: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.schema = schema if isinstance(schema, dict) else {}
        properties = schema_properties(self.schema)
        required = set(self.schema.get("required") or [])
        values = values or {}
        self.enum_values: dict[str, dict[str, Any]] = {}
        self.shapes: dict[str, str] = {}
        for name in parameter_names(self.schema):
            prop = as_dict(properties[name])
            self.fields[name] = self._field(name, prop, name in required and "default" not in prop)
            current = values.get(name, prop.get("default"))
            if current is not None:
                self.initial[name] = self._initial(name, current)

    @classmethod
    def bound_to(cls, *, schema: dict[str, Any], values: dict[str, Any]) -> ParametersForm:
        """A bound, validated form holding stored values (to show refused values with their errors)."""
        unbound = cls(schema=schema, values=values)
        data = QueryDict(mutable=True)
        for name in unbound.fields:
            if name not in values:
                continue
            initial = unbound._initial(name, values[name])
            key = unbound.add_prefix(name)
            if isinstance(initial, list):
                data.setlist(key, initial)
            elif isinstance(initial, bool):
                if initial:
                    data[key] = "on"
            else:
                data[key] = str(initial)
        form = cls(data, schema=schema, values=values)
        form.is_valid()
        return form

    @property
    def has_parameters(self) -> bool:
        return bool(self.fields)

    def _field(self, name: str, prop: dict[str, Any], required: bool) -> forms.Field:
        kind = _json_type(prop)
        label = str(prop.get("title") or name.replace("_", " ").capitalize())
        help_parts = [str(prop["description"])] if prop.get("description") else []
        if "default" in prop:
            help_parts.append(f"Default: {_describe(prop['default'])}.")
        common: dict[str, Any] = {"label": label, "required": required, "help_text": " ".join(help_parts)}
        if isinstance(prop.get("enum"), list):
            self.shapes[name] = "enum"
            self.enum_values[name] = {json_compact(option): option for option in prop["enum"]}
            choices = [(json_compact(option), _describe(option)) for option in prop["enum"]]
            if not required:
                choices.insert(0, ("", "– default –" if "default" in prop else "– none –"))
            return forms.ChoiceField(choices=choices, **common)
        self.shapes[name] = kind
        if kind == "boolean":
            return forms.BooleanField(label=label, required=False, help_text=common["help_text"])
        if kind == "integer":
            return forms.IntegerField(min_value=prop.get("minimum"), max_value=prop.get("maximum"), **common)
        if kind == "number":
            return forms.FloatField(min_value=prop.get("minimum"), max_value=prop.get("maximum"), **common)
        if kind == "string":
            if prop.get("format") == "email":
                return forms.EmailField(**common)
            return forms.CharField(max_length=prop.get("maxLength"), min_length=prop.get("minLength"), **common)
        items = as_dict(prop.get("items"))
        if kind == "array" and isinstance(items.get("enum"), list):
            self.shapes[name] = "multi"
            self.enum_values[name] = {json_compact(option): option for option in items["enum"]}
            choices = [(json_compact(option), _describe(option)) for option in items["enum"]]
            return forms.MultipleChoiceField(choices=choices, widget=forms.CheckboxSelectMultiple, **common)
        if kind == "array" and _json_type(items) == "string":
            self.shapes[name] = "lines"
            common["help_text"] = " ".join(["One per line.", *help_parts])
            return forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), **common)
        self.shapes[name] = "json"
        common["help_text"] = " ".join(["JSON.", *help_parts])
        return JsonValueField(**common)

    def _initial(self, name: str, value: Any) -> Any:
        shape = self.shapes.get(name)
        if shape == "enum":
            return json_compact(value)
        if shape == "multi" and isinstance(value, list):
            return [json_compact(item) for item in value]
        if shape == "lines" and isinstance(value, list):
            return "\n".join(str(item) for item in value)
        if shape == "json":
            return json_pretty(value)
        return value

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        for name, shape in self.shapes.items():
            if name not in cleaned:
                continue
            if shape == "enum":
                cleaned[name] = self.enum_values[name].get(cleaned[name]) if cleaned[name] != "" else None
            elif shape == "number" and isinstance(cleaned[name], float) and cleaned[name].is_integer():
                cleaned[name] = int(cleaned[name])  # 2500, not 2500.0, in the definition and the review
            elif shape == "multi":
                cleaned[name] = [self.enum_values[name][choice] for choice in cleaned[name]] if cleaned[name] else None
            elif shape == "lines":
                cleaned[name] = [line.strip() for line in (cleaned[name] or "").splitlines() if line.strip()] if cleaned[name] else None
        return cleaned

    def parameter_values(self) -> dict[str, Any]:
        """The values to bind: every input given (false for an unticked box), empty ones left out."""
        values: dict[str, Any] = {}
        for name, value in self.cleaned_data.items():
            if value is None or value == "":
                continue
            values[name] = value
        return values

    def add_problems(self, problems: list[Any]) -> list[Any]:
        """Put each problem on its parameter's input; returns the ones that belong to no input."""
        others = []
        for problem in problems:
            name = pointer_field(problem.pointer)
            if name in self.fields:
                self.add_error(name, problem.reason[:1].upper() + problem.reason[1:])
            else:
                others.append(problem)
        return others


class JsonValueField(forms.CharField):
    """Any JSON value, for parameters the form has no better input for."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("widget", forms.Textarea(attrs={"rows": 3, "class": "code-input", "spellcheck": "false"}))
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> Any:
        text = super().to_python(value)
        if not text:
            return None
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}).", code="json") from exc


class DefinitionEditForm(forms.Form):
    """The definition editor: the spec as JSON and a note for the reviewers."""

    spec = JsonObjectField(
        rows=24, label="Definition (JSON)", help_text="Triggers, steps and transitions. Saving creates a new draft version."
    )
    comment = forms.CharField(
        max_length=500, required=False, widget=forms.Textarea(attrs={"rows": 2}), help_text="What changed and why; approvers read it."
    )

    def clean_spec(self) -> dict[str, Any]:
        spec = self.cleaned_data["spec"]
        if not spec:
            raise forms.ValidationError("The definition cannot be empty.")
        return spec


class VersionCommentForm(forms.Form):
    comment = forms.CharField(max_length=500, required=False, widget=forms.Textarea(attrs={"rows": 2}))


class PolicyForm(forms.Form):
    require_second_approver = forms.BooleanField(
        required=False, label="Four eyes: a version must be approved by someone other than its author", help_text=""
    )


class RetentionForm(forms.Form):
    """How long finished runs keep their payloads and their metadata (the policy's other half)."""

    payload_retention_days = forms.IntegerField(
        label="Erase run payloads after (days)",
        help_text="Input, context and step inputs and outputs of finished runs; status, timeline and errors stay.",
        widget=forms.NumberInput(attrs={"inputmode": "numeric"}),
    )
    metadata_retention_days = forms.IntegerField(
        label="Delete finished runs after (days)",
        help_text="The whole run: status, step timeline, errors, incidents.",
        widget=forms.NumberInput(attrs={"inputmode": "numeric"}),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in ("payload_retention_days", "metadata_retention_days"):
            field = self.fields[name]
            field.widget.attrs.update(min=RETENTION_DAYS_MIN, max=RETENTION_DAYS_MAX)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        payload, metadata = cleaned.get("payload_retention_days"), cleaned.get("metadata_retention_days")
        if payload is not None and metadata is not None:
            for name, message in retention_problems(payload_retention_days=payload, metadata_retention_days=metadata).items():
                self.add_error(name, message)
        return cleaned
