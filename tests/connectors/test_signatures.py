"""Webhook signature verification on the raw body: Standard Webhooks and the vendor HMAC presets.

Every expected signature is computed here with `hmac` directly (never with the module under test),
and the two published vectors (the Standard Webhooks reference library's and GitHub's) are checked
as printed by their authors."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import asdict
from datetime import UTC, datetime, timedelta

import pytest

from connectors.signatures import (
    EASYPOST,
    GITHUB,
    SCHEMES,
    SHOPIFY,
    STANDARD_WEBHOOKS,
    STRIPE,
    HmacScheme,
    InvalidSigningSecret,
    SignatureProblem,
    SigningSecret,
    StandardWebhooks,
    generate_secret,
    new_webhook_id,
)

NOW = 1_750_000_000
BODY = b'{"type":"tracker.updated","data":{"tracking_code":"EZ4000000004","status":"delivered"}}'
KEY = bytes(range(32))
SECRET = "whsec_" + base64.b64encode(KEY).decode()
OLD_KEY = b"previous-secret-key-of-24-bytes!"
OLD_SECRET = "whsec_" + base64.b64encode(OLD_KEY).decode()


def standard_signature(key: bytes, webhook_id: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(key, f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def standard_headers(signature: str, *, webhook_id: str = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", timestamp: int = NOW) -> dict[str, str]:
    return {"webhook-id": webhook_id, "webhook-timestamp": str(timestamp), "webhook-signature": signature}


def signed_standard(key: bytes = KEY, *, timestamp: int = NOW, body: bytes = BODY) -> dict[str, str]:
    return standard_headers(standard_signature(key, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", timestamp, body), timestamp=timestamp)


# --- Standard Webhooks ----------------------------------------------------------------------


def test_the_reference_librarys_published_vector_signs_and_verifies():
    """standard-webhooks/libraries/python/tests/test_webhooks.py, test_sign_function."""
    secret, body = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", b'{"test": 2432232314}'
    expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    headers = STANDARD_WEBHOOKS.sign(body, secrets=[secret], webhook_id="msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp=1614265330)
    assert headers == {"webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek", "webhook-timestamp": "1614265330", "webhook-signature": expected}
    result = STANDARD_WEBHOOKS.verify(body, headers, [secret], now=1614265330)
    assert result.valid and result.webhook_id == "msg_p5jXN8AQM9LWM0D4loKWxJek" and result.timestamp == 1614265330
    # the reference library also accepts the secret without its whsec_ prefix
    assert STANDARD_WEBHOOKS.verify(body, headers, ["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"], now=1614265330)


def test_a_valid_delivery_exposes_its_id_timestamp_and_age_for_the_inbox():
    result = STANDARD_WEBHOOKS.verify(BODY, signed_standard(timestamp=NOW - 42), [SECRET], now=NOW)
    assert result.valid and bool(result)
    assert (result.webhook_id, result.timestamp, result.age_seconds, result.secret_index) == (
        "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
        NOW - 42,
        42,
        0,
    )
    assert result.counted_as == "accepted"


def test_header_names_are_matched_whatever_their_case():
    headers = {name.title(): value for name, value in signed_standard().items()}  # Webhook-Id, as Django shows them
    assert STANDARD_WEBHOOKS.verify(BODY, headers, [SECRET], now=NOW).valid


def test_any_one_valid_signature_among_several_passes_and_unknown_versions_are_ignored():
    valid = standard_signature(KEY, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", NOW, BODY)
    forged = "v1," + base64.b64encode(b"x" * 32).decode()
    signature = f"v1a,aGVsbG8= {forged}  {valid.replace('v1,', 'v2,')} {valid} v1,not-base64!"
    assert STANDARD_WEBHOOKS.verify(BODY, standard_headers(signature), [SECRET], now=NOW).valid


def test_a_header_with_only_other_versions_says_there_is_no_v1_signature():
    result = STANDARD_WEBHOOKS.verify(BODY, standard_headers("v1a,aGVsbG8= v2,aGVsbG8="), [SECRET], now=NOW)
    assert result.problem is SignatureProblem.NO_MATCHING_SIGNATURE
    assert result.detail == "the webhook-signature header holds no v1 signature (only v1a, v2)"


def test_rotation_overlap_accepts_the_previous_secret_until_it_expires():
    secrets = [SECRET, SigningSecret(OLD_SECRET, expires_at=datetime.fromtimestamp(NOW + 60, tz=UTC))]
    from_old_sender = signed_standard(OLD_KEY)
    during = STANDARD_WEBHOOKS.verify(BODY, from_old_sender, secrets, now=NOW)
    assert during.valid and during.secret_index == 1  # the sender still signs with the previous secret
    after = STANDARD_WEBHOOKS.verify(BODY, signed_standard(OLD_KEY, timestamp=NOW + 61), secrets, now=NOW + 61)
    assert after.problem is SignatureProblem.NO_MATCHING_SIGNATURE
    assert STANDARD_WEBHOOKS.verify(BODY, signed_standard(KEY, timestamp=NOW + 61), secrets, now=NOW + 61).secret_index == 0


def test_our_own_signing_during_rotation_carries_one_signature_per_active_secret():
    secrets = [SECRET, SigningSecret(OLD_SECRET, expires_at=datetime.fromtimestamp(NOW + 60, tz=UTC) + timedelta(days=3650))]
    headers = STANDARD_WEBHOOKS.sign(BODY, secrets=secrets, webhook_id="msg_1", timestamp=NOW)
    assert headers["webhook-signature"].split(" ") == [
        standard_signature(KEY, "msg_1", NOW, BODY),
        standard_signature(OLD_KEY, "msg_1", NOW, BODY),
    ]
    # a receiver that only knows the old secret still verifies
    assert STANDARD_WEBHOOKS.verify(BODY, headers, [OLD_SECRET], now=NOW).valid


def test_signing_with_only_expired_secrets_is_refused():
    expired = SigningSecret(SECRET, expires_at=datetime(2020, 1, 1, tzinfo=UTC))
    with pytest.raises(InvalidSigningSecret, match="no active signing secret"):
        STANDARD_WEBHOOKS.sign(BODY, secrets=[expired])
    result = STANDARD_WEBHOOKS.verify(BODY, signed_standard(), [expired], now=NOW)
    assert result.problem is SignatureProblem.NO_ACTIVE_SECRET and result.counted_as == "bad_signature"


@pytest.mark.parametrize("offset", [300, -300])
def test_a_timestamp_exactly_five_minutes_away_is_still_accepted(offset):
    assert STANDARD_WEBHOOKS.verify(BODY, signed_standard(timestamp=NOW - offset), [SECRET], now=NOW).valid


def test_a_stale_timestamp_is_refused_saying_by_how_much_and_counted_as_stale():
    result = STANDARD_WEBHOOKS.verify(BODY, signed_standard(timestamp=NOW - 301), [SECRET], now=NOW)
    assert result.problem is SignatureProblem.TIMESTAMP_OUTSIDE_TOLERANCE and result.counted_as == "stale"
    assert result.detail == f"the signed timestamp {NOW - 301} is 301 s old, 1 s beyond the 300 s tolerance"
    assert (result.header, result.age_seconds, result.webhook_id) == ("webhook-timestamp", 301, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W")


def test_a_timestamp_from_the_future_is_refused_too():
    result = STANDARD_WEBHOOKS.verify(BODY, signed_standard(timestamp=NOW + 900), [SECRET], now=NOW)
    assert result.problem is SignatureProblem.TIMESTAMP_OUTSIDE_TOLERANCE
    assert result.detail == f"the signed timestamp {NOW + 900} is 900 s in the future, 600 s beyond the 300 s tolerance"
    assert result.age_seconds == -900


def test_the_tolerance_is_configurable():
    strict = StandardWebhooks(tolerance=30)
    assert strict.verify(BODY, signed_standard(timestamp=NOW - 30), [SECRET], now=NOW).valid
    assert not strict.verify(BODY, signed_standard(timestamp=NOW - 31), [SECRET], now=NOW).valid


def test_a_forged_stale_delivery_counts_as_a_bad_signature_not_as_stale():
    """The signature is checked first: "stale" only ever counts deliveries the partner really signed."""
    result = STANDARD_WEBHOOKS.verify(BODY, signed_standard(b"attacker" * 4, timestamp=NOW - 3600), [SECRET], now=NOW)
    assert result.problem is SignatureProblem.NO_MATCHING_SIGNATURE and result.counted_as == "bad_signature"


def test_a_tampered_body_is_refused():
    result = STANDARD_WEBHOOKS.verify(BODY.replace(b"delivered", b"returned"), signed_standard(), [SECRET], now=NOW)
    assert result.problem is SignatureProblem.NO_MATCHING_SIGNATURE
    assert result.detail == "no v1 signature in the webhook-signature header matches the body with the connection's secrets"


def test_a_tampered_id_or_timestamp_is_refused():
    headers = signed_standard()
    assert not STANDARD_WEBHOOKS.verify(BODY, {**headers, "webhook-id": "msg_other"}, [SECRET], now=NOW)
    assert not STANDARD_WEBHOOKS.verify(BODY, {**headers, "webhook-timestamp": str(NOW - 1)}, [SECRET], now=NOW)


def test_the_wrong_secret_is_refused():
    assert STANDARD_WEBHOOKS.verify(BODY, signed_standard(), [OLD_SECRET], now=NOW).problem is SignatureProblem.NO_MATCHING_SIGNATURE


@pytest.mark.parametrize("header", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_each_missing_header_is_named(header):
    headers = {name: value for name, value in signed_standard().items() if name != header}
    result = STANDARD_WEBHOOKS.verify(BODY, headers, [SECRET], now=NOW)
    assert (result.problem, result.header, result.detail) == (SignatureProblem.MISSING_HEADER, header, f"the {header} header is missing")


@pytest.mark.parametrize(
    ("header", "value", "detail"),
    [
        ("webhook-timestamp", "2025-06-15T12:00:00Z", "the webhook-timestamp timestamp '2025-06-15T12:00:00Z' is not whole Unix seconds"),
        ("webhook-timestamp", "-5", "the webhook-timestamp timestamp '-5' is not whole Unix seconds"),
        (
            "webhook-signature",
            "K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=",
            "the webhook-signature header holds no version,signature entries",
        ),
        ("webhook-signature", "v1,", "the webhook-signature header holds no version,signature entries"),
    ],
)
def test_malformed_headers_are_refused_saying_which_and_why(header, value, detail):
    result = STANDARD_WEBHOOKS.verify(BODY, {**signed_standard(), header: value}, [SECRET], now=NOW)
    assert (result.problem, result.header, result.detail) == (SignatureProblem.MALFORMED_HEADER, header, detail)


def test_whitespace_around_header_values_and_between_signatures_is_tolerated():
    headers = signed_standard()
    padded = {
        "webhook-id": f"  {headers['webhook-id']} ",
        "webhook-timestamp": f" {NOW}\t",
        "webhook-signature": f"  v1,{'A' * 44}   \t {headers['webhook-signature']}  ",
    }
    assert STANDARD_WEBHOOKS.verify(BODY, padded, [SECRET], now=NOW).valid


def test_a_secret_that_is_not_base64_is_a_configuration_error_not_a_rejection():
    with pytest.raises(InvalidSigningSecret, match="not base64"):
        STANDARD_WEBHOOKS.verify(BODY, signed_standard(), ["whsec_not base64!"], now=NOW)


def test_generated_secrets_and_ids_have_the_spec_shape():
    secret = generate_secret()
    assert secret.startswith("whsec_") and len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    assert generate_secret() != secret
    with pytest.raises(ValueError, match="24 to 64 bytes"):
        generate_secret(16)
    webhook_id = new_webhook_id()
    assert webhook_id.startswith("msg_") and "." not in webhook_id and new_webhook_id() != webhook_id


# --- vendor HMAC presets -------------------------------------------------------------------


def test_github_published_vector_verifies():
    """docs.github.com, "Validating webhook deliveries", testing the webhook payload validation."""
    result = GITHUB.verify(
        b"Hello, World!",
        {"X-Hub-Signature-256": "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17", "X-GitHub-Delivery": "d-1"},
        ["It's a Secret to Everybody"],
    )
    assert result.valid and result.webhook_id == "d-1" and result.timestamp is None


def test_github_signature_is_hex_hmac_sha256_of_the_body_with_a_prefix():
    expected = "sha256=" + hmac.new(b"gh-secret", BODY, hashlib.sha256).hexdigest()
    assert GITHUB.sign(BODY, secrets=["gh-secret"]) == {"X-Hub-Signature-256": expected}
    assert GITHUB.verify(BODY, {"x-hub-signature-256": expected.upper().replace("SHA256=", "sha256=")}, ["gh-secret"]).valid
    assert not GITHUB.verify(BODY + b" ", {"X-Hub-Signature-256": expected}, ["gh-secret"]).valid
    missing_prefix = GITHUB.verify(BODY, {"X-Hub-Signature-256": expected.removeprefix("sha256=")}, ["gh-secret"])
    assert missing_prefix.problem is SignatureProblem.MALFORMED_HEADER
    assert missing_prefix.detail == "the X-Hub-Signature-256 signature does not start with 'sha256='"
    not_hex = GITHUB.verify(BODY, {"X-Hub-Signature-256": "sha256=zz"}, ["gh-secret"])
    assert not_hex.problem is SignatureProblem.NO_MATCHING_SIGNATURE


def test_shopify_signature_is_base64_hmac_sha256_of_the_body():
    expected = base64.b64encode(hmac.new(b"shpss_client_secret", BODY, hashlib.sha256).digest()).decode()
    headers = {"X-Shopify-Hmac-Sha256": expected, "X-Shopify-Webhook-Id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"}
    result = SHOPIFY.verify(BODY, headers, ["shpss_client_secret"])
    assert result.valid and result.webhook_id == "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"
    assert not SHOPIFY.verify(BODY, headers, ["another_secret"]).valid
    assert SHOPIFY.verify(BODY, {}, ["shpss_client_secret"]).detail == "the X-Shopify-Hmac-Sha256 header is missing"


def stripe_header(secret: bytes, timestamp: int, body: bytes = BODY, extra: str = "") -> str:
    digest = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}{extra}"


def test_stripe_signature_is_hex_hmac_of_timestamp_dot_body_with_the_whole_secret_as_key():
    header = stripe_header(b"whsec_stripe_test_secret", NOW, extra=",v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39")
    result = STRIPE.verify(BODY, {"Stripe-Signature": header}, ["whsec_stripe_test_secret"], now=NOW)
    assert result.valid and result.timestamp == NOW


def test_stripe_accepts_any_of_several_v1_signatures_during_a_secret_roll():
    old = stripe_header(b"whsec_old", NOW).split(",")[1]
    header = stripe_header(b"whsec_new", NOW) + "," + old
    assert STRIPE.verify(BODY, {"Stripe-Signature": header}, ["whsec_old"], now=NOW).valid
    assert STRIPE.sign(BODY, secrets=["whsec_new", "whsec_old"], timestamp=NOW) == {"Stripe-Signature": header}


def test_stripe_ignores_the_v0_scheme_so_a_downgrade_cannot_pass():
    digest = hmac.new(b"whsec_s", f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    result = STRIPE.verify(BODY, {"Stripe-Signature": f"t={NOW},v0={digest}"}, ["whsec_s"], now=NOW)
    assert result.problem is SignatureProblem.NO_MATCHING_SIGNATURE
    assert result.detail == "the Stripe-Signature header holds no v1 signature"


def test_stripe_tolerance_is_300_seconds_either_way():
    for timestamp, valid in ((NOW - 300, True), (NOW + 300, True), (NOW - 301, False), (NOW + 301, False)):
        result = STRIPE.verify(BODY, {"Stripe-Signature": stripe_header(b"k", timestamp)}, ["k"], now=NOW)
        assert result.valid is valid, timestamp
    stale = STRIPE.verify(BODY, {"Stripe-Signature": stripe_header(b"k", NOW - 301)}, ["k"], now=NOW)
    assert stale.counted_as == "stale" and stale.header == "Stripe-Signature"


@pytest.mark.parametrize(
    ("header", "detail"),
    [
        ("garbage", "the Stripe-Signature header is not a key=value list"),
        ("t=1,t=2,v1=abc", "the Stripe-Signature header needs exactly one t= timestamp"),
        ("v1=abc,v1=def", "the Stripe-Signature header needs exactly one t= timestamp"),
        ("t=soon,v1=abc", "the Stripe-Signature timestamp 'soon' is not whole Unix seconds"),
    ],
)
def test_stripe_malformed_headers_say_why(header, detail):
    result = STRIPE.verify(BODY, {"Stripe-Signature": header}, ["k"], now=NOW)
    assert (result.problem, result.detail) == (SignatureProblem.MALFORMED_HEADER, detail)


def test_stripe_header_whitespace_is_tolerated():
    header = stripe_header(b"k", NOW).replace(",", " ,\t")
    assert STRIPE.verify(BODY, {"Stripe-Signature": f"  {header} "}, ["k"], now=NOW).valid


def test_easypost_signature_is_prefixed_hex_hmac_with_the_nfkd_normalized_secret():
    secret = "ﬁle-secret-Å"  # the "ﬁ" ligature and Å change under NFKD
    normalized = "file-secret-A\u030a".encode()
    expected = "hmac-sha256-hex=" + hmac.new(normalized, BODY, hashlib.sha256).hexdigest()
    assert EASYPOST.verify(BODY, {"X-Hmac-Signature": expected}, [secret]).valid
    raw_key = "hmac-sha256-hex=" + hmac.new(secret.encode(), BODY, hashlib.sha256).hexdigest()
    assert not EASYPOST.verify(BODY, {"X-Hmac-Signature": raw_key}, [secret]).valid
    assert EASYPOST.sign(BODY, secrets=[secret]) == {"X-Hmac-Signature": expected}


def test_a_custom_scheme_with_a_timestamp_header_and_template_verifies():
    scheme = HmacScheme(
        name="acme-wms",
        signature_header="X-Acme-Signature",
        algorithm="sha512",
        encoding="base64",
        prefix="v1=",
        signed_content="{id}:{timestamp}:{body}",
        timestamp_header="X-Acme-Timestamp",
        id_header="X-Acme-Delivery",
        tolerance=60,
    )
    digest = hmac.new(b"acme", f"dlv-9:{NOW}:".encode() + BODY, hashlib.sha512).digest()
    headers = {"X-Acme-Signature": "v1=" + base64.b64encode(digest).decode(), "X-Acme-Timestamp": str(NOW), "X-Acme-Delivery": "dlv-9"}
    result = scheme.verify(BODY, headers, ["acme"], now=NOW + 60)
    assert result.valid and (result.webhook_id, result.timestamp, result.age_seconds) == ("dlv-9", NOW, 60)
    assert scheme.verify(BODY, headers, ["acme"], now=NOW + 61).problem is SignatureProblem.TIMESTAMP_OUTSIDE_TOLERANCE
    assert (
        scheme.verify(BODY, {**headers, "X-Acme-Delivery": "dlv-10"}, ["acme"], now=NOW).problem is SignatureProblem.NO_MATCHING_SIGNATURE
    )
    without_id = {name: value for name, value in headers.items() if name != "X-Acme-Delivery"}
    assert scheme.verify(BODY, without_id, ["acme"], now=NOW).detail == "the X-Acme-Delivery header is missing"
    without_stamp = {name: value for name, value in headers.items() if name != "X-Acme-Timestamp"}
    assert scheme.verify(BODY, without_stamp, ["acme"], now=NOW).detail == "the X-Acme-Timestamp header is missing"
    assert scheme.sign(BODY, secrets=["acme"], timestamp=NOW, webhook_id="dlv-9") == headers


def test_sha1_hex_scheme_like_the_legacy_github_header():
    scheme = HmacScheme(name="legacy", signature_header="X-Hub-Signature", algorithm="sha1", prefix="sha1=")
    expected = "sha1=" + hmac.new(b"s", BODY, hashlib.sha1).hexdigest()
    assert scheme.verify(BODY, {"X-Hub-Signature": expected}, ["s"]).valid


def test_an_unsupported_algorithm_is_a_specific_rejection():
    scheme = HmacScheme(name="old", signature_header="X-Sig", algorithm="md5")
    result = scheme.verify(BODY, {"X-Sig": "00"}, ["s"])
    assert result.problem is SignatureProblem.UNSUPPORTED_ALGORITHM
    assert result.detail == "the old scheme names algorithm 'md5'; supported: sha1, sha256, sha512"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"encoding": "base32"}, "encoding 'base32' is not one of hex, base64"),
        ({"signed_content": "{timestamp}.{payload}", "timestamp_header": "X-T"}, "unknown fields payload"),
        ({"signed_content": "{body}{body}"}, "must contain {body} exactly once"),
        ({"signed_content": "{timestamp}.{body}"}, "uses {timestamp} but no timestamp header or field"),
        ({"timestamp_field": "t"}, "needs both its timestamp field and its signature field"),
        ({"tolerance": 300}, "a tolerance needs a timestamp header or field"),
        ({"secret_form": "rot13"}, "secret form 'rot13' is not one of text, nfkd, base64"),
    ],
)
def test_an_unusable_scheme_is_refused_when_it_is_defined(fields, message):
    with pytest.raises(ValueError, match=message.replace("{", r"\{").replace("}", r"\}")):
        HmacScheme(name="custom", signature_header="X-Sig", **fields)


def test_presets_are_listed_by_name_and_a_scheme_round_trips_through_plain_data():
    assert set(SCHEMES) == {"standard-webhooks", "github", "shopify", "stripe", "easypost"}
    assert SCHEMES["stripe"] is STRIPE
    stored = json.loads(json.dumps(asdict(STRIPE)))  # what a connection would keep in a JSON field
    assert HmacScheme(**stored) == STRIPE
