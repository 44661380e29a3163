"""Webhook signatures: verify an inbound delivery on its raw body, before anything parses it, and
sign our own deliveries.

Two families:

- **Standard Webhooks** (standardwebhooks.com, spec 1.0): `webhook-id`, `webhook-timestamp` and
  `webhook-signature` headers; HMAC-SHA256 over `{id}.{timestamp}.{body}` keyed with the base64
  secret after `whsec_`; the signature header holds space-separated `v1,<base64>` entries (one per
  active secret while a secret rotates), any of which may match; other versions (`v1a`) are ignored.
- **Vendor HMAC schemes** as data (`HmacScheme`): which header, algorithm, hex or base64, a prefix,
  what is signed, where a timestamp comes from. `GITHUB`, `SHOPIFY`, `STRIPE` and `EASYPOST` follow
  those vendors' published schemes.

Verification never raises for anything the sender controls: it returns a `Verification` that is
either valid or names the problem in words (for a problem+json `detail`) and as a `SignatureProblem`
(for counting rejections: `counted_as` is "stale" or "bad_signature"). The signature is checked
before the timestamp, so a rejection counted as stale was really signed by the partner (a late
delivery or a replay) and a forgery is always counted as a bad signature. Replay detection (the same
webhook id twice) belongs to the inbox: the id and timestamp parsed here come back in the result.

Secrets rotate with overlap: every function takes a list of secrets (the current one first, then
the previous one with an `expires_at`); expired secrets are skipped. Standard library only, so the
sandbox partner systems can sign with it outside Django.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets as token_source
import string
import time
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

DEFAULT_TOLERANCE_SECONDS = 300
STANDARD_SECRET_PREFIX = "whsec_"
ALGORITHMS = ("sha1", "sha256", "sha512")
ENCODINGS = ("hex", "base64")
SECRET_FORMS = ("text", "nfkd", "base64")
TEMPLATE_FIELDS = frozenset({"body", "timestamp", "id"})


class SignatureProblem(StrEnum):
    """Why a delivery was refused; stable values for metrics labels and problem types."""

    MISSING_HEADER = "missing_header"
    MALFORMED_HEADER = "malformed_header"
    NO_MATCHING_SIGNATURE = "no_matching_signature"
    TIMESTAMP_OUTSIDE_TOLERANCE = "timestamp_outside_tolerance"
    UNSUPPORTED_ALGORITHM = "unsupported_algorithm"
    NO_ACTIVE_SECRET = "no_active_secret"


class InvalidSigningSecret(ValueError):
    """A configured secret cannot be used as a key (our configuration, never the sender's fault)."""


@dataclass(frozen=True)
class SigningSecret:
    """One secret of a connection; the previous secret keeps an `expires_at` during rotation."""

    value: str
    expires_at: datetime | None = None

    def active_at(self, moment: datetime) -> bool:
        return self.expires_at is None or moment < self.expires_at


@dataclass(frozen=True)
class Verification:
    """The outcome: valid, or the problem with a sentence saying what and where.

    `webhook_id` and `timestamp` are what the delivery claimed (parsed even when it is refused, so
    a log can show them); `age_seconds` is now minus the timestamp (negative: from the future);
    `secret_index` says which of the given secrets matched (1 or more: the sender still signs with
    an older secret)."""

    problem: SignatureProblem | None = None
    detail: str = ""
    header: str = ""
    webhook_id: str = ""
    timestamp: int | None = None
    age_seconds: int | None = None
    secret_index: int | None = None

    @property
    def valid(self) -> bool:
        return self.problem is None

    def __bool__(self) -> bool:
        return self.valid

    @property
    def counted_as(self) -> str:
        """The rejection's metrics label: "stale" for a timestamp outside the tolerance, else "bad_signature"."""
        if self.problem is None:
            return "accepted"
        return "stale" if self.problem is SignatureProblem.TIMESTAMP_OUTSIDE_TOLERANCE else "bad_signature"


# --- secrets and small helpers -----------------------------------------------------------------


def generate_secret(size: int = 32) -> str:
    """A new Standard Webhooks secret, `whsec_` + base64 of `size` random bytes (the spec asks 24 to 64)."""
    if not 24 <= size <= 64:
        raise ValueError(f"a Standard Webhooks secret has 24 to 64 bytes, not {size}")
    return STANDARD_SECRET_PREFIX + base64.b64encode(token_source.token_bytes(size)).decode()


def new_webhook_id() -> str:
    """A unique delivery id for `webhook-id` (URL-safe, never contains the `.` the signed content uses)."""
    return "msg_" + token_source.token_urlsafe(18)


def standard_secret_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret: base64 after the optional `whsec_` prefix."""
    encoded = secret.strip().removeprefix(STANDARD_SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as error:
        raise InvalidSigningSecret("the signing secret is not base64 after its whsec_ prefix") from error
    if not key:
        raise InvalidSigningSecret("the signing secret is empty")
    return key


def _moment(now: float | None) -> float:
    return time.time() if now is None else now


def _active(secrets: Sequence[str | SigningSecret], now: float) -> list[tuple[int, str]]:
    moment = datetime.fromtimestamp(now, tz=UTC)
    chosen = []
    for index, secret in enumerate(secrets):
        if isinstance(secret, str):
            chosen.append((index, secret))
        elif secret.active_at(moment):
            chosen.append((index, secret.value))
    return chosen


def _lowered(headers: Mapping[str, str]) -> dict[str, str]:
    """Header names compared case-insensitively (Django's `request.headers` or a plain dict)."""
    return {name.lower(): value for name, value in headers.items()}


def _refused(
    problem: SignatureProblem,
    detail: str,
    header: str = "",
    *,
    webhook_id: str = "",
    timestamp: int | None = None,
    age_seconds: int | None = None,
    secret_index: int | None = None,
) -> Verification:
    return Verification(problem, detail, header, webhook_id, timestamp, age_seconds, secret_index)


def _timestamp(raw: str, header: str) -> int | Verification:
    value = raw.strip()
    if not value.isascii() or not value.isdigit():
        return _refused(SignatureProblem.MALFORMED_HEADER, f"the {header} timestamp {value[:40]!r} is not whole Unix seconds", header)
    return int(value)


def _check_age(verified: Verification, tolerance: int | None, now: float, header: str) -> Verification:
    """The signature matched; refuse it still when its timestamp is outside the tolerance."""
    if verified.timestamp is None:
        return verified
    age = int(now) - verified.timestamp
    if tolerance is None or abs(age) <= tolerance:
        return Verification(
            webhook_id=verified.webhook_id, timestamp=verified.timestamp, age_seconds=age, secret_index=verified.secret_index
        )
    where = f"{age} s old" if age > 0 else f"{-age} s in the future"
    return _refused(
        SignatureProblem.TIMESTAMP_OUTSIDE_TOLERANCE,
        f"the signed timestamp {verified.timestamp} is {where}, {abs(age) - tolerance} s beyond the {tolerance} s tolerance",
        header,
        webhook_id=verified.webhook_id,
        timestamp=verified.timestamp,
        age_seconds=age,
        secret_index=verified.secret_index,
    )


# --- Standard Webhooks ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StandardWebhooks:
    """The Standard Webhooks scheme; `tolerance` in seconds either side of now (the spec's 5 minutes)."""

    tolerance: int = DEFAULT_TOLERANCE_SECONDS
    name: str = "standard-webhooks"
    id_header: str = "webhook-id"
    timestamp_header: str = "webhook-timestamp"
    signature_header: str = "webhook-signature"

    def signature(self, body: bytes, *, webhook_id: str, timestamp: int, secret: str) -> bytes:
        content = f"{webhook_id}.{timestamp}.".encode() + body
        return hmac.new(standard_secret_key(secret), content, hashlib.sha256).digest()

    def sign(
        self, body: bytes, *, secrets: Sequence[str | SigningSecret], webhook_id: str = "", timestamp: int | None = None
    ) -> dict[str, str]:
        """The three headers for one delivery attempt, with one `v1` signature per active secret (so a
        receiver still holding the previous secret verifies during a rotation)."""
        now = time.time()
        stamp = int(now) if timestamp is None else timestamp
        delivery = webhook_id or new_webhook_id()
        keys = _active(secrets, now)
        if not keys:
            raise InvalidSigningSecret("no active signing secret to sign with")
        signatures = " ".join(
            "v1," + base64.b64encode(self.signature(body, webhook_id=delivery, timestamp=stamp, secret=secret)).decode()
            for _, secret in keys
        )
        return {self.id_header: delivery, self.timestamp_header: str(stamp), self.signature_header: signatures}

    def verify(
        self, body: bytes, headers: Mapping[str, str], secrets: Sequence[str | SigningSecret], *, now: float | None = None
    ) -> Verification:
        moment = _moment(now)
        lowered = _lowered(headers)
        for header in (self.id_header, self.timestamp_header, self.signature_header):
            if not lowered.get(header, "").strip():
                return _refused(SignatureProblem.MISSING_HEADER, f"the {header} header is missing", header)
        webhook_id = lowered[self.id_header].strip()
        stamp = _timestamp(lowered[self.timestamp_header], self.timestamp_header)
        if isinstance(stamp, Verification):
            return stamp
        entries = [entry.partition(",") for entry in lowered[self.signature_header].split()]
        if not any(comma and value for _, comma, value in entries):
            return _refused(
                SignatureProblem.MALFORMED_HEADER,
                f"the {self.signature_header} header holds no version,signature entries",
                self.signature_header,
                webhook_id=webhook_id,
                timestamp=stamp,
            )
        candidates = [_decoded(value, "base64") for version, _, value in entries if version == "v1"]
        if not candidates:
            versions = ", ".join(sorted({version for version, _, _ in entries}))
            return _refused(
                SignatureProblem.NO_MATCHING_SIGNATURE,
                f"the {self.signature_header} header holds no v1 signature (only {versions})",
                self.signature_header,
                webhook_id=webhook_id,
                timestamp=stamp,
            )
        keys = _active(secrets, moment)
        if not keys:
            return _refused(
                SignatureProblem.NO_ACTIVE_SECRET, "the connection has no active signing secret", webhook_id=webhook_id, timestamp=stamp
            )
        for index, secret in keys:
            expected = self.signature(body, webhook_id=webhook_id, timestamp=stamp, secret=secret)
            if _any_equal(expected, candidates):
                return _check_age(
                    Verification(webhook_id=webhook_id, timestamp=stamp, secret_index=index),
                    self.tolerance,
                    moment,
                    self.timestamp_header,
                )
        return _refused(
            SignatureProblem.NO_MATCHING_SIGNATURE,
            f"no v1 signature in the {self.signature_header} header matches the body with the connection's secrets",
            self.signature_header,
            webhook_id=webhook_id,
            timestamp=stamp,
        )


def _decoded(value: str, encoding: str) -> bytes | None:
    """A signature's bytes, or None when it is not valid hex/base64 (it then cannot match)."""
    try:
        if encoding == "hex":
            return bytes.fromhex(value)
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def _any_equal(expected: bytes, candidates: Sequence[bytes | None]) -> bool:
    """Constant-time comparison against every candidate (no early exit that would time the match)."""
    matched = False
    for candidate in candidates:
        if candidate is not None and hmac.compare_digest(expected, candidate):
            matched = True
    return matched


# --- vendor HMAC schemes ---------------------------------------------------------------------------


@dataclass(frozen=True)
class HmacScheme:
    """A vendor's HMAC webhook signature, as data.

    - `signed_content`: a template over the raw body with `{body}` (exactly once), `{timestamp}`, `{id}`.
    - the timestamp comes from `timestamp_header`, or from `timestamp_field` inside the signature
      header when that header is a `key=value` list (Stripe's `t=…,v1=…`, whose signatures are every
      `signature_field` entry); without either there is no timestamp and no tolerance check.
    - `prefix` precedes the encoded signature (`sha256=`); `secret_form` says how a secret becomes
      the key: its UTF-8 text, NFKD-normalized text (EasyPost's clients), or base64 (`whsec_` allowed).
    - `id_header` names the delivery id the inbox uses to refuse a replay (signed only when
      `signed_content` uses `{id}`).
    """

    name: str
    signature_header: str
    algorithm: str = "sha256"
    encoding: str = "hex"
    prefix: str = ""
    signed_content: str = "{body}"
    timestamp_header: str = ""
    timestamp_field: str = ""
    signature_field: str = ""
    id_header: str = ""
    tolerance: int | None = None
    secret_form: str = "text"

    def __post_init__(self) -> None:
        errors = self.configuration_errors()
        if errors:
            raise ValueError(f"webhook scheme {self.name!r}: " + "; ".join(errors))

    def configuration_errors(self) -> list[str]:
        """What makes this scheme unusable, in words (an unknown algorithm is reported at verification instead)."""
        errors = []
        if not self.signature_header.strip():
            errors.append("the signature header is not named")
        if self.encoding not in ENCODINGS:
            errors.append(f"encoding {self.encoding!r} is not one of {', '.join(ENCODINGS)}")
        if self.secret_form not in SECRET_FORMS:
            errors.append(f"secret form {self.secret_form!r} is not one of {', '.join(SECRET_FORMS)}")
        try:
            names = [name for _, name, _, _ in string.Formatter().parse(self.signed_content) if name is not None]
        except ValueError as error:
            errors.append(f"signed content {self.signed_content!r} is not a template: {error}")
        else:
            unknown = sorted(set(names) - TEMPLATE_FIELDS)
            if unknown:
                errors.append(f"signed content names unknown fields {', '.join(unknown)} (use body, timestamp, id)")
            if names.count("body") != 1:
                errors.append("signed content must contain {body} exactly once")
            if "timestamp" in names and not (self.timestamp_header or self.timestamp_field):
                errors.append("signed content uses {timestamp} but no timestamp header or field is named")
            if "id" in names and not self.id_header:
                errors.append("signed content uses {id} but no id header is named")
        if bool(self.timestamp_field) != bool(self.signature_field):
            errors.append("a key=value signature header needs both its timestamp field and its signature field")
        if self.tolerance is not None and not (self.timestamp_header or self.timestamp_field):
            errors.append("a tolerance needs a timestamp header or field")
        return errors

    def key(self, secret: str) -> bytes:
        if self.secret_form == "base64":
            return standard_secret_key(secret)
        text = unicodedata.normalize("NFKD", secret) if self.secret_form == "nfkd" else secret
        if not text:
            raise InvalidSigningSecret("the signing secret is empty")
        return text.encode()

    def content(self, body: bytes, *, timestamp: int | None = None, webhook_id: str = "") -> bytes:
        before, _, after = self.signed_content.partition("{body}")
        values = {"timestamp": "" if timestamp is None else str(timestamp), "id": webhook_id}
        return before.format(**values).encode() + body + after.format(**values).encode()

    def signature(self, body: bytes, *, secret: str, timestamp: int | None = None, webhook_id: str = "") -> bytes:
        content = self.content(body, timestamp=timestamp, webhook_id=webhook_id)
        return hmac.new(self.key(secret), content, self.algorithm).digest()

    def _encoded(self, digest: bytes) -> str:
        return digest.hex() if self.encoding == "hex" else base64.b64encode(digest).decode()

    def sign(
        self, body: bytes, *, secrets: Sequence[str | SigningSecret], timestamp: int | None = None, webhook_id: str = ""
    ) -> dict[str, str]:
        """The headers a sender of this scheme would add (for the sandbox and tests); with a
        `key=value` header, one signature per active secret."""
        now = time.time()
        stamp = int(now) if timestamp is None and (self.timestamp_header or self.timestamp_field) else timestamp
        keys = _active(secrets, now)
        if not keys:
            raise InvalidSigningSecret("no active signing secret to sign with")
        digests = [self.signature(body, secret=secret, timestamp=stamp, webhook_id=webhook_id) for _, secret in keys]
        headers = {self.id_header: webhook_id} if self.id_header and webhook_id else {}
        if self.timestamp_header:
            headers[self.timestamp_header] = str(stamp)
        if self.timestamp_field:
            fields = [f"{self.timestamp_field}={stamp}"] + [f"{self.signature_field}={self.prefix}{self._encoded(d)}" for d in digests]
            headers[self.signature_header] = ",".join(fields)
        else:
            headers[self.signature_header] = self.prefix + self._encoded(digests[0])
        return headers

    def verify(
        self, body: bytes, headers: Mapping[str, str], secrets: Sequence[str | SigningSecret], *, now: float | None = None
    ) -> Verification:
        moment = _moment(now)
        lowered = _lowered(headers)
        if self.algorithm not in ALGORITHMS:
            return _refused(
                SignatureProblem.UNSUPPORTED_ALGORITHM,
                f"the {self.name} scheme names algorithm {self.algorithm!r}; supported: {', '.join(ALGORITHMS)}",
            )
        raw = lowered.get(self.signature_header.lower(), "").strip()
        if not raw:
            return _refused(SignatureProblem.MISSING_HEADER, f"the {self.signature_header} header is missing", self.signature_header)
        webhook_id = lowered.get(self.id_header.lower(), "").strip() if self.id_header else ""
        parsed = self._parse(raw, lowered)
        if isinstance(parsed, Verification):
            return Verification(problem=parsed.problem, detail=parsed.detail, header=parsed.header, webhook_id=webhook_id)
        stamp, encoded = parsed
        if "{id}" in self.signed_content and not webhook_id:
            return _refused(SignatureProblem.MISSING_HEADER, f"the {self.id_header} header is missing", self.id_header)
        candidates = [_decoded(value, self.encoding) for value in encoded]
        keys = _active(secrets, moment)
        if not keys:
            return _refused(
                SignatureProblem.NO_ACTIVE_SECRET,
                "the connection has no active signing secret",
                webhook_id=webhook_id,
                timestamp=stamp,
            )
        for index, secret in keys:
            expected = self.signature(body, secret=secret, timestamp=stamp, webhook_id=webhook_id)
            if _any_equal(expected, candidates):
                return _check_age(
                    Verification(webhook_id=webhook_id, timestamp=stamp, secret_index=index),
                    self.tolerance,
                    moment,
                    self.timestamp_header or self.signature_header,
                )
        return _refused(
            SignatureProblem.NO_MATCHING_SIGNATURE,
            f"the {self.signature_header} signature does not match the body with the connection's secrets",
            self.signature_header,
            webhook_id=webhook_id,
            timestamp=stamp,
        )

    def _parse(self, raw: str, lowered: Mapping[str, str]) -> tuple[int | None, list[str]] | Verification:
        """The timestamp and the encoded signatures, or why the headers cannot be read."""
        header = self.signature_header
        stamp: int | Verification | None = None
        if self.timestamp_field:
            pairs = [item.strip().partition("=") for item in raw.split(",")]
            if any(not equals or not key.strip() for key, equals, _ in pairs):
                return _refused(SignatureProblem.MALFORMED_HEADER, f"the {header} header is not a key=value list", header)
            stamps = [value.strip() for key, _, value in pairs if key.strip() == self.timestamp_field]
            if len(stamps) != 1:
                return _refused(
                    SignatureProblem.MALFORMED_HEADER, f"the {header} header needs exactly one {self.timestamp_field}= timestamp", header
                )
            stamp = _timestamp(stamps[0], header)
            values = [value.strip() for key, _, value in pairs if key.strip() == self.signature_field]
            if not values:
                return _refused(
                    SignatureProblem.NO_MATCHING_SIGNATURE, f"the {header} header holds no {self.signature_field} signature", header
                )
        else:
            if self.timestamp_header:
                stamp_raw = lowered.get(self.timestamp_header.lower(), "").strip()
                if not stamp_raw:
                    return _refused(
                        SignatureProblem.MISSING_HEADER, f"the {self.timestamp_header} header is missing", self.timestamp_header
                    )
                stamp = _timestamp(stamp_raw, self.timestamp_header)
            values = [raw]
        if isinstance(stamp, Verification):
            return stamp
        encoded = []
        for value in values:
            if not value.startswith(self.prefix):
                return _refused(SignatureProblem.MALFORMED_HEADER, f"the {header} signature does not start with {self.prefix!r}", header)
            encoded.append(value.removeprefix(self.prefix).strip())
        return stamp, encoded


STANDARD_WEBHOOKS = StandardWebhooks()
# X-Hub-Signature-256: "sha256=" + hex HMAC-SHA256 of the body; X-GitHub-Delivery is the delivery GUID.
GITHUB = HmacScheme(name="github", signature_header="X-Hub-Signature-256", prefix="sha256=", id_header="X-GitHub-Delivery")
# X-Shopify-Hmac-Sha256: base64 HMAC-SHA256 of the body with the app's client secret.
SHOPIFY = HmacScheme(name="shopify", signature_header="X-Shopify-Hmac-Sha256", encoding="base64", id_header="X-Shopify-Webhook-Id")
# Stripe-Signature: t=<ts>,v1=<hex>[,v1=…] over "{t}.{body}"; other schemes (v0) ignored; 300 s tolerance.
STRIPE = HmacScheme(
    name="stripe",
    signature_header="Stripe-Signature",
    signed_content="{timestamp}.{body}",
    timestamp_field="t",
    signature_field="v1",
    tolerance=DEFAULT_TOLERANCE_SECONDS,
)
# X-Hmac-Signature: "hmac-sha256-hex=" + hex HMAC-SHA256 of the body, keyed with the NFKD-normalized secret.
EASYPOST = HmacScheme(name="easypost", signature_header="X-Hmac-Signature", prefix="hmac-sha256-hex=", secret_form="nfkd")

SCHEMES: dict[str, StandardWebhooks | HmacScheme] = {
    scheme.name: scheme for scheme in (STANDARD_WEBHOOKS, GITHUB, SHOPIFY, STRIPE, EASYPOST)
}
