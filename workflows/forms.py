"""Forms for the workflow pages: the clone wizard, the parameters form built from a template's
JSON Schema, the definition editor (the spec as JSON or YAML, connection bindings) and the
console's template forms."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any, ClassVar

import yaml
from django import forms
from django.http import QueryDict
from django.utils.text import format_lazy
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from workflows.definition_schema import SLUG_PATTERN
from workflows.models import CORRELATION_KEYS
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
            raise forms.ValidationError(
                _("Not valid JSON: %(problem)s (line %(line)s, column %(column)s).")
                % {"problem": exc.msg, "line": exc.lineno, "column": exc.colno},
                code="json",
            ) from exc
        if not isinstance(parsed, dict):
            raise forms.ValidationError(_("Must be a JSON object: {…}."), code="json_object")
        return parsed


def pointer_field(pointer: str) -> str:
    """The parameter a JSON pointer names: "/parameters/max_delay/0" and "/max_delay" give "max_delay"."""
    parts = [part.replace("~1", "/").replace("~0", "~") for part in pointer.split("/")[1:]]
    if parts and parts[0] == "parameters":
        parts = parts[1:]
    return parts[0] if parts else ""


class CloneNameForm(forms.Form):
    """Wizard step 1: what the tenant calls its copy."""

    name = forms.CharField(max_length=120, label=gettext_lazy("Name"), help_text=gettext_lazy("How your team will know this workflow."))
    key = forms.SlugField(
        max_length=80,
        label=gettext_lazy("Key"),
        help_text=gettext_lazy("Lowercase letters, digits and hyphens. Used in the address and the process API; it cannot change later."),
    )

    def clean_key(self) -> str:
        key = self.cleaned_data["key"].lower()
        if key in RESERVED_KEYS:
            raise forms.ValidationError(_("“%(key)s” is reserved for a page of its own; choose another key.") % {"key": key})
        return key


def _json_type(prop: dict[str, Any]) -> str:
    kind = prop.get("type", "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    return str(kind)


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return ", ".join(value) or _("none")
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
            help_parts.append(_("Default: %(value)s.") % {"value": _describe(prop["default"])})
        common: dict[str, Any] = {"label": label, "required": required, "help_text": " ".join(help_parts)}
        if isinstance(prop.get("enum"), list):
            self.shapes[name] = "enum"
            self.enum_values[name] = {json_compact(option): option for option in prop["enum"]}
            choices = [(json_compact(option), _describe(option)) for option in prop["enum"]]
            if not required:
                choices.insert(0, ("", _("– default –") if "default" in prop else _("– none –")))
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
            common["help_text"] = " ".join([_("One per line."), *help_parts])
            return forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), **common)
        self.shapes[name] = "json"
        common["help_text"] = " ".join([_("JSON."), *help_parts])
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
            raise forms.ValidationError(
                _("Not valid JSON: %(problem)s (line %(line)s, column %(column)s).")
                % {"problem": exc.msg, "line": exc.lineno, "column": exc.colno},
                code="json",
            ) from exc


# ---------- the definition editor: the spec as JSON or YAML, connection bindings ----------

SPEC_FORMATS = {"json": "JSON", "yaml": "YAML"}
# The editor refuses bigger texts before parsing them (a definition is a few KB).
SPEC_TEXT_LIMIT_BYTES = 256 * 1024
# Deeper than any real definition; stops a nesting bomb before the validators recurse into it.
SPEC_DEPTH_LIMIT = 64
_TAG_PREFIX = "tag:yaml.org,2002:"
_PLAIN_DATA = "a definition is plain data: text, numbers, true/false, null, lists and mappings"


class SpecTextInvalid(ValueError):
    """The editor's text is not a definition we can read, with what a person can fix."""

    def __init__(self, message: str, code: str = "spec_text"):
        super().__init__(message)
        self.message = message
        self.code = code


# libyaml's parser when PyYAML was built with it (five times faster), else the pure-Python one.
_YamlSafeLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _SpecYamlLoader(_YamlSafeLoader):
    """YAML read as JSON data, nothing more.

    Plain scalars resolve as in YAML 1.2's core schema (true/false, null, decimal, 0o and 0x
    numbers), so `no`, `on` and `12:30` stay text; timestamps stay text too. Explicit tags other
    than the JSON types, keys that are not text and repeated keys are refused with the line and
    column. (Anchors and aliases are refused before, by `_yaml_refuse_anchors`.)
    """

    yaml_constructors: ClassVar[dict[Any, Any]] = {}

    def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
        if not isinstance(node, yaml.MappingNode):
            raise yaml.constructor.ConstructorError(None, None, f"expected a mapping, found {node.id}", node.start_mark)
        mapping: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key_node.value!r} is not text: put it in quotes", key_node.start_mark
                )
            if key in mapping:
                raise yaml.constructor.ConstructorError(None, None, f"the key '{key}' appears twice in this mapping", key_node.start_mark)
            mapping[key] = self.construct_object(value_node, deep=deep)
        return mapping


def _yaml_int(loader: yaml.SafeLoader, node: Any) -> int:
    text = str(loader.construct_scalar(node)).replace("_", "")
    sign = -1 if text.startswith("-") else 1
    digits = text.lstrip("+-")
    try:
        if digits.startswith("0o"):
            return sign * int(digits[2:], 8)
        if digits.startswith("0x"):
            return sign * int(digits[2:], 16)
        return sign * int(digits, 10)
    except ValueError as error:
        raise yaml.constructor.ConstructorError(None, None, f"{text!r} is not a whole number", node.start_mark) from error


def _yaml_float(loader: yaml.SafeLoader, node: Any) -> float:
    text = str(loader.construct_scalar(node))
    try:
        value = float(text.replace("_", ""))
    except ValueError as error:
        raise yaml.constructor.ConstructorError(None, None, f"{text!r} is not a number", node.start_mark) from error
    if not math.isfinite(value):
        raise yaml.constructor.ConstructorError(None, None, f"{text!r} is not a number JSON can hold", node.start_mark)
    return value


def _yaml_tag_refused(loader: yaml.SafeLoader, node: Any) -> Any:
    tag = str(node.tag)
    shown = "!!" + tag[len(_TAG_PREFIX) :] if tag.startswith(_TAG_PREFIX) else tag
    raise yaml.constructor.ConstructorError(None, None, f"the tag {shown} is not accepted: {_PLAIN_DATA}", node.start_mark)


_YAML_CORE_SCALARS = (
    ("bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", "-+0123456789"),
    ("float", r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$", "-+0123456789."),
    ("null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
)
_SpecYamlLoader.yaml_implicit_resolvers = {}  # not SafeLoader's YAML 1.1 ones: only those below
for _name, _pattern, _first in _YAML_CORE_SCALARS:
    _SpecYamlLoader.add_implicit_resolver(_TAG_PREFIX + _name, re.compile(_pattern), list(_first))
for _name in ("null", "bool", "str", "seq", "map"):
    _SpecYamlLoader.add_constructor(_TAG_PREFIX + _name, yaml.SafeLoader.yaml_constructors[_TAG_PREFIX + _name])
_SpecYamlLoader.add_constructor(_TAG_PREFIX + "map", _SpecYamlLoader.construct_mapping)
_SpecYamlLoader.add_constructor(_TAG_PREFIX + "int", _yaml_int)
_SpecYamlLoader.add_constructor(_TAG_PREFIX + "float", _yaml_float)
_SpecYamlLoader.add_constructor(None, _yaml_tag_refused)


class _SpecYamlDumper(yaml.SafeDumper):
    """Block style with indented lists; quotes any text that either YAML 1.1 or the loader's
    core schema would read as something else ("yes", "1e5", "0o17"), so text stays text."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        return super().increase_indent(flow, False)


def _yaml_text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    """Multi-line text as a literal block (|), the way people write it."""
    style = "|" if "\n" in value and not value.endswith((" ", "\t")) else None
    return dumper.represent_scalar(_TAG_PREFIX + "str", value, style=style)


_SpecYamlDumper.add_representer(str, _yaml_text)


for _name, _pattern, _first in _YAML_CORE_SCALARS:
    _SpecYamlDumper.add_implicit_resolver(_TAG_PREFIX + _name, re.compile(_pattern), list(_first))


def _yaml_refuse_anchors(text: str) -> None:
    """Anchors and aliases (&name, *name) are how a few lines of YAML expand into gigabytes; a
    definition has no use for them. Reading the events first also finds every syntax error."""
    for event in yaml.parse(text, Loader=_YamlSafeLoader):
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            mark: Any = event.start_mark  # libyaml's or PyYAML's Mark: both have line and column
            raise yaml.composer.ComposerError(None, None, "anchors and aliases (&name, *name) are not accepted: write the value out", mark)


def _line_column(text: str, position: int) -> str:
    before = text[:position]
    return _("line %(line)s, column %(column)s") % {"line": before.count(chr(10)) + 1, "column": position - before.rfind(chr(10))}


def _yaml_error_text(error: yaml.YAMLError, text: str) -> str:
    """PyYAML's message with its line and column counted from 1, context first as it reads best."""
    if isinstance(error, yaml.MarkedYAMLError):
        mark = error.problem_mark or error.context_mark
        parts = []
        context_mark = error.context_mark
        if error.context:
            same_line = context_mark is None or mark is None or context_mark.line == mark.line
            parts.append(error.context if same_line or context_mark is None else f"{error.context} at line {context_mark.line + 1}")
        parts.append(error.problem or "cannot be read")
        where = " " + _("(line %(line)s, column %(column)s)") % {"line": mark.line + 1, "column": mark.column + 1} if mark else ""
        return _("Not valid YAML: %(problem)s%(where)s.") % {"problem": ", ".join(parts), "where": where}
    if isinstance(error, yaml.reader.ReaderError):
        return _("Not valid YAML: the character %(character)s is not allowed (%(where)s).") % {
            "character": f"#x{error.character:04x}",
            "where": _line_column(text, error.position),
        }
    return _("Not valid YAML: %(problem)s.") % {"problem": error}


def _nesting_depth(value: Any) -> int:
    """How deeply lists and objects nest in `value` (without recursion)."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            pending.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def spec_parse(text: str, text_format: str) -> dict[str, Any]:
    """The editor's text (JSON or YAML) as the spec; `SpecTextInvalid` says where it goes wrong."""
    size = len(text.encode())
    if size > SPEC_TEXT_LIMIT_BYTES:
        raise SpecTextInvalid(
            _("The definition is %(size)s KB; the editor takes at most %(limit)s KB.")
            % {"size": size // 1024, "limit": SPEC_TEXT_LIMIT_BYTES // 1024},
            code="too_large",
        )
    if not text.strip():
        return {}
    try:
        if text_format == "yaml":
            try:
                _yaml_refuse_anchors(text)
                parsed = yaml.load(text, Loader=_SpecYamlLoader)  # noqa: S506 - a SafeLoader that accepts even less
            except yaml.YAMLError as error:
                raise SpecTextInvalid(_yaml_error_text(error, text), code="yaml") from error
        else:
            try:
                parsed = json.loads(text)
            except json.JSONDecodeError as error:
                raise SpecTextInvalid(
                    _("Not valid JSON: %(problem)s (line %(line)s, column %(column)s).")
                    % {"problem": error.msg, "line": error.lineno, "column": error.colno},
                    code="json",
                ) from error
    except RecursionError as error:
        raise SpecTextInvalid(
            _("The definition nests lists and objects too deeply (at most %(limit)s levels).") % {"limit": SPEC_DEPTH_LIMIT}
        ) from error
    if parsed is None:
        return {}
    if not isinstance(parsed, dict):
        message = (
            _("The definition must be a mapping of keys to values (key: value lines).")
            if text_format == "yaml"
            else _("The definition must be a JSON object: {…}.")
        )
        raise SpecTextInvalid(message, code="spec_object")
    if _nesting_depth(parsed) > SPEC_DEPTH_LIMIT:
        raise SpecTextInvalid(
            _("The definition nests lists and objects too deeply (at most %(limit)s levels).") % {"limit": SPEC_DEPTH_LIMIT}
        )
    return parsed


def spec_text(spec: Any, text_format: str) -> str:
    """The spec as the editor shows it, keys in reading order."""
    if text_format == "yaml":
        return yaml.dump(
            readable(spec), Dumper=_SpecYamlDumper, sort_keys=False, allow_unicode=True, default_flow_style=False, width=4096, indent=2
        )
    return json_pretty(spec)


def spec_format(value: Any) -> str:
    return value if value in SPEC_FORMATS else "json"


class DefinitionEditForm(forms.Form):
    """The definition editor: the spec as JSON or YAML text and a note for the reviewers.

    `format` says how the text is written; the saved spec is the same JSON either way.
    """

    format = forms.ChoiceField(choices=list(SPEC_FORMATS.items()), required=False, widget=forms.HiddenInput)
    spec = forms.CharField(
        strip=False,
        label=gettext_lazy("Definition"),
        widget=forms.Textarea(attrs={"rows": 24, "class": "code-input", "spellcheck": "false", "autocapitalize": "off"}),
    )
    comment = forms.CharField(
        max_length=500,
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        label=gettext_lazy("Comment"),
        help_text=gettext_lazy("What changed and why; approvers read it."),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.text_format = spec_format(self.data.get("format") if self.is_bound else self.initial.get("format"))
        self.initial["format"] = self.text_format
        if isinstance(self.initial.get("spec"), dict):
            self.initial["spec"] = spec_text(self.initial["spec"], self.text_format)
        help_texts = {
            "json": _("Triggers, steps and transitions as a JSON object. Saving creates a new draft version."),
            "yaml": _(
                "Triggers, steps and transitions as YAML: plain data, no anchors, aliases or tags. "
                "It is saved as the same JSON. Saving creates a new draft version."
            ),
        }
        self.fields["spec"].label = _("Definition (%(format)s)") % {"format": SPEC_FORMATS[self.text_format]}
        self.fields["spec"].help_text = help_texts[self.text_format]

    def clean_format(self) -> str:
        return spec_format(self.cleaned_data.get("format"))

    def clean_spec(self) -> dict[str, Any]:
        try:
            spec = spec_parse(str(self.cleaned_data["spec"]), self.text_format)
        except SpecTextInvalid as error:
            raise forms.ValidationError(error.message, code=error.code) from error
        if not spec:
            raise forms.ValidationError(_("The definition cannot be empty."), code="required")
        return spec

    def converted(self, to_format: str) -> QueryDict:
        """The posted data with the spec rewritten in `to_format` (call once the form is valid)."""
        data = self.data.copy() if isinstance(self.data, QueryDict) else QueryDict(mutable=True)
        text_format = spec_format(to_format)
        data["format"] = text_format
        data["spec"] = spec_text(self.cleaned_data["spec"], text_format)
        return data


BINDINGS_PREFIX = "binding"
_BINDING_ALIAS_KEY = re.compile(rf"^{BINDINGS_PREFIX}-(\d+)-alias$")


def pointer_parts(pointer: str) -> list[str]:
    """The segments of a JSON pointer, unescaped: "/connection_bindings/a~1b" gives ["connection_bindings", "a/b"]."""
    return [part.replace("~1", "/").replace("~0", "~") for part in pointer.split("/")[1:]]


class ConnectionBindingsForm(forms.Form):
    """One input per connection alias the spec's connector steps use: the tenant's connection
    each stands for. Empty means the steps call a connection named like the alias (as after
    cloning). Inputs are numbered, with the alias in a hidden input, since an alias is free text.
    Until the connectors app lists the tenant's connections, names are typed."""

    prefix = BINDINGS_PREFIX

    def __init__(
        self, *, aliases: list[str], values: Mapping[str, Any], used_by: Mapping[str, list[str]] | None = None, bound: bool = False
    ):
        data = None
        if bound:
            data = QueryDict(mutable=True)
            for index, alias in enumerate(aliases):
                data[f"{self.prefix}-{index}-alias"] = alias
                data[f"{self.prefix}-{index}"] = str(values.get(alias) or "")
        super().__init__(data)
        self.aliases = list(aliases)
        for index, alias in enumerate(self.aliases):
            steps = (used_by or {}).get(alias) or []
            fallback = (
                _("Empty: your connection named “%(alias)s”.") % {"alias": alias}
                if re.match(SLUG_PATTERN, alias)
                else _("Required: this alias is not a connection name.")
            )
            self.fields[str(index)] = forms.CharField(
                label=alias,
                required=False,
                help_text=" ".join([_("Used by %(steps)s.") % {"steps": ", ".join(steps)} if steps else "", fallback]).strip(),
                widget=forms.TextInput(
                    attrs={
                        "maxlength": 80,
                        "pattern": SLUG_PATTERN.strip("^$"),
                        "placeholder": alias if re.match(SLUG_PATTERN, alias) else "connection-name",
                        "autocomplete": "off",
                        "autocapitalize": "off",
                        "spellcheck": "false",
                        "class": "mono",
                    }
                ),
            )
            self.fields[f"{index}-alias"] = forms.CharField(widget=forms.HiddenInput, required=False)
            self.initial[str(index)] = str(values.get(alias) or "")
            self.initial[f"{index}-alias"] = alias
        if bound:
            self.is_valid()

    @classmethod
    def posted(cls, data: Mapping[str, Any]) -> dict[str, str] | None:
        """The bindings a posted editor holds, alias → typed name ("" when left empty); None when
        the page had no binding inputs (so the latest version's bindings are kept)."""
        found: dict[str, str] | None = None
        for key in data:
            match = _BINDING_ALIAS_KEY.match(key)
            if match:
                found = found if found is not None else {}
                found[str(data[key])] = str(data.get(f"{cls.prefix}-{match.group(1)}") or "").strip()
        return found

    def rows(self) -> list[tuple[forms.BoundField, forms.BoundField]]:
        """(input, hidden alias) for each alias, for the template."""
        return [(self[str(index)], self[f"{index}-alias"]) for index in range(len(self.aliases))]

    def add_problems(self, problems: list[Any]) -> None:
        """Put each problem at /connection_bindings/<alias> on that alias's input."""
        for problem in problems:
            parts = pointer_parts(problem.pointer)
            if len(parts) == 2 and parts[0] == "connection_bindings" and parts[1] in self.aliases and self.is_bound:
                self.add_error(str(self.aliases.index(parts[1])), problem.reason[:1].upper() + problem.reason[1:] + ".")


class VersionCommentForm(forms.Form):
    comment = forms.CharField(max_length=500, required=False, widget=forms.Textarea(attrs={"rows": 2}), label=gettext_lazy("Comment"))


class PolicyForm(forms.Form):
    require_second_approver = forms.BooleanField(
        required=False, label=gettext_lazy("Four eyes: a version must be approved by someone other than its author"), help_text=""
    )


class RetentionForm(forms.Form):
    """How long finished runs keep their payloads and their metadata (the policy's other half)."""

    payload_retention_days = forms.IntegerField(
        label=gettext_lazy("Erase run payloads after (days)"),
        help_text=gettext_lazy("Input, context and step inputs and outputs of finished runs; status, timeline and errors stay."),
        widget=forms.NumberInput(attrs={"inputmode": "numeric"}),
    )
    metadata_retention_days = forms.IntegerField(
        label=gettext_lazy("Delete finished runs after (days)"),
        help_text=gettext_lazy("The whole run: status, step timeline, errors, incidents."),
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


# --- operating runs: run actions, incidents, approvals, manual starts ---------------------------


class RunRetryForm(forms.Form):
    """Retry the failed step, optionally with the run's input or context corrected (JSON objects;
    empty leaves it as it is). The service checks sizes and records which keys changed."""

    input = JsonObjectField(
        rows=10, required=False, label=gettext_lazy("Input"), help_text=gettext_lazy("The run's input as a JSON object.")
    )
    context = JsonObjectField(
        rows=10, required=False, label=gettext_lazy("Context"), help_text=gettext_lazy("Step outputs by step id, as a JSON object.")
    )
    comment = forms.CharField(
        max_length=500,
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        label=gettext_lazy("Comment"),
        help_text=gettext_lazy("Kept in the audit log."),
    )

    def edited(self, name: str) -> dict[str, Any] | None:
        """The corrected object, or None when the field was left empty."""
        raw = str(self.data.get(name, "")).strip()
        return self.cleaned_data.get(name) if raw else None


class RunReasonForm(forms.Form):
    reason = forms.CharField(max_length=500, required=False, widget=forms.Textarea(attrs={"rows": 2}), label=gettext_lazy("Reason"))


class RunStartForm(forms.Form):
    input = JsonObjectField(
        rows=8,
        required=False,
        label=gettext_lazy("Input"),
        help_text=gettext_lazy("What the workflow reads as its input: a JSON object. Empty means {}."),
    )
    business_key = forms.CharField(
        max_length=200,
        required=False,
        label=gettext_lazy("Business key"),
        help_text=gettext_lazy("One run per key: starting again with the same key shows the run it started."),
    )
    correlation = forms.CharField(
        max_length=1000,
        required=False,
        label=gettext_lazy("Correlation keys"),
        help_text=format_lazy(gettext_lazy("name:value pairs separated by commas, names from {keys}."), keys=", ".join(CORRELATION_KEYS)),
        widget=forms.TextInput(attrs={"placeholder": "order:SO-1042, shipment:SHP-7", "autocomplete": "off"}),
    )

    def clean_correlation(self) -> dict[str, str]:
        keys: dict[str, str] = {}
        for part in str(self.cleaned_data.get("correlation") or "").replace("\n", ",").split(","):
            if not part.strip():
                continue
            name, separator, value = part.partition(":")
            name, value = name.strip().lower(), value.strip()
            if not separator or not value:
                raise forms.ValidationError(_("“%(part)s” is not name:value, e.g. order:SO-1042.") % {"part": part.strip()})
            if name not in CORRELATION_KEYS:
                raise forms.ValidationError(
                    _("Unknown correlation key “%(name)s”; use %(keys)s.") % {"name": name, "keys": ", ".join(CORRELATION_KEYS)}
                )
            keys[name] = value
        return keys


class BulkRetryForm(forms.Form):
    comment = forms.CharField(
        max_length=500,
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        label=gettext_lazy("Comment"),
        help_text=gettext_lazy("Why these are retried now (e.g. “carrier API back up”); kept with each incident and in the audit log."),
    )


class DecisionForm(forms.Form):
    comment = forms.CharField(
        max_length=2000,
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        label=gettext_lazy("Comment"),
        help_text=gettext_lazy("Required to reject or request changes: the requester needs it to act on your decision."),
    )
