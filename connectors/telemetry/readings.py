"""One MQTT message as a reading: which trailer or shipment, where, how cold, measured when.

A subscription says where each value sits in the message's JSON (`$.a.b`; an empty path: never
sent). Every value is optional except an identity (a trailer id, or at least a shipment
reference); a position needs both coordinates. A message that cannot be read raises
`ReadingRejected` with the reason in words, which the listener counts and logs and the
subscription shows. Nothing here touches the database.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.normalize import MISSING, path_read

PAYLOAD_MAX_BYTES = 64 * 1024
FUTURE_TOLERANCE = timedelta(minutes=5)  # device clocks drift; a reading further ahead is refused
IDENTITY_MAX_CHARS = 120
_MILLISECONDS_FROM = 10**11  # a Unix time above this is in milliseconds (year 5138 in seconds)


class ReadingRejected(Exception):
    """The message cannot be read as a reading; `reason` says why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class PayloadFormat:
    """Where a subscription's devices put each value."""

    device_path: str = "$.device_id"
    device_topic_level: int | None = None
    shipment_path: str = "$.shipment"
    latitude_path: str = "$.lat"
    longitude_path: str = "$.lon"
    temperature_path: str = "$.temperature"
    timestamp_path: str = "$.ts"


@dataclass(frozen=True)
class Reading:
    device: str  # "" when the message names only a shipment
    shipment_ref: str
    latitude: float | None
    longitude: float | None
    temperature: float | None
    measured_at: datetime

    @property
    def has_position(self) -> bool:
        return self.latitude is not None and self.longitude is not None


def path_problem(path: str) -> str:
    """Why `path` is not a JSON path this reader follows ("" when it is)."""
    if path in ("", "$"):
        return ""
    if not path.startswith("$.") or any(not part for part in path[2:].split(".")):
        return "must be empty or a JSON path like $.data.temperature"
    return ""


def _read(document: Any, path: str) -> Any:
    """The value at `path` (the inbox mappings' reader), None when the path is empty or the
    message has nothing there: every value of a reading is optional."""
    value = path_read(document, path) if path else MISSING
    return None if value is MISSING else value


def _identity(value: Any, path: str, what: str) -> str:
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int) or not str(value).strip():
        raise ReadingRejected(f"{what} at {path} must be a non-empty text or number")
    text = str(value).strip()
    if len(text) > IDENTITY_MAX_CHARS:
        raise ReadingRejected(f"{what} at {path} is longer than {IDENTITY_MAX_CHARS} characters")
    return text


def _number(value: Any, path: str, what: str, low: float, high: float) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ReadingRejected(f"{what} at {path} must be a number, not {json.dumps(value)[:40]}")
    number = float(value)
    if not math.isfinite(number) or not low <= number <= high:
        raise ReadingRejected(f"{what} at {path} is {value}, outside {low:g} to {high:g}")
    return number


def _measured_at(value: Any, path: str, received_at: datetime) -> datetime:
    if value is None:
        return received_at
    try:
        if isinstance(value, bool):
            raise ValueError
        if isinstance(value, int | float):
            seconds = value / 1000 if value > _MILLISECONDS_FROM else value
            at = datetime.fromtimestamp(seconds, tz=UTC)
        elif isinstance(value, str):
            at = datetime.fromisoformat(value.strip())
            at = at if at.tzinfo else at.replace(tzinfo=UTC)
        else:
            raise ValueError
    except (ValueError, OverflowError, OSError) as error:
        raise ReadingRejected(f"the time at {path} must be ISO 8601 or Unix seconds, not {json.dumps(value)[:40]}") from error
    at = at.astimezone(UTC)  # one zone, so readings sort by their ISO text in an asset's recent list
    if at > received_at + FUTURE_TOLERANCE:
        raise ReadingRejected(f"the time at {path} ({at.isoformat()}) is more than 5 minutes ahead of Baton's clock")
    return at


def reading_parse(*, payload: bytes, topic: str, payload_format: PayloadFormat, received_at: datetime) -> Reading:
    """The reading in an MQTT message, or ReadingRejected saying why there is none."""
    if len(payload) > PAYLOAD_MAX_BYTES:
        raise ReadingRejected(f"the message is {len(payload)} bytes; at most {PAYLOAD_MAX_BYTES} are read")
    try:
        document = json.loads(payload.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise ReadingRejected(f"the message is not UTF-8 text (byte {error.start})") from error
    except json.JSONDecodeError as error:
        raise ReadingRejected(f"the message is not JSON: {error.msg} at line {error.lineno}, column {error.colno}") from error
    if not isinstance(document, dict):
        raise ReadingRejected("the message must be a JSON object")
    fmt = payload_format
    device = _identity(_read(document, fmt.device_path), fmt.device_path, "the device id")
    if not device and fmt.device_topic_level is not None:
        levels = topic.split("/")
        if fmt.device_topic_level < len(levels):
            device = _identity(levels[fmt.device_topic_level] or None, f"topic level {fmt.device_topic_level}", "the device id")
    shipment_ref = _identity(_read(document, fmt.shipment_path), fmt.shipment_path, "the shipment reference")
    if not device and not shipment_ref:
        where = " or ".join(path for path in (fmt.device_path, fmt.shipment_path) if path) or "the configured paths"
        raise ReadingRejected(f"the message names no trailer or shipment (nothing at {where})")
    latitude = _number(_read(document, fmt.latitude_path), fmt.latitude_path, "the latitude", -90, 90)
    longitude = _number(_read(document, fmt.longitude_path), fmt.longitude_path, "the longitude", -180, 180)
    if (latitude is None) != (longitude is None):
        missing = fmt.longitude_path if longitude is None else fmt.latitude_path
        raise ReadingRejected(f"a position needs both coordinates; nothing at {missing}")
    temperature = _number(_read(document, fmt.temperature_path), fmt.temperature_path, "the temperature", -100, 150)
    return Reading(
        device=device,
        shipment_ref=shipment_ref,
        latitude=latitude,
        longitude=longitude,
        temperature=temperature,
        measured_at=_measured_at(_read(document, fmt.timestamp_path), fmt.timestamp_path, received_at),
    )
