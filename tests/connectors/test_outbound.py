"""`HttpConnectorPort` against the loopback fake partner: what it sends, how answers map to the
error kinds a step's retry policy names, and that nothing off this machine is accepted."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django_tenants.utils import schema_context

from connectors.outbound import ConnectionPort, HttpConnectorPort, OutboundCallFailed, port_from_settings
from tests.fake_partner import FakePartner, fake_partner
from tests.processes import free_port
from tests.workflows.runs_setup import definition_published, run_advanced, run_started, run_timeline
from workflows.engine import ConnectorError, FakeConnector, connector_port, connector_port_set

CALL = {"tenant": "t_acme", "connection": "acme-tms", "action": "tender_load", "payload": {"order": "SO-1", "pallets": 3}}


@pytest.fixture
def partner():
    with fake_partner() as running:
        yield running


def _call(port: HttpConnectorPort, key: str = "41:tender", **overrides) -> dict:
    return port.call(**{**CALL, **overrides}, idempotency_key=key)


def _failure(port: HttpConnectorPort, **overrides) -> OutboundCallFailed:
    with pytest.raises(OutboundCallFailed) as caught:
        _call(port, **overrides)
    assert isinstance(caught.value, ConnectorError)  # what the engine catches
    return caught.value


def test_a_call_posts_the_payload_as_json_with_the_idempotency_key_and_tenant(partner):
    result = _call(HttpConnectorPort(partner.url))
    assert result == {"accepted": True, "connection": "acme-tms", "action": "tender_load", "reference": "partner-1"}
    (request,) = partner.requests
    assert (request.path, request.body) == ("/acme-tms/tender_load", {"order": "SO-1", "pallets": 3})
    assert request.headers["Idempotency-Key"] == "41:tender"
    assert request.headers["X-Baton-Tenant"] == "t_acme"
    assert request.headers["Content-Type"] == "application/json"


def test_connection_and_action_are_quoted_into_one_path_segment_each(partner):
    _call(HttpConnectorPort(partner.url + "/"), connection="acme tms/eu", action="tender?load")
    assert partner.requests[0].path == "/acme%20tms%2Feu/tender%3Fload"


def test_a_repeated_key_gets_the_first_answer_and_makes_no_second_effect(partner):
    port = HttpConnectorPort(partner.url)
    first, again = _call(port), _call(port)
    assert again == first
    assert partner.request_count() == 2 and partner.effect_count() == 1
    assert [request.replayed for request in partner.requests_for("41:tender")] == [False, True]
    assert len(partner.effects_for("41:tender")) == 1


def test_the_same_key_in_another_tenant_is_another_effect(partner):
    port = HttpConnectorPort(partner.url)
    _call(port), _call(port, tenant="t_globex")
    assert partner.effect_count() == 2
    assert [effect.tenant for effect in partner.effects_for("41:tender")] == ["t_acme", "t_globex"]


def test_a_4xx_answer_is_an_http_client_error_with_status_and_excerpt(partner):
    partner.answer_next(422, {"title": "unknown lane", "detail": "lane DE-PL is not contracted"})
    error = _failure(HttpConnectorPort(partner.url))
    assert (error.kind, error.status) == ("HttpClientError", 422)
    assert "lane DE-PL is not contracted" in error.excerpt
    assert str(error).startswith("acme-tms/tender_load refused the call: HTTP 422:")
    assert partner.effect_count() == 0


def test_a_5xx_answer_is_an_http_server_error_and_a_retry_with_the_same_key_succeeds_once(partner):
    port = HttpConnectorPort(partner.url)
    partner.fail_next(times=2)
    assert _failure(port).kind == "HttpServerError"
    error = _failure(port)
    assert (error.kind, error.status) == ("HttpServerError", 500)
    assert _call(port)["accepted"] is True
    assert partner.request_count() == 3 and len(partner.effects_for("41:tender")) == 1


def test_a_long_excerpt_is_cut_short(partner):
    partner.answer_next(503, "x" * 5000)
    error = _failure(HttpConnectorPort(partner.url))
    assert len(error.excerpt) == 200 and error.excerpt.endswith("…")


def test_a_partner_slower_than_the_timeout_is_a_timeout(partner):
    partner.delay = 1.0
    error = _failure(HttpConnectorPort(partner.url, timeout=0.2))
    assert error.kind == "Timeout" and error.status is None
    assert str(error) == "acme-tms/tender_load gave no answer within 0.2 s"


def test_after_a_timeout_the_retry_with_the_same_key_gets_the_effect_already_made(partner):
    """A timeout does not say whether the partner acted: here it did, and the key keeps the retry from doing it again."""
    port = HttpConnectorPort(partner.url, timeout=0.3)
    partner.delay_next(1.0)
    assert _failure(port).kind == "Timeout"
    assert partner.effect_count() == 1
    assert _call(port)["reference"] == "partner-1"
    assert partner.effect_count() == 1 and partner.request_count() == 2


def test_nobody_listening_is_a_connection_error():
    error = _failure(HttpConnectorPort(f"http://127.0.0.1:{free_port()}"))
    assert error.kind == "ConnectionError"
    assert "could not be reached" in str(error)


@pytest.mark.parametrize(
    ("status", "body", "content_type"),
    [(200, "<html>ok</html>", "text/html"), (200, "", "text/plain"), (201, "[1, 2]", "application/json")],
)
def test_a_2xx_answer_without_a_json_object_is_a_bad_response(partner, status, body, content_type):
    partner.answer_next(status, body, content_type=content_type)
    error = _failure(HttpConnectorPort(partner.url))
    assert (error.kind, error.status) == ("BadResponse", status)
    assert "without a JSON object" in str(error)


def test_a_redirect_is_not_followed(partner):
    partner.answer_next(302, "moved")
    error = _failure(HttpConnectorPort(partner.url))
    assert (error.kind, error.status) == ("BadResponse", 302)
    assert partner.request_count() == 1


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080", "http://127.0.0.2:9000/partner", "https://localhost", "http://[::1]:8080/"])
def test_loopback_urls_are_accepted(url):
    assert HttpConnectorPort(url).base_url == url.rstrip("/")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://10.0.0.5:8080", "points at 10.0.0.5, which is not this machine"),
        ("http://partner.example.com/api", "points at partner.example.com, which is not this machine"),
        ("http://0.0.0.0:8080", "points at 0.0.0.0, which is not this machine"),
        ("ftp://127.0.0.1/", "must be an http:// or https:// URL"),
        ("127.0.0.1:8080", "must be an http:// or https:// URL"),
    ],
)
def test_a_url_off_this_machine_is_refused(url, reason):
    with pytest.raises(ImproperlyConfigured, match=reason):
        HttpConnectorPort(url)


def test_the_setting_selects_the_fallback_and_refuses_other_hosts(settings):
    in_process = FakeConnector()
    settings.BATON_CONNECTOR_HTTP_URL = ""
    port = port_from_settings(fallback=in_process)
    assert isinstance(port, ConnectionPort) and port.fallback is in_process
    settings.BATON_CONNECTOR_HTTP_URL = "http://127.0.0.1:8099/"
    port = port_from_settings(fallback=in_process)
    assert isinstance(port.fallback, HttpConnectorPort) and port.fallback.base_url == "http://127.0.0.1:8099"
    settings.BATON_CONNECTOR_HTTP_URL = "http://192.168.1.20:8099"
    with pytest.raises(ImproperlyConfigured, match="only loopback hosts"):
        port_from_settings(fallback=in_process)


def test_app_start_installs_the_connection_port_over_the_fallback_once(settings):
    config = apps.get_app_config("connectors")
    previous = connector_port()
    try:
        settings.BATON_CONNECTOR_HTTP_URL = ""
        config.ready()
        config.ready()  # started twice: still one layer over the in-process fake
        port = connector_port()
        assert isinstance(port, ConnectionPort) and isinstance(port.fallback, FakeConnector)
        settings.BATON_CONNECTOR_HTTP_URL = "http://127.0.0.1:8099"
        config.ready()
        assert isinstance(connector_port().fallback, HttpConnectorPort)
    finally:
        connector_port_set(previous)


@pytest.mark.django_db
def test_a_connector_step_reaches_the_partner_once_with_its_run_key(world, partner: FakePartner):
    previous = connector_port_set(HttpConnectorPort(partner.url))
    try:
        definition = definition_published(world.acme)
        run = run_advanced(world.acme, run_started(world.acme, definition))
    finally:
        connector_port_set(previous)
    assert run.status == "succeeded"
    assert run.context["tender"] == {"accepted": True, "connection": "acme-tms", "action": "tender_load", "reference": "partner-1"}
    (effect,) = partner.effects_for(f"{run.pk}:tender", tenant=world.acme.schema)
    assert effect.payload == {"order": "SO-1", "threshold": 1000}
    assert [step for step, *_ in run_timeline(world.acme, run)] == ["check", "price", "tender", "done"]


@pytest.mark.django_db
def test_a_partner_error_fails_the_step_with_its_kind_in_the_message(world, partner: FakePartner):
    previous = connector_port_set(HttpConnectorPort(partner.url))
    partner.answer_next(409, {"title": "load already tendered elsewhere"})
    try:
        definition = definition_published(world.acme)
        run = run_advanced(world.acme, run_started(world.acme, definition))
    finally:
        connector_port_set(previous)
    with schema_context(world.acme.schema):
        run.refresh_from_db()
    assert run.status == "failed"
    assert "connector acme-tms tender_load failed: acme-tms/tender_load refused the call: HTTP 409" in run.error
    assert "load already tendered elsewhere" in run.error
    assert partner.effect_count() == 0
