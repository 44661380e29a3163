"""The run pages: the runs list (filters, live refresh) and one run with its step timeline."""

from __future__ import annotations

import re

import pytest
from django_tenants.utils import schema_context

from tests.conftest import signed_in_client
from tests.workflows.runs_setup import SYSTEM, definition_published
from workflows.engine import run_advance, runs_claim
from workflows.models import Run
from workflows.runs import run_start

pytestmark = pytest.mark.django_db

ORDER = {"order_id": "SO-9", "total": 120, "lines": [{"sku": "B-2"}]}
PARKED_SPEC = {
    "start": "wait",
    "steps": [
        {"id": "wait", "kind": "approval", "name": "Planner signs off", "assignee_roles": ["planner"], "next": "done", "on_reject": "done"},
        {"id": "done", "kind": "end", "outcome": "succeeded"},
    ],
}


def _start(world, definition, input=None, **kwargs) -> Run:
    with schema_context(world.acme.schema):
        run, _created = run_start(definition=definition, input=input if input is not None else ORDER, trigger="api", actor=SYSTEM, **kwargs)
    return run


def _advance(world, run: Run) -> Run:
    with schema_context(world.acme.schema):
        assert run.pk in runs_claim(owner="pages", limit=100)
        run_advance(run_id=run.pk, owner="pages")
        run.refresh_from_db()
    return run


def _client(world, role="dispatcher", tenant="acme"):
    place = getattr(world, tenant)
    return signed_in_client(place.host, place.users[role], place.schema)


def _row_ids(body: str) -> list[int]:
    return [int(n) for n in re.findall(r'<a href="/workflows/runs/(\d+)/">Run #', body)]


def test_the_runs_list_shows_each_run_newest_first_with_its_facts(world, fake):
    definition = definition_published(world.acme, key="order-release")
    done = _advance(world, _start(world, definition, business_key="SO-9", correlation={"order": "SO-9"}))
    queued = _start(world, definition, business_key="SO-10")
    body = _client(world).get("/workflows/runs/").content.decode()
    assert _row_ids(body)[:2] == [queued.pk, done.pk]
    assert "Engine probe" in body and "v1" in body and "API" in body and "SO-9" in body and "SO-10" in body
    assert '<span class="badge badge--ok">Succeeded</span>' in body and '<span class="badge badge--info">Queued</span>' in body
    assert "<code>check</code>" in body  # the queued run's current step
    # A queued run is on the page, so the rows refresh themselves every 2 s.
    assert 'hx-trigger="every 2s"' in body and 'aria-current="page">Runs</a>' in body


def test_runs_list_filters_by_status_workflow_business_key_and_correlation(world, fake):
    definition = definition_published(world.acme, key="order-release")
    other = definition_published(world.acme, key="other-flow")
    done = _advance(world, _start(world, definition, business_key="BK-1", correlation={"order": "O-1", "po": "P-7"}))
    queued = _start(world, definition, business_key="BK-2", correlation={"order": "O-2"})
    elsewhere = _start(world, other, business_key="BK-3", correlation={"order": "O-1"})
    client = _client(world)

    def listed(query: str) -> list[int]:
        return _row_ids(client.get(f"/workflows/runs/?{query}").content.decode())

    assert listed("definition=order-release") == [queued.pk, done.pk]
    assert listed("definition=order-release&status=succeeded") == [done.pk]
    assert listed("status=queued&definition=other-flow") == [elsewhere.pk]
    assert listed("q=BK-2") == [queued.pk]
    assert listed("q=order:O-1") == [elsewhere.pk, done.pk]
    assert listed("q=PO:P-7") == [done.pk]
    assert listed("q=nothing-like-it") == []
    assert listed("status=bogus&definition=order-release") == [queued.pk, done.pk]  # an unknown status is no filter
    # Only finished runs shown: no polling.
    body = client.get("/workflows/runs/?status=succeeded&definition=order-release").content.decode()
    assert "every 2s" not in body
    assert "No runs match" in client.get("/workflows/runs/?q=nothing-like-it").content.decode()


def test_the_htmx_refresh_returns_only_the_rows(world, fake):
    definition = definition_published(world.acme, key="order-release")
    run = _start(world, definition, business_key="SO-77")
    response = _client(world).get("/workflows/runs/?q=SO-77", HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert response.status_code == 200 and body.lstrip().startswith('<div class="results" id="run-rows"')
    assert _row_ids(body) == [run.pk] and 'hx-get="/workflows/runs/?q=SO-77"' in body and "<nav" not in body.split("run-rows")[0]


def test_no_runs_explains_where_runs_come_from(world):
    body = _client(world).get("/workflows/runs/?definition=no-such-flow").content.decode()
    assert "No runs match" in body
    with schema_context(world.acme.schema):
        Run.objects.all().delete()  # rolled back with the test
    body = _client(world).get("/workflows/runs/").content.decode()
    assert "No runs yet" in body and "POST /api/v1/processes/{key}/runs" in body and 'href="/workflows/"' in body


def test_a_run_page_shows_header_input_timeline_and_context(world, fake):
    definition = definition_published(world.acme, key="order-release")
    run = _advance(world, _start(world, definition, business_key="SO-9", correlation={"order": "SO-9", "po": "PO-77"}))
    assert run.status == "succeeded"
    body = _client(world).get(f"/workflows/runs/{run.pk}/").content.decode()
    assert f"Run #{run.pk}" in body and "Succeeded" in body and "order-release@v1" in body
    assert 'href="/workflows/order-release/?version=1#spec"' in body
    assert "order: SO-9" in body and "po: PO-77" in body and 'href="/workflows/runs/?q=order:SO-9"' in body
    assert "API" in body and SYSTEM.email in body
    # The timeline, in order, with kinds, statuses and the step input and output as JSON.
    assert [m for m in re.findall(r'<li class="timeline__item timeline__item--(\w+)" id="step-\d+"', body)] == ["succeeded"] * 4
    assert (
        body.index("<code>check</code>")
        < body.index("<code>price</code>")
        < body.index("<code>tender</code>")
        < body.index("<code>done</code>")
    )
    assert "connector" in body and "Input and output" in body
    assert "&quot;order_id&quot;: &quot;SO-9&quot;" in body  # the input, pretty-printed and escaped
    assert "&quot;first_sku&quot;: &quot;B-2&quot;" in body  # the context
    # Finished: the timeline does not poll, and there is no problem banner.
    assert "every 1s" not in body and "run-problem" not in body


def test_a_failed_run_shows_its_error_prominently_with_what_it_means(world, fake):
    definition = definition_published(world.acme, key="order-release")
    run = _advance(world, _start(world, definition, input={"order_id": "SO-1"}))  # no total: the decision fails
    assert run.status == "failed"
    body = _client(world).get(f"/workflows/runs/{run.pk}/").content.decode()
    assert 'class="alert alert--error run-problem" role="alert"' in body
    assert "Failed at step “check” – an incident is open" in body and "Retry the step" in body
    assert "Step &#x27;check&#x27; (decision) failed" in body
    assert "timeline__item--failed" in body


def test_a_parked_run_says_it_is_waiting_not_failed(world, fake):
    definition = definition_published(world.acme, PARKED_SPEC, key="sign-off")
    run = _advance(world, _start(world, definition))
    assert run.status == "waiting"
    body = _client(world).get(f"/workflows/runs/{run.pk}/").content.decode()
    assert "alert--warn" in body and "Waiting at step “wait” (approval)" in body and "not failed" in body
    # It says what the run waits for: the approval step's request, by whom.
    assert "it is waiting for approval by planner" in body and run.waiting_for.startswith("waiting for approval by planner")
    assert "Planner signs off" in body and "timeline__item--pending" in body and "every 1s" not in body


def test_a_queued_run_polls_its_timeline_and_reloads_once_it_finishes(world, fake):
    definition = definition_published(world.acme, key="order-release")
    run = _start(world, definition)
    client = _client(world)
    body = client.get(f"/workflows/runs/{run.pk}/").content.decode()
    assert f'hx-get="/workflows/runs/{run.pk}/" hx-trigger="every 1s"' in body and "Up next" in body
    partial = client.get(f"/workflows/runs/{run.pk}/", HTTP_HX_REQUEST="true")
    assert partial.content.decode().lstrip().startswith('<section class="card run-timeline" id="run-timeline"')
    _advance(world, run)
    finished = client.get(f"/workflows/runs/{run.pk}/", HTTP_HX_REQUEST="true")
    assert finished.status_code == 204 and finished["HX-Refresh"] == "true"


def test_customers_get_403_and_unknown_runs_404(world, fake):
    definition = definition_published(world.acme, key="order-release")
    run = _start(world, definition)
    customer = _client(world, "customer")
    assert customer.get("/workflows/runs/").status_code == 403
    assert customer.get(f"/workflows/runs/{run.pk}/").status_code == 403
    assert _client(world, "finance").get(f"/workflows/runs/{run.pk}/").status_code == 200
    assert _client(world).get("/workflows/runs/99999999/").status_code == 404
