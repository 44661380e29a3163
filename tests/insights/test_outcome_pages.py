"""The outcomes page and API: tenant staff see the five metrics with baseline, now and the change in
words; customers and customers' keys are refused; a period that cannot be measured says why."""

from __future__ import annotations

import html
import json
import re
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone
from django_tenants.utils import schema_context

from accounts.services import api_key_create
from logistics.models import ExceptionCase
from logistics.services import exception_close, exception_open
from tests.conftest import host_client, signed_in_client
from tests.insights.conftest import SYSTEM, account

pytestmark = pytest.mark.django_db


def _client(world, role="planner", tenant="acme"):
    place = getattr(world, tenant)
    return signed_in_client(place.host, place.users[role], place.schema)


def _text(response) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode())))


def _exceptions_handled(tenant_world, durations_hours, *, closed_days_ago: float):
    """Exceptions closed `closed_days_ago` before the real now, each open for its duration."""
    with schema_context(tenant_world.schema):
        closed = timezone.now() - timedelta(days=closed_days_ago)
        for hours in durations_hours:
            case = exception_open(type="other", reason="page test", customer_account=account(tenant_world), actor=SYSTEM).exception
            case = exception_close(exception=case, root_cause="carrier", actor=SYSTEM)
            ExceptionCase.objects.filter(pk=case.pk).update(opened_at=closed - timedelta(hours=hours), closed_at=closed)


def _key(tenant_world, *scopes, customer_account_id=None) -> str:
    with schema_context(tenant_world.schema):
        _key, secret = api_key_create(
            name="insights", scopes=list(scopes), actor=tenant_world.users["tenant_admin"], customer_account_id=customer_account_id
        )
    return secret


def test_every_staff_role_sees_the_five_outcomes_with_baseline_now_and_the_change_in_words(world):
    _exceptions_handled(world.acme, [6, 10], closed_days_ago=40)  # the baseline: the 30 days before the last 30
    _exceptions_handled(world.acme, [2, 3, 4], closed_days_ago=5)
    for role in ("tenant_admin", "planner", "dispatcher", "customer_service", "finance"):
        response = _client(world, role).get("/insights/outcomes/")
        assert response.status_code == 200, role
    text = _text(response)
    for label in ("Order cycle time", "Exception handling time", "On-time delivery", "POD-to-invoice lag", "Dispute rate"):
        assert label in text
    assert "Baseline 8 h median, 90th percentile 9 h 36 min; 2 exceptions closed" in text
    assert "Now 3 h median, 90th percentile 3 h 48 min; 3 exceptions closed" in text
    assert "Better Change: 5 h shorter than the baseline (-62%)." in text
    assert "no logistics workflow has gone live yet" in text
    assert text.count("No comparison yet") == 4  # the four metrics without data
    assert 'class="outcome-chart"' in response.content.decode() and "Week by week" in text


def test_the_workspace_nav_leads_to_outcomes(world):
    body = _client(world, "dispatcher").get("/").content.decode()
    assert 'href="/insights/outcomes/"' in body and ">Outcomes<" in body


def test_an_empty_workspace_says_what_produces_the_figures(world):
    response = _client(world, "finance", tenant="globex").get("/insights/outcomes/")
    text = _text(response)
    assert response.status_code == 200
    assert "No outcomes to measure yet" in text and "Open the workflow library" in text
    for template in ("Order to shipment release", "Carrier exception management", "Proof of delivery to invoice"):
        assert template in text
    assert 'href="/workflows/library/pod-to-invoice/"' in response.content.decode()
    assert 'class="outcome-chart"' not in response.content.decode()


def test_a_chosen_baseline_is_used_and_a_bad_one_is_explained(world):
    client = _client(world)
    chosen = _text(client.get("/insights/outcomes/?days=14&baseline_start=2026-01-05&baseline_end=2026-02-01"))
    assert "Now: the last 14 days" in chosen and "Baseline: 5 Jan 2026 – 1 Feb 2026, as you chose." in chosen
    refused = client.get("/insights/outcomes/?baseline_start=2026-02-01&baseline_end=2026-01-05")
    assert refused.status_code == 400
    text = _text(refused)
    assert "These periods cannot be measured" in text and "The baseline's last day is before its first day." in text
    assert "Showing the default periods instead" in text and "Now: the last 30 days" in text
    not_a_number = client.get("/insights/outcomes/?days=1000")
    assert not_a_number.status_code == 400 and "Ensure this value is less than or equal to 365." in _text(not_a_number)


def test_customers_and_strangers_are_refused(world):
    assert _client(world, "customer").get("/insights/outcomes/").status_code == 403
    anonymous = host_client(world.acme.host).get("/insights/outcomes/")
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/accounts/login/")


# --- the API ---------------------------------------------------------------------------------------


def test_the_api_answers_the_same_figures_to_a_key_with_the_scope(world):
    _exceptions_handled(world.acme, [2, 4], closed_days_ago=3)
    secret = _key(world.acme, "insights:read")
    response = host_client(world.acme.host).get("/api/v1/insights/outcomes?days=7", HTTP_AUTHORIZATION=f"Api-Key {secret}")
    assert response.status_code == 200, response.content[:300]
    data = response.json()
    assert data["now"]["days"] == 7 and data["baseline"]["source"] == "before_now"
    metrics = {metric["key"]: metric for metric in data["metrics"]}
    handled = metrics["exception_handling_time"]
    assert handled["now"] == {"count": 2, "median_seconds": 3 * 3600.0, "p90_seconds": pytest.approx(3.8 * 3600), "open_at_end": 0}
    assert handled["change"] == {"direction": "unknown", "summary": "No comparison yet: the baseline has no exceptions closed."}
    assert handled["unit"] == "seconds" and handled["better"] == "lower"
    assert sum(week["count"] for week in handled["weeks"]) == 2
    assert metrics["on_time_delivery"]["now"] == {"count": 0, "rate": None, "hits": 0, "rated": 0, "without_promise": 0}


def test_the_api_is_for_staff_sessions_and_staff_keys_only(world):
    session = _client(world, "finance")
    assert session.get("/api/v1/insights/outcomes").status_code == 200
    assert _client(world, "customer").get("/api/v1/insights/outcomes").status_code == 403
    without_scope = host_client(world.acme.host).get(
        "/api/v1/insights/outcomes", HTTP_AUTHORIZATION=f"Api-Key {_key(world.acme, 'tenant:read')}"
    )
    assert without_scope.status_code == 403 and "insights:read" in without_scope.json()["detail"]
    customers_key = _key(world.acme, "insights:read", customer_account_id=world.acme.customer_accounts[0].pk)
    refused = host_client(world.acme.host).get("/api/v1/insights/outcomes", HTTP_AUTHORIZATION=f"Api-Key {customers_key}")
    assert refused.status_code == 403 and refused["Content-Type"] == "application/problem+json"
    assert "belongs to a customer account" in refused.json()["detail"]


def test_the_api_names_every_problem_with_the_periods(world):
    client = _client(world)
    response = client.get("/api/v1/insights/outcomes?days=2&baseline_start=someday")
    assert response.status_code == 422 and response["Content-Type"] == "application/problem+json"
    pointers = {problem["pointer"] for problem in response.json()["errors"]}
    assert pointers == {"/days", "/baseline_start"}
    half = client.get("/api/v1/insights/outcomes?baseline_start=2026-01-05")
    assert half.status_code == 422
    assert half.json()["errors"] == [{"pointer": "/baseline_end", "reason": "a chosen baseline needs both its first and its last day"}]


def test_the_api_is_in_the_openapi_schema(tmp_path):
    target = tmp_path / "schema.json"
    call_command("spectacular", "--format", "openapi-json", "--file", str(target))
    schema = json.loads(target.read_text())
    operation = schema["paths"]["/api/v1/insights/outcomes"]["get"]
    assert {parameter["name"] for parameter in operation["parameters"]} == {"days", "baseline_start", "baseline_end"}
    assert set(operation["responses"]) == {"200", "403", "422"}
