"""The outbound log: every call to a partner – a connector step's, the loopback fallback's, a Test
connection – is kept with its request and answer, credentials redacted (API key, Basic, OAuth2
bearer, secret-looking JSON keys and query values, a secret the partner echoes back), bodies cut
at 4 KiB with their size kept; a batch writes a round's calls with one INSERT; the connection's
"Outbound log" pages and API list and show them; old calls are purged."""

from __future__ import annotations

import base64
import html
import json
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection as django_connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tenants.utils import schema_context
from playwright.sync_api import sync_playwright

from accounts.services import api_key_create
from connectors import exchanges as exchanges_module
from connectors import tasks
from connectors.auth import credentials_seal
from connectors.exchanges import REDACTED, exchange_record, exchanges_batch, exchanges_purge
from connectors.models import Connection, ConnectorExchange
from connectors.outbound import ConnectionPort, HttpConnectorPort, guard_defaults
from connectors.sandbox import TmsSandbox
from connectors.services import connection_test
from governance.services import Actor
from tests.browser import CHROMIUM, CHROMIUM_ARGS, screenshot, sign_in
from tests.conftest import PASSWORD, host_client, signed_in_client
from tests.fake_partner import fake_partner
from tests.processes import free_port, web_server
from tests.workflows.runs_setup import definition_published, run_started
from workflows.engine import ConnectorError, FakeConnector, connector_port_set, runs_advance_ready

in_db = pytest.mark.django_db

API_KEY = "tms-key-0042-very-secret"
PASSWORD_SECRET = "basic-pass-7731-secret"
ACTOR = Actor.system("tests-exchanges")
TENDER = {"order": "SO-1", "pallets": 3}


@pytest.fixture
def partner():
    with fake_partner() as running:
        yield running


@pytest.fixture
def port():
    return ConnectionPort(FakeConnector(), *guard_defaults())


def _connection(base_url: str, key: str = "live-tms", **fields: Any) -> Connection:
    options: dict[str, Any] = {
        "name": "Live TMS",
        "kind": "tms",
        "base_url": base_url,
        "auth_method": "api_key",
        "auth_settings": {"header": "X-Partner-Key"},
        "credentials": credentials_seal({"key": API_KEY}),
        "settings": {"actions": {"tender_load": {"method": "POST", "path": f"/{key}/tender_load"}}},
        "connect_timeout": 2,
        "read_timeout": 5,
    }
    return Connection.objects.create(key=key, **{**options, **fields})


def _call(port: ConnectionPort, schema: str, key: str = "live-tms", payload: dict | None = None, idempotency_key: str = "41:tender"):
    return port.call(tenant=schema, connection=key, action="tender_load", payload=payload or TENDER, idempotency_key=idempotency_key)


def _stored(row: ConnectorExchange) -> str:
    """Everything the row keeps, as one text to search for secrets."""
    fields = [row.url, row.request_body, row.response_body, row.error, json.dumps(row.request_headers), json.dumps(row.response_headers)]
    return "\n".join(fields)


def _only(schema: str, **filters: Any) -> ConnectorExchange:
    with schema_context(schema):
        return ConnectorExchange.objects.get(**filters)


def _text(response) -> str:
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", response.content.decode())))


# ---------- what a call keeps ------------------------------------------------------------------------


@in_db
def test_a_call_is_kept_with_its_request_and_answer_and_the_api_key_redacted(world, partner, port):
    with schema_context(world.acme.schema):
        connection = _connection(partner.url)
    result = _call(port, world.acme.schema)

    assert result["accepted"] is True
    row = _only(world.acme.schema, connection=connection)
    assert (row.outcome, row.response_status, row.method, row.origin) == ("ok", 200, "POST", "step")
    assert row.url == f"{partner.url}/live-tms/tender_load" and row.action == "tender_load"
    assert (row.idempotency_key, row.run_id, row.step_id) == ("41:tender", 41, "tender")
    assert row.request_headers["X-Partner-Key"] == REDACTED
    assert row.request_headers["Idempotency-Key"] == "41:tender"  # a key in its name, but not a secret
    assert json.loads(row.request_body) == TENDER and row.request_size == len(json.dumps(TENDER))
    assert json.loads(row.response_body)["reference"] == "partner-1" and row.response_size == len(row.response_body)
    assert row.response_headers["Content-Type"] == "application/json"
    assert row.error == "" and row.duration_ms >= 0 and row.connection_key == "live-tms"
    # What the partner got carried the key; the log does not.
    assert partner.requests[0].headers["X-Partner-Key"] == API_KEY
    assert API_KEY not in _stored(row)


@in_db
def test_a_partner_echoing_the_key_in_its_failure_is_redacted_in_the_body_and_the_error(world, partner, port):
    with schema_context(world.acme.schema):
        connection = _connection(partner.url)
    partner.answer_next(500, {"title": "partner unavailable", "detail": f"key {API_KEY} is throttled", "token": "tok-12345"})

    with pytest.raises(ConnectorError) as caught:
        _call(port, world.acme.schema)

    assert caught.value.kind == "HttpServerError"
    row = _only(world.acme.schema, connection=connection)
    assert (row.outcome, row.response_status) == ("HttpServerError", 500)
    assert json.loads(row.response_body) == {"title": "partner unavailable", "detail": f"key {REDACTED} is throttled", "token": REDACTED}
    assert row.error.startswith("live-tms tender_load failed: HTTP 500") and REDACTED in row.error
    assert API_KEY not in _stored(row) and "tok-12345" not in _stored(row)


@in_db
def test_a_timeout_is_kept_with_what_was_sent_and_no_answer(world, partner, port):
    with schema_context(world.acme.schema):
        connection = _connection(partner.url, read_timeout=0.3)
    partner.delay_next(2.0)

    with pytest.raises(ConnectorError) as caught:
        _call(port, world.acme.schema)

    assert caught.value.kind == "Timeout"
    row = _only(world.acme.schema, connection=connection)
    assert (row.outcome, row.response_status, row.response_body, row.response_size) == ("Timeout", None, "", None)
    assert "gave no answer within" in row.error and row.duration_ms >= 250
    assert row.request_headers["X-Partner-Key"] == REDACTED and json.loads(row.request_body) == TENDER


@in_db
def test_nobody_listening_is_kept_as_a_connection_error(world, port):
    with schema_context(world.acme.schema):
        connection = _connection(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ConnectorError):
        _call(port, world.acme.schema)
    row = _only(world.acme.schema, connection=connection)
    assert (row.outcome, row.response_status) == ("ConnectionError", None) and "could not be reached" in row.error


@in_db
def test_basic_auth_secret_json_keys_and_query_values_are_redacted(world, partner, port):
    with schema_context(world.acme.schema):
        connection = _connection(
            partner.url,
            auth_method="basic",
            auth_settings={"username": "baton"},
            credentials=credentials_seal({"password": PASSWORD_SECRET}),
            settings={"actions": {"tender_load": {"path": "/live-tms/tender_load?api_key=QUERY-SECRET-1&page=2"}}},
        )
    payload = {
        "order": "SO-9",
        "password": "hunter2-payload",
        "contact": {"name": "Dock 4", "client_secret": "cs-payload-777"},
        "lines": [{"sku": "A-1", "Api-Key": "line-key-888"}],
        "note": f"sent with {PASSWORD_SECRET}",
    }
    partner.answer_next(200, {"ok": True, "access_token": "partner-token-999", "echo": {"refresh_token": "rt-1"}})

    _call(port, world.acme.schema, payload=payload)

    row = _only(world.acme.schema, connection=connection)
    pair = base64.b64encode(f"baton:{PASSWORD_SECRET}".encode()).decode()
    assert partner.requests[0].headers["Authorization"] == f"Basic {pair}"
    assert row.request_headers["Authorization"] == REDACTED
    assert row.url == f"{partner.url}/live-tms/tender_load?api_key={REDACTED}&page=2"
    assert json.loads(row.request_body) == {
        "order": "SO-9",
        "password": REDACTED,
        "contact": {"name": "Dock 4", "client_secret": REDACTED},
        "lines": [{"sku": "A-1", "Api-Key": REDACTED}],
        "note": f"sent with {REDACTED}",
    }
    assert json.loads(row.response_body) == {"ok": True, "access_token": REDACTED, "echo": {"refresh_token": REDACTED}}
    stored = _stored(row)
    for secret in (PASSWORD_SECRET, pair, "QUERY-SECRET-1", "hunter2-payload", "cs-payload-777", "line-key-888", "partner-token-999"):
        assert secret not in stored, secret


@in_db
def test_an_oauth2_bearer_token_and_client_secret_are_redacted(world, port):
    with TmsSandbox(clients={"baton": "oauth-client-secret-55"}) as tms, schema_context(world.acme.schema):
        connection = _connection(
            tms.url,
            auth_method="oauth2_client_credentials",
            auth_settings={"token_url": tms.url + "/oauth/token", "client_id": "baton", "client_auth": "basic"},
            credentials=credentials_seal({"client_secret": "oauth-client-secret-55"}),
            settings={"actions": {"tender_load": {"path": "/api/tenders"}}},
        )
        tender = {
            "shipment_reference": "SO-7",
            "origin": {"city": "Reno", "country": "US"},
            "destination": {"city": "Denver", "country": "US"},
            "pickup_date": "2026-12-01",
            "weight_kg": 1200,
        }
        result = _call(port, world.acme.schema, payload=tender)
        (sent,) = [request for request in tms.requests if request.path == "/api/tenders"]
    assert result["tender_id"].startswith("TND-")
    token = sent.headers["Authorization"].partition(" ")[2]
    row = _only(world.acme.schema, connection=connection)
    assert row.request_headers["Authorization"] == REDACTED and row.outcome == "ok"
    assert token not in _stored(row) and "oauth-client-secret-55" not in _stored(row)


@in_db
def test_large_bodies_are_cut_at_4_kib_with_their_whole_size_kept(world, partner, port):
    with schema_context(world.acme.schema):
        connection = _connection(partner.url)
    payload = {"order": "SO-big", "notes": "é" * 6000}  # two bytes each: the cut must not split one
    partner.answer_next(200, {"accepted": True, "log": "x" * 20000})

    _call(port, world.acme.schema, payload=payload)

    row = _only(world.acme.schema, connection=connection)
    assert row.request_size == len(json.dumps(payload).encode()) and row.request_cut
    assert 4090 <= len(row.request_body.encode()) <= 4096 and row.request_body.startswith('{"order": "SO-big"')
    assert row.response_size > 20000 and row.response_cut and len(row.response_body.encode()) == 4096


@in_db
def test_the_loopback_fallback_is_kept_under_the_name_it_was_called_by(world, partner):
    port = ConnectionPort(HttpConnectorPort(partner.url), *guard_defaults())
    port.call(tenant=world.acme.schema, connection="acme-erp", action="order_confirm", payload=TENDER, idempotency_key="77.1:confirm#2")
    row = _only(world.acme.schema, connection_key="acme-erp")
    assert (row.connection_id, row.outcome, row.action, row.response_status) == (None, "ok", "order_confirm", 200)
    assert (row.run_id, row.step_id) == (77, "confirm")
    assert row.request_headers["X-Baton-Tenant"] == world.acme.schema


@in_db
def test_test_connection_is_kept_too_with_what_stopped_it(world):
    with TmsSandbox() as tms, schema_context(world.acme.schema):
        health_url = tms.url + "/health"
        reachable = _connection(tms.url, key="reachable-tms", health_path="/health")
        closed = _connection(f"http://127.0.0.1:{free_port()}", key="closed-tms", connect_timeout=1)
        assert connection_test(connection=reachable, actor=ACTOR).ok
        assert not connection_test(connection=closed, actor=ACTOR).ok
        ok = ConnectorExchange.objects.get(connection=reachable)
        failed = ConnectorExchange.objects.get(connection=closed)
    assert (ok.origin, ok.method, ok.outcome, ok.response_status, ok.url) == ("test", "GET", "ok", 200, health_url)
    assert ok.request_headers["X-Partner-Key"] == REDACTED and API_KEY not in _stored(ok)
    assert (failed.origin, failed.outcome, failed.response_status) == ("test", "ConnectionError", None)
    assert failed.error == "Could not connect: connection refused"


@in_db
def test_a_log_that_cannot_be_written_never_fails_the_call(world, partner):
    """A schema without the table: the call still answers, and the caller's transaction stays usable."""
    result = HttpConnectorPort(partner.url).call(
        tenant="no_such_schema", connection="acme-tms", action="tender_load", payload=TENDER, idempotency_key="1:a"
    )
    assert result["accepted"] is True
    with schema_context(world.acme.schema):
        assert Connection.objects.count() >= 0  # would raise if the failed INSERT had broken the transaction


# ---------- batches ----------------------------------------------------------------------------------


@pytest.fixture
def copies(monkeypatch):
    """The row counts of each COPY the log writes (COPY does not pass Django's query capture)."""
    written: list[int] = []
    real = exchanges_module._copy_rows

    def counted(rows):
        written.append(len(rows))
        return real(rows)

    monkeypatch.setattr(exchanges_module, "_copy_rows", counted)
    return written


def _inserts(captured: CaptureQueriesContext) -> list[str]:
    """Row-by-row INSERTs of the log (there must be none: it is written by COPY)."""
    return [query["sql"] for query in captured.captured_queries if query["sql"].startswith('INSERT INTO "connectors_connectorexchange"')]


@in_db
def test_a_batch_writes_a_rounds_calls_from_other_threads_with_one_copy(world, partner, port, copies):
    with schema_context(world.acme.schema):
        connection = _connection(partner.url)
        port.prepare(world.acme.schema, ["live-tms"])  # the engine reads connections on its own thread
        partner.answer_next(500, "down", times=2)
        with CaptureQueriesContext(django_connection) as captured:
            with port.batch() as batch, ThreadPoolExecutor(max_workers=4) as pool:  # how the engine's round opens it
                futures = [pool.submit(_call_or_error, port, world.acme.schema, f"{n}:tender") for n in range(10)]
                outcomes = sorted(future.result() for future in futures)
                assert len(batch) == 10 and ConnectorExchange.objects.filter(connection=connection).count() == 0
        assert outcomes == ["HttpServerError"] * 2 + ["ok"] * 8
        assert _inserts(captured) == [] and copies == [10]
        rows = list(ConnectorExchange.objects.filter(connection=connection))
    assert sorted(row.run_id for row in rows) == list(range(10))
    assert sorted(row.outcome for row in rows) == outcomes


def _call_or_error(port: ConnectionPort, schema: str, key: str) -> str:
    try:
        _call(port, schema, idempotency_key=key)
    except ConnectorError as error:
        return error.kind
    return "ok"


@in_db
def test_a_round_of_workflow_steps_is_kept_with_runs_and_steps_in_one_copy(world, partner, port, copies):
    """The engine opens the port's batch around a round's calls (`workflows.engine.connector_calls`):
    they go out on the engine's own thread pool, and their rows, with each run and step, are
    written once the round is done."""
    with schema_context(world.acme.schema):
        connection = _connection(partner.url)
    definition = definition_published(world.acme, bindings={"carrier": "live-tms"})
    runs = [run_started(world.acme, definition, input={"order_id": f"SO-{n}", "total": 10, "lines": [{"sku": "A"}]}) for n in range(4)]
    previous = connector_port_set(port)
    try:
        with schema_context(world.acme.schema), CaptureQueriesContext(django_connection) as captured:
            statuses = runs_advance_ready(owner="worker-outlog", limit=100, lease_seconds=60)
            rows = list(ConnectorExchange.objects.filter(connection=connection).order_by("run_id"))
    finally:
        connector_port_set(previous)
    assert [statuses[run.pk] for run in runs] == ["succeeded"] * 4
    assert _inserts(captured) == [] and copies == [4]
    assert [(row.run_id, row.step_id, row.outcome) for row in rows] == [(run.pk, "tender", "ok") for run in runs]
    assert all(json.loads(row.request_body)["order"].startswith("SO-") for row in rows)


@in_db
def test_outside_a_batch_each_call_is_written_at_once_and_nested_batches_write_once(world, partner, port, copies):
    with schema_context(world.acme.schema):
        connection = _connection(partner.url)
        _call(port, world.acme.schema, idempotency_key="1:a")
        assert ConnectorExchange.objects.filter(connection=connection).count() == 1
        with CaptureQueriesContext(django_connection) as captured:
            with exchanges_batch() as outer:
                _call(port, world.acme.schema, idempotency_key="2:a")
                with exchanges_batch() as inner:
                    _call(port, world.acme.schema, idempotency_key="3:a")
                assert inner is outer and len(outer) == 2
        assert _inserts(captured) == [] and copies == [1, 2]
        assert ConnectorExchange.objects.filter(connection=connection).count() == 3


@in_db
def test_a_row_recorded_after_its_batch_closed_is_written_by_itself(world):
    """A straggler from another thread finds the batch closed and writes its own row."""
    with schema_context(world.acme.schema):
        with exchanges_batch() as batch:
            pass
        assert not batch.is_open
        done = threading.Event()

        def record() -> None:
            exchange_record(
                tenant=world.acme.schema,
                connection=None,
                connection_key="late-partner",
                action="ping",
                method="POST",
                url="http://127.0.0.1:9/ping",
                request_headers={},
                outcome="Timeout",
            )
            done.set()

        record()  # this thread: the batch is gone, so it is written now
        assert done.is_set()
        assert ConnectorExchange.objects.filter(connection_key="late-partner").count() == 1


# ---------- retention --------------------------------------------------------------------------------


def _aged(schema: str, key: str, days_ago: float, count: int = 1) -> None:
    with schema_context(schema):
        ConnectorExchange.objects.bulk_create(
            [
                ConnectorExchange(
                    connection_key=key,
                    method="POST",
                    url="http://127.0.0.1:9/x",
                    outcome="ok",
                    created_at=timezone.now() - timedelta(days=days_ago),
                )
                for _ in range(count)
            ]
        )


@in_db
def test_calls_older_than_the_retention_are_purged_in_chunks(world, settings):
    settings.BATON_CONNECTOR_EXCHANGE_DAYS = 3
    _aged(world.acme.schema, "old-partner", 4, count=5)
    _aged(world.acme.schema, "new-partner", 2, count=2)
    _aged(world.globex.schema, "old-partner", 4)
    with schema_context(world.acme.schema):
        result = exchanges_purge(chunk=2)
        assert (result["deleted"], result["complete"], result["days"]) == (5, True, 3)
        assert sorted(ConnectorExchange.objects.values_list("connection_key", flat=True)) == ["new-partner", "new-partner"]
        stopped = exchanges_purge(days=1, time_limit=0)
        assert (stopped["deleted"], stopped["complete"]) == (0, False)  # the time limit: the task goes on in a new one
        assert ConnectorExchange.objects.count() == 2
    with schema_context(world.globex.schema):
        assert tasks.exchanges_purge.run()["deleted"] == 1  # the task, in the tenant's schema
        assert not ConnectorExchange.objects.exists()


def test_beat_purges_the_log_daily_for_every_tenant():
    from django.conf import settings as django_settings

    entry = django_settings.CELERY_BEAT_SCHEDULE["connectors-exchanges-purge"]
    assert entry["task"] == "connectors.exchanges_purge_all" and django_settings.BATON_CONNECTOR_EXCHANGE_DAYS == 14


# ---------- pages ------------------------------------------------------------------------------------


def _client(world, role: str = "tenant_admin", tenant: str = "acme"):
    place = getattr(world, tenant)
    return signed_in_client(place.host, place.users[role], place.schema)


def _rows(connection: Connection, count: int, outcome: str = "ok", status: int | None = 200) -> list[ConnectorExchange]:
    return ConnectorExchange.objects.bulk_create(
        [
            ConnectorExchange(
                connection=connection,
                connection_key=connection.key,
                action="tender_load",
                method="POST",
                url=f"{connection.base_url}/tender_load",
                response_status=status,
                outcome=outcome,
                error="" if outcome == "ok" else f"{connection.key} tender_load failed: HTTP {status}",
                idempotency_key=f"{900 + n}:tender",
                run_id=900 + n,
                step_id="tender",
                created_at=timezone.now(),
            )
            for n in range(count)
        ]
    )


@in_db
def test_the_outbound_log_lists_calls_filters_by_outcome_and_pages(world, partner, port):
    with schema_context(world.acme.schema):
        connection = _connection(partner.url)
        _rows(connection, 30)
        partner.answer_next(500, {"detail": f"bad key {API_KEY}"})
    with pytest.raises(ConnectorError):
        _call(port, world.acme.schema, idempotency_key="4242:tender")
    client = _client(world, "dispatcher")  # any staff member may look

    first = client.get("/connections/live-tms/outbound/")
    assert first.status_code == 200
    text = _text(first)
    assert "Outbound log" in text and "Run #4242" in text and "Partner failed (5xx)" in text and "HTTP 500" in text
    assert API_KEY not in first.content.decode()
    assert text.count("Call #") == 25 and "Older ›" in text
    older = re.search(r'href="\?before=(\d+)"', first.content.decode())
    assert older is not None
    second = _text(client.get(f"/connections/live-tms/outbound/?before={older.group(1)}"))
    assert second.count("Call #") == 6 and "‹ Newer" in second

    failed = _text(client.get("/connections/live-tms/outbound/?outcome=failed"))
    assert failed.count("Call #") == 1 and "Run #4242" in failed
    assert _text(client.get("/connections/live-tms/outbound/?outcome=Timeout")).count("Call #") == 0
    assert "No calls with this outcome" in _text(client.get("/connections/live-tms/outbound/?outcome=Timeout"))
    detail = _text(client.get("/connections/live-tms/"))
    assert "Outbound log" in detail


@in_db
def test_an_empty_log_says_how_to_fill_it(world):
    with schema_context(world.acme.schema):
        _connection("https://tms.example.com")
    admin = _text(_client(world).get("/connections/live-tms/outbound/"))
    assert "No calls yet Use “Test connection” above, or run a workflow whose connector step calls “live-tms”" in admin
    viewer = _client(world, "finance").get("/connections/live-tms/outbound/")
    assert "ask a tenant admin or planner to test the connection" in _text(viewer)
    assert "/connections/live-tms/test/" not in viewer.content.decode()  # no Test connection button for those who may not


@in_db
def test_a_call_page_shows_the_redacted_request_and_answer(world, partner, port):
    with schema_context(world.acme.schema):
        connection = _connection(partner.url)
        partner.answer_next(422, {"detail": f"{API_KEY} cannot tender SO-1", "password": "pw-in-answer"})
    with pytest.raises(ConnectorError):
        _call(port, world.acme.schema)
    row = _only(world.acme.schema, connection=connection)
    client = _client(world, "planner")

    page = client.get(f"/connections/live-tms/outbound/{row.pk}/")

    assert page.status_code == 200
    text = _text(page)
    assert f"Call #{row.pk}" in text and "Refused by the partner (4xx)" in text and "HTTP 422" in text
    assert f"POST {partner.url}/live-tms/tender_load" in text and "X-Partner-Key" in text and REDACTED in text
    assert '"pallets": 3' in text and "cannot tender SO-1" in text and "Run #41" in text
    assert API_KEY not in page.content.decode() and "pw-in-answer" not in page.content.decode()
    # Another connection's URL does not show this call; a customer user sees no log at all.
    with schema_context(world.acme.schema):
        _connection(partner.url, key="other-tms")
    assert client.get(f"/connections/other-tms/outbound/{row.pk}/").status_code == 404
    assert client.get("/connections/nowhere/outbound/").status_code == 404
    assert _client(world, "customer").get(f"/connections/live-tms/outbound/{row.pk}/").status_code == 403


# ---------- API --------------------------------------------------------------------------------------


def _api(world, scopes=("connections:read",)):
    with schema_context(world.acme.schema):
        _key, secret = api_key_create(name="exchanges", scopes=list(scopes), actor=world.acme.users["tenant_admin"])
    return host_client(world.acme.host), {"HTTP_AUTHORIZATION": f"Api-Key {secret}"}


@in_db
def test_the_api_lists_a_connections_calls_in_cursor_pages_and_shows_one(world, partner, port):
    with schema_context(world.acme.schema):
        connection = _connection(partner.url)
        _rows(connection, 3)
        partner.answer_next(500, {"detail": f"bad key {API_KEY}"})
    with pytest.raises(ConnectorError):
        _call(port, world.acme.schema, idempotency_key="4242:tender")
    client, auth = _api(world)

    listed = client.get("/api/v1/connections/live-tms/exchanges?page_size=2", **auth)
    assert listed.status_code == 200, listed.content
    body = listed.json()
    first = body["results"][0]
    assert (first["outcome"], first["response_status"], first["run_id"], first["step_id"]) == ("HttpServerError", 500, 4242, "tender")
    assert first["connection"] == "live-tms" and "request_body" not in first and len(body["results"]) == 2 and body["next"]
    rest = client.get(body["next"], **auth).json()
    assert len(rest["results"]) == 2 and rest["next"] is None

    failed = client.get("/api/v1/connections/live-tms/exchanges?outcome=failed", **auth).json()["results"]
    assert [item["id"] for item in failed] == [first["id"]]
    refused = client.get("/api/v1/connections/live-tms/exchanges?outcome=nope", **auth)
    assert refused.status_code == 400 and refused["Content-Type"] == "application/problem+json"
    assert refused.json()["errors"][0]["pointer"] == "outcome"

    detail = client.get(f"/api/v1/connections/live-tms/exchanges/{first['id']}", **auth)
    assert detail.status_code == 200
    shown = detail.json()
    assert shown["request_headers"]["X-Partner-Key"] == REDACTED and json.loads(shown["request_body"]) == TENDER
    assert shown["response_body"] == json.dumps({"detail": f"bad key {REDACTED}"}) and shown["response_cut"] is False
    assert API_KEY not in detail.content.decode()
    missing = client.get("/api/v1/connections/live-tms/exchanges/999999", **auth)
    assert missing.status_code == 404 and missing["Content-Type"] == "application/problem+json"
    assert client.get("/api/v1/connections/nowhere/exchanges", **auth).status_code == 404
    unscoped_client, unscoped = _api(world, scopes=())
    assert unscoped_client.get("/api/v1/connections/live-tms/exchanges", **unscoped).status_code == 403


# ---------- in a browser -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def live_port(tmp_path_factory, django_db_setup):
    with web_server(tmp_path_factory.mktemp("exchanges-web") / "web.log") as port:
        yield port


@pytest.fixture
def browser_log(world, committed):
    """Globex's connections and calls are removed afterwards (committed, for the web server to see)."""
    yield
    with schema_context(world.globex.schema):
        ConnectorExchange.objects.all().delete()
        Connection.objects.all().delete()


@pytest.mark.browser
def test_a_planner_reads_the_outbound_log_and_a_failed_call_in_the_browser(world, live_port, browser_log, partner):
    base = f"http://globex.localhost:{live_port}"
    planner = world.globex.users["planner"]
    with schema_context(world.globex.schema):
        connection = _connection(partner.url, key="globex-tms", name="Globex TMS")
    port = ConnectionPort(FakeConnector(), *guard_defaults())

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1366, "height": 900}).new_page()
        sign_in(page, base, planner.email, PASSWORD)
        page.goto(base + "/connections/globex-tms/")
        page.get_by_role("link", name="Outbound log").first.click()
        page.wait_for_load_state()
        empty = page.locator(".empty__text").inner_text()
        screenshot(page, "outbound-log-empty")
        browser.close()

    # The database is not for Playwright's event loop: the calls go out between the two sessions.
    for n in range(6):
        _call(port, world.globex.schema, key="globex-tms", payload={**TENDER, "order": f"SO-{n}"}, idempotency_key=f"{310 + n}:tender")
    partner.answer_next(422, {"title": "Unprocessable", "detail": f"weight_kg must be positive (key {API_KEY})"})
    with pytest.raises(ConnectorError):
        _call(port, world.globex.schema, key="globex-tms", payload={**TENDER, "weight_kg": -5}, idempotency_key="316:tender")
    with schema_context(world.globex.schema):
        failed = ConnectorExchange.objects.get(connection=connection, run_id=316)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1366, "height": 900}).new_page()
        sign_in(page, base, planner.email, PASSWORD)
        page.goto(base + "/connections/globex-tms/outbound/")
        listed = page.locator("table").inner_text()
        screenshot(page, "outbound-log")
        page.get_by_role("link", name=f"Call #{failed.pk}").click()
        page.wait_for_load_state()
        page.locator("details.ops-details summary").first.click()
        shown = page.locator("main").inner_text()
        screenshot(page, "outbound-log-call")
        browser.close()

    assert "Test connection" in empty and "globex-tms" in empty
    assert "Run #316" in listed and "Refused by the partner (4xx)" in listed and listed.count("HTTP 200") == 6
    assert "weight_kg must be positive" in shown and API_KEY not in shown and REDACTED in shown
