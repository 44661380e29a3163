"""The platform's default status mapping tables, shipped as data in `logistics/data/*.json`.

Each file is one table: its kind, a release label, notes and entries. Every tenant starts with
them as version 1 of each table (the migration installs them in the template schema, so new
tenants get them with the snapshot); a later release of a file is installed as a new version by
`defaults_install`. The checks here are the same ones the services apply to what people type.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from logistics.vocabulary import Signal, TrackingStatus

DATA_DIR = Path(__file__).resolve().parent / "data"
KINDS = ("x12_214_status", "x12_214_reason", "carrier_api_status")
STATUS_KINDS = ("x12_214_status", "carrier_api_status")
RESPONSIBILITIES = ("none", "carrier", "shipper", "consignee", "customs", "weather", "other")
DEFAULTS_ACTOR = "system:platform-defaults"
CODE_LIMIT = 40
DESCRIPTION_LIMIT = 200


class DefaultsInvalid(ValueError):
    """A data file cannot be installed; the message names the file and the entry."""


def code_normalized(kind: str, code: str) -> str:
    """X12 codes are upper-case letters and digits; carrier API statuses are lower-case words."""
    code = (code or "").strip()
    return code.lower() if kind == "carrier_api_status" else code.upper()


def entry_problems(kind: str, entry: dict[str, Any]) -> list[tuple[str, str]]:
    """Every reason `entry` cannot be part of a `kind` table, as (field, reason); [] when it can."""
    problems: list[tuple[str, str]] = []
    code = entry.get("code")
    if not isinstance(code, str) or not code.strip():
        problems.append(("code", "is required: the code exactly as partners send it, such as X6"))
    elif len(code.strip()) > CODE_LIMIT or any(character.isspace() for character in code.strip()):
        problems.append(("code", f"must be one word of at most {CODE_LIMIT} characters"))
    description = entry.get("description")
    if not isinstance(description, str) or not description.strip():
        problems.append(("description", "is required: say what the code means, such as “En route to delivery location”"))
    elif len(description) > DESCRIPTION_LIMIT:
        problems.append(("description", f"must be at most {DESCRIPTION_LIMIT} characters"))
    status = entry.get("status") or ""
    responsible = entry.get("responsible") or ""
    if kind in STATUS_KINDS:
        if status not in TrackingStatus.values:
            problems.append(("status", "must be one of Baton's tracking statuses: " + ", ".join(TrackingStatus.values)))
        if responsible:
            problems.append(("responsible", "belongs to reason tables; a status code maps to a status"))
    else:
        if responsible not in RESPONSIBILITIES:
            problems.append(("responsible", "must be one of " + ", ".join(RESPONSIBILITIES)))
        if status or entry.get("estimate"):
            problems.append(("status", "belongs to status tables; a reason code says who is responsible"))
    if not isinstance(entry.get("estimate", False), bool):
        problems.append(("estimate", "must be true or false"))
    signal = entry.get("signal") or ""
    if signal and signal not in Signal.values:
        problems.append(("signal", "must be empty or one of " + ", ".join(Signal.values)))
    unknown = sorted(set(entry) - {"code", "description", "status", "estimate", "responsible", "signal"})
    if unknown:
        problems.append((unknown[0], "is not a field of a mapping entry"))
    return problems


@dataclass(frozen=True)
class DefaultTable:
    kind: str
    release: str
    notes: str
    entries: tuple[dict[str, Any], ...]


def _table(path: Path) -> DefaultTable:
    document = json.loads(path.read_text(encoding="utf-8"))
    kind = document.get("kind")
    if kind not in KINDS:
        raise DefaultsInvalid(f"{path.name}: kind {kind!r} is not one of {', '.join(KINDS)}")
    seen: set[str] = set()
    entries = []
    for index, entry in enumerate(document.get("entries", [])):
        problems = entry_problems(kind, entry)
        if problems:
            field, reason = problems[0]
            raise DefaultsInvalid(f"{path.name}: entry {index} ({entry.get('code')!r}): {field} {reason}")
        code = code_normalized(kind, entry["code"])
        if code in seen:
            raise DefaultsInvalid(f"{path.name}: entry {index}: code {code} is listed twice")
        seen.add(code)
        entries.append(entry | {"code": code})
    return DefaultTable(kind=kind, release=str(document.get("release", "")), notes=str(document.get("notes", "")), entries=tuple(entries))


@cache
def platform_defaults() -> tuple[DefaultTable, ...]:
    """The tables in logistics/data, checked (DefaultsInvalid says what is wrong where)."""
    return tuple(_table(DATA_DIR / f"{kind}.json") for kind in KINDS)


def defaults_install(version_model: Any, entry_model: Any, *, now: datetime, kinds: Iterable[str] = KINDS) -> list[Any]:
    """Install each default table whose release the schema does not have yet; returns the new
    versions. A table becomes active when its kind has no active version or the active one is
    an earlier platform release; otherwise it is installed retired, ready to be activated, and
    the tenant's own version stays in force.

    Takes the model classes so the migration can call it with its historical models."""
    installed = []
    for table in platform_defaults():
        if table.kind not in kinds or version_model.objects.filter(kind=table.kind, platform_release=table.release).exists():
            continue
        active = version_model.objects.filter(kind=table.kind, status="active").first()
        latest = version_model.objects.filter(kind=table.kind).order_by("-number").values_list("number", flat=True).first()
        version = version_model.objects.create(
            kind=table.kind,
            number=(latest or 0) + 1,
            status="draft",
            platform_release=table.release,
            notes=table.notes,
            created_by_email=DEFAULTS_ACTOR,
        )
        entry_model.objects.bulk_create(
            entry_model(
                version=version,
                code=entry["code"],
                description=entry["description"].strip(),
                status=entry.get("status", ""),
                estimate=bool(entry.get("estimate", False)),
                responsible=entry.get("responsible", ""),
                signal=entry.get("signal", ""),
            )
            for entry in table.entries
        )
        take_over = active is None or bool(active.platform_release)
        if take_over and active is not None:
            version_model.objects.filter(pk=active.pk).update(status="retired", retired_at=now)
        version_model.objects.filter(pk=version.pk).update(
            status="active" if take_over else "retired",
            published_by_email=DEFAULTS_ACTOR,
            published_at=now,
            retired_at=None if take_over else now,
        )
        version.refresh_from_db()
        installed.append(version)
    return installed
