"""What the sandbox adds for `make run`'s demo, over real HTTP on loopback: a faultable health
route on every system, the TMS's OAuth2 client credentials and its order tenders (what the demo's
order release calls and compensates), and `python -m connectors.sandbox all`."""

from __future__ import annotations

import subprocess
import sys

import pytest
import requests

from connectors.sandbox import DEMO_BASE_PORT, SYSTEMS, ErpSandbox, TmsSandbox, demo_ports, demo_urls
from tests.processes import free_port_run

CLIENTS = {"baton-acme": "s3cret-acme"}
ORDER = {"order": {"order_id": "SO-9", "customer": "coyote", "total": 8400, "lines": [{"sku": "SKU-1", "qty": 3}]}}


def _token(tms: TmsSandbox, **options) -> requests.Response:
    return requests.post(f"{tms.url}/oauth/token", timeout=5, **options)


@pytest.fixture
def tms():
    with TmsSandbox(clients=CLIENTS) as running:
        yield running


def test_every_system_answers_health_and_a_fault_switched_on_shows_there():
    with ErpSandbox() as erp:
        assert requests.get(f"{erp.url}/health", timeout=5).json() | {"time": ""} == {
            "status": "ok",
            "system": "erp",
            "title": ErpSandbox.title,
            "time": "",
        }
        requests.post(f"{erp.url}/_sandbox/faults", json={"fail_next": 1}, timeout=5)
        assert requests.get(f"{erp.url}/health", timeout=5).status_code == 503
        assert requests.get(f"{erp.url}/health", timeout=5).status_code == 200


def test_faults_can_be_switched_with_curls_form_content_type():
    """`curl -d '{"fail_next": 3}' …` says application/x-www-form-urlencoded: the body is still JSON."""
    with ErpSandbox() as erp:
        answer = requests.post(
            f"{erp.url}/_sandbox/faults",
            data=b'{"fail_next": 3}',
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            timeout=5,
        )
        assert answer.json()["fail_next"] == 3


def test_the_tms_gives_a_known_client_a_bearer_token_by_basic_or_form_credentials(tms):
    by_basic = _token(tms, data={"grant_type": "client_credentials"}, auth=("baton-acme", "s3cret-acme"))
    assert by_basic.status_code == 200, by_basic.text
    assert by_basic.json()["token_type"] == "Bearer" and by_basic.json()["expires_in"] == 3600
    by_form = _token(tms, data={"grant_type": "client_credentials", "client_id": "baton-acme", "client_secret": "s3cret-acme"})
    assert by_form.status_code == 200 and by_form.json()["access_token"] != by_basic.json()["access_token"]

    token = by_basic.json()["access_token"]
    listed = requests.get(f"{tms.url}/api/tenders", headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert listed.json() == {"tenders": [], "count": 0}


def test_the_tms_refuses_wrong_clients_and_calls_without_its_token(tms):
    wrong = _token(tms, data={"grant_type": "client_credentials"}, auth=("baton-acme", "guess"))
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    assert _token(tms, data={"grant_type": "password"}, auth=("baton-acme", "s3cret-acme")).json()["error"] == "unsupported_grant_type"
    for headers in ({}, {"Authorization": "Bearer made-up"}, {"Authorization": "Basic YmF0b24tYWNtZTpzM2NyZXQtYWNtZQ=="}):
        refused = requests.get(f"{tms.url}/health", headers=headers, timeout=5)
        assert refused.status_code == 401, headers
        assert refused.json()["detail"] == "send Authorization: Bearer <token>, with a token from POST /oauth/token"
    assert requests.get(f"{tms.url}/_sandbox/faults", timeout=5).status_code == 200  # the admin routes never ask


def test_a_tms_without_clients_is_open():
    with TmsSandbox() as tms:
        assert requests.get(f"{tms.url}/api/tenders", timeout=5).status_code == 200
        assert _token(tms, data={"grant_type": "client_credentials"}, auth=("anyone", "x")).status_code == 401


def test_an_order_tender_is_planned_from_the_order_once_per_key_and_cancelled_by_order():
    with TmsSandbox() as tms:
        first = requests.post(f"{tms.url}/api/order-tenders", json=ORDER, headers={"Idempotency-Key": "run-7:tender"}, timeout=5)
        assert first.status_code == 201, first.text
        tender = first.json()
        assert (tender["shipment_reference"], tender["weight_kg"], tender["origin"]["city"]) == ("SO-9", 750, "Memphis")
        again = requests.post(f"{tms.url}/api/order-tenders", json=ORDER, headers={"Idempotency-Key": "run-7:tender"}, timeout=5)
        assert again.headers["Idempotent-Replayed"] == "true" and len(tms.effects_for("tender")) == 1

        cancel = {"order": {"order_id": "SO-9"}}
        cancelled = requests.post(
            f"{tms.url}/api/order-tenders/cancellations", json=cancel, headers={"Idempotency-Key": "run-7:cancel"}, timeout=5
        )
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        assert requests.get(f"{tms.url}/api/tenders/{tender['tender_id']}", timeout=5).json()["status"] == "cancelled"
        none_left = requests.post(
            f"{tms.url}/api/order-tenders/cancellations", json=cancel, headers={"Idempotency-Key": "run-8:cancel"}, timeout=5
        )
        assert none_left.status_code == 404 and none_left.json()["detail"] == "the TMS has no open tender for order SO-9"


def test_an_order_tender_names_what_is_missing_and_wants_a_key():
    with TmsSandbox() as tms:
        bad = requests.post(f"{tms.url}/api/order-tenders", json={"order": {"lines": []}}, headers={"Idempotency-Key": "k"}, timeout=5)
        assert bad.status_code == 422
        assert bad.json()["detail"] == "order.order_id is required; order.lines must be a non-empty list"
        keyless = requests.post(f"{tms.url}/api/order-tenders", json=ORDER, timeout=5)
        assert keyless.status_code == 400 and keyless.json()["detail"] == "POST /api/order-tenders needs an Idempotency-Key header"


def test_demo_ports_follow_baton_sandbox_port(monkeypatch):
    monkeypatch.delenv("BATON_SANDBOX_PORT", raising=False)
    assert demo_ports() == {"erp": DEMO_BASE_PORT, "tms": DEMO_BASE_PORT + 1, "wms": DEMO_BASE_PORT + 2, "carrier": DEMO_BASE_PORT + 3}
    monkeypatch.setenv("BATON_SANDBOX_PORT", "9100")
    assert demo_urls()["carrier"] == "http://127.0.0.1:9103"
    monkeypatch.setenv("BATON_SANDBOX_PORT", "nine")
    with pytest.raises(ValueError, match="BATON_SANDBOX_PORT must be a port number, not 'nine'"):
        demo_ports()
    with pytest.raises(ValueError, match="choose a first port from 1 to 65531"):
        demo_ports(65534)


def test_all_starts_every_system_on_consecutive_ports_with_the_demo_clients_and_stops_on_sigterm():
    first = free_port_run(len(SYSTEMS))
    process = subprocess.Popen([sys.executable, "-m", "connectors.sandbox", "all", "--port", str(first)], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline().strip() for _ in SYSTEMS]
        assert [line.split(" on ")[1].split(" ")[0] for line in lines] == [f"http://127.0.0.1:{first + n}" for n in range(4)]
        assert requests.get(f"http://127.0.0.1:{first + 3}/health", timeout=5).json()["system"] == "carrier"
        token = requests.post(
            f"http://127.0.0.1:{first + 1}/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=("baton-acme", "tms-sandbox-acme-2026"),
            timeout=5,
        )
        assert token.status_code == 200, token.text
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0


def test_all_says_which_port_is_taken():
    with ErpSandbox() as erp:
        port = erp.port
        taken = subprocess.run(
            [sys.executable, "-m", "connectors.sandbox", "all", "--port", str(port)], capture_output=True, text=True, timeout=30
        )
    assert taken.returncode == 2
    assert taken.stderr.startswith(f"cannot start the erp sandbox on port {port}: [Errno 98]")
    assert taken.stderr.strip().endswith("(another program has the port? set BATON_SANDBOX_PORT to another first port)")
