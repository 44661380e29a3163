"""People deciding approvals: "My approvals" (sorted by due time, overdue and escalation shown),
one approval with its decision form, the email with its signed links (followed from the body:
sign-in, then GET confirms, POST decides, the run wakes), refused links, and the whole path in a
real browser with a real worker advancing the run. Sign-in and MFA on links: test_approval_links."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from unittest import mock
from urllib.parse import quote, urlsplit

import pytest
from django.core import mail, signing
from django.utils import timezone
from django_tenants.utils import schema_context
from playwright.sync_api import sync_playwright

from accounts.services import user_create
from governance.models import AuditEvent
from tests.browser import CHROMIUM, CHROMIUM_ARGS, screenshot, sign_in
from tests.conftest import FIXTURE_ACTOR, PASSWORD, host_client, signed_in_client
from tests.processes import celery_worker, web_server
from tests.workflows.runs_setup import definition_published, run_advanced, run_started, runs_delete
from workflows.approval_mail import approvals_announce
from workflows.models import Approval, Run
from workflows.operations import approval_link_token

APPROVAL_SPEC = {
    "start": "ok",
    "steps": [
        {
            "id": "ok",
            "kind": "approval",
            "title": "Approve the rate",
            "instructions": "Check the rate against the contract before approving.",
            "assignee_roles": ["planner"],
            "due": "PT1H",
            "escalate_to": ["tenant_admin"],
            "next": "done",
            "on_reject": "done",
        },
        {"id": "done", "kind": "end", "outcome": "succeeded"},
    ],
}
in_db = pytest.mark.django_db


def _client(world, role="planner", tenant="acme"):
    place = getattr(world, tenant)
    return signed_in_client(place.host, place.users[role], place.schema)


def _waiting(world, key="rate-check", business_key="") -> tuple[Run, Approval]:
    definition = definition_published(world.acme, APPROVAL_SPEC, key=key)
    run = run_advanced(world.acme, run_started(world.acme, definition, input={"lane": "HAM-MUC"}, business_key=business_key))
    assert run.status == "waiting"
    with schema_context(world.acme.schema):
        return run, Approval.objects.get(run=run)


def _approval(world, approval_id: int) -> Approval:
    with schema_context(world.acme.schema):
        return Approval.objects.select_related("run").get(pk=approval_id)


def _rows(body: str) -> list[int]:
    return [int(n) for n in re.findall(r'<a href="/workflows/approvals/(\d+)/">', body)]


# --- the inbox and one approval ---------------------------------------------------------------------


@in_db
def test_my_approvals_lists_what_i_may_decide_soonest_due_first_with_overdue_and_escalation(world, fake):
    (_run1, later), (_run2, overdue) = _waiting(world, "rate-a"), _waiting(world, "rate-b")
    with schema_context(world.acme.schema):
        Approval.objects.filter(pk=overdue.pk).update(due_at=timezone.now() - timedelta(minutes=5), escalation_level=1)
    body = _client(world).get("/workflows/approvals/").content.decode().replace("\xa0", " ")
    assert _rows(body)[:2] == [overdue.pk, later.pk]
    assert '<tr class="is-overdue">' in body and "Overdue · 5 minutes ago" in body and "Level 1" in body
    assert "1 overdue" in body and "Check the rate" not in body  # instructions are on the approval's page
    # The navigation counts what waits for the planner.
    assert re.search(r'Approvals <span class="badge badge--warn nav-count">2<', body)
    # A dispatcher is not an assignee: nothing waits for them, but "All pending" shows both.
    dispatcher = _client(world, "dispatcher")
    mine = dispatcher.get("/workflows/approvals/").content.decode()
    assert overdue.pk not in _rows(mine) and "Nothing waits for you" in mine
    assert {overdue.pk, later.pk} <= set(_rows(dispatcher.get("/workflows/approvals/?tab=all").content.decode()))
    # Tenant admins may step in on every approval.
    assert {overdue.pk, later.pk} <= set(_rows(_client(world, "tenant_admin").get("/workflows/approvals/").content.decode()))
    assert _client(world, "customer").get("/workflows/approvals/").status_code == 403


@in_db
def test_approving_from_the_inbox_wakes_the_run_and_is_audited(world, fake):
    run, approval = _waiting(world, business_key="RATE-1")
    client = _client(world)
    page = client.get(f"/workflows/approvals/{approval.pk}/").content.decode()
    assert "Approve the rate" in page and "Check the rate against the contract" in page
    assert f'href="/workflows/runs/{run.pk}/">Run #{run.pk}</a>' in page and "RATE-1" in page and "HAM-MUC" in page
    assert 'value="approved"' in page and 'value="rejected"' in page and 'value="changes_requested"' in page
    response = client.post(f"/workflows/approvals/{approval.pk}/", {"decision": "approved"}, follow=True)
    body = response.content.decode()
    assert response.redirect_chain[-1][0] == "/workflows/approvals/" and f"Approved: “Approve the rate”. Run #{run.pk} goes on" in body
    decided = _approval(world, approval.pk)
    assert decided.status == "approved" and decided.decided_by_email == "planner@acme.test" and decided.decided_via == "web"
    assert decided.run.status == "running" and decided.run.ready_at is not None
    with schema_context(world.acme.schema):
        event = AuditEvent.objects.get(action="workflow_approval.decided", target_id=str(approval.pk))
    assert event.actor_email == "planner@acme.test" and event.data["decision"] == "approved" and event.data["via"] == "web"
    assert run_advanced(world.acme, decided.run).status == "succeeded"
    # Decided: it moved to the Decided tab, with who and how.
    decided_tab = client.get("/workflows/approvals/?tab=decided").content.decode()
    assert approval.pk in _rows(decided_tab) and "by planner@acme.test · web" in decided_tab


@in_db
@pytest.mark.parametrize("decision", ["rejected", "changes_requested"])
def test_reject_and_request_changes_need_a_comment(world, fake, decision):
    _run, approval = _waiting(world)
    client = _client(world)
    response = client.post(f"/workflows/approvals/{approval.pk}/", {"decision": decision, "comment": "  "})
    body = response.content.decode()
    assert response.status_code == 400
    errors = re.search(r'<ul class="field__errors" id="id_comment_errors"[^>]*>(.*?)</ul>', body, re.S)
    assert errors and "Say why in a comment: the requester needs it to act on the decision." in errors.group(1)
    assert _approval(world, approval.pk).status == "pending"
    client.post(f"/workflows/approvals/{approval.pk}/", {"decision": decision, "comment": "rate is 12% over contract"})
    decided = _approval(world, approval.pk)
    assert decided.status == decision and decided.comment == "rate is 12% over contract"


@in_db
def test_people_whose_role_is_not_assigned_cannot_decide(world, fake):
    _run, approval = _waiting(world)
    page = _client(world, "dispatcher").get(f"/workflows/approvals/{approval.pk}/").content.decode()
    assert "Your role cannot decide it" in page and 'value="approved"' not in page
    response = _client(world, "dispatcher").post(f"/workflows/approvals/{approval.pk}/", {"decision": "approved"})
    assert response.status_code == 403 and "your role cannot decide it" in response.content.decode()
    assert _client(world, "customer").post(f"/workflows/approvals/{approval.pk}/", {"decision": "approved"}).status_code == 403
    assert _approval(world, approval.pk).status == "pending"


@in_db
def test_another_tenants_host_does_not_know_the_approval(world, fake):
    _run, approval = _waiting(world)
    with schema_context(world.globex.schema):
        assert not Approval.objects.filter(pk=approval.pk).exists()
    globex = _client(world, "tenant_admin", tenant="globex")
    assert globex.get(f"/workflows/approvals/{approval.pk}/").status_code == 404
    assert globex.post(f"/workflows/approvals/{approval.pk}/", {"decision": "approved"}).status_code == 404
    assert "Approve the rate" not in globex.get("/workflows/approvals/?tab=all").content.decode()
    assert _approval(world, approval.pk).status == "pending"


# --- the email and its signed links ------------------------------------------------------------------


def _links(message) -> dict[str, str]:
    """The decision links of an approval email's text body, by label."""
    return dict(re.findall(r"^(Approve|Reject|Request changes):\n(http\S+)$", message.body, re.M))


@in_db
def test_the_email_goes_to_each_active_assignee_and_its_link_decides_after_confirmation(world, fake):
    with schema_context(world.acme.schema):
        second = user_create(email="planner2@acme.test", role="planner", password=PASSWORD, actor=FIXTURE_ACTOR)
        gone = user_create(email="planner-gone@acme.test", role="planner", password=PASSWORD, actor=FIXTURE_ACTOR)
        gone.is_active = False
        gone.save(update_fields=["is_active"])
    run, approval = _waiting(world, business_key="RATE-9")
    mail.outbox.clear()
    with schema_context(world.acme.schema):
        assert approvals_announce(approval.pk) == 2
        assert approvals_announce(approval.pk) == 0  # a redelivered task sends nothing new
    assert sorted(message.to[0] for message in mail.outbox) == ["planner2@acme.test", "planner@acme.test"]
    message = next(message for message in mail.outbox if message.to == ["planner@acme.test"])
    assert message.subject == f"Approval needed – Approve the rate (run #{run.pk}) – Acme Freight Hub"
    assert "Acme Freight Hub" in message.body and "Check the rate against the contract" in message.body and "RATE-9" in message.body
    assert "Due: " in message.body and "(UTC)" in message.body
    html = message.alternatives[0][0]
    assert "#0b4f9c" in html and ">Approve</a>" in html and ">Request changes</a>" in html  # the tenant's brand
    # Under the buttons: the link is no way round signing in (planners have no second factor here).
    assert "You'll be asked to sign in as planner@acme.test before you decide." in message.body
    assert html.index("You'll be asked to sign in as planner@acme.test") > html.index(">Request changes</a>")
    links = _links(message)
    assert set(links) == {"Approve", "Reject", "Request changes"}
    assert all(link in html for link in links.values())
    url = urlsplit(links["Approve"])
    assert url.hostname == world.acme.host and url.path.startswith("/workflows/approvals/link/")
    with schema_context(world.acme.schema):
        assert AuditEvent.objects.get(action="workflow_approval.announced", target_id=str(approval.pk)).data["recipients"] == 2

    # Following the link without a session: sign in first, then straight back to the link.
    browser = host_client(url.hostname)
    to_login = browser.get(url.path)
    assert to_login.status_code == 302 and to_login["Location"] == f"/accounts/login/?next={quote(url.path)}"
    signed_in = browser.post("/accounts/login/", {"login": "planner@acme.test", "password": PASSWORD, "next": url.path})
    assert signed_in.status_code == 302 and signed_in["Location"] == url.path
    # A confirmation page; nothing is decided yet.
    confirm = browser.get(url.path)
    body = confirm.content.decode()
    assert confirm.status_code == 200 and "Confirm your decision" in body and "Approve: Approve the rate" in body
    assert f"run #{run.pk}" in body and "planner@acme.test" in body
    assert _approval(world, approval.pk).status == "pending"
    done = browser.post(url.path, {"comment": "fine by me"})
    assert done.status_code == 200 and "Recorded as your decision" in done.content.decode()
    decided = _approval(world, approval.pk)
    assert (decided.status, decided.decided_by_email, decided.decided_via, decided.comment) == (
        "approved",
        "planner@acme.test",
        "email",
        "fine by me",
    )
    assert decided.run.status == "running" and decided.run.ready_at is not None  # the run woke up
    assert run_advanced(world.acme, decided.run).status == "succeeded"
    # The second planner's links now say it is already decided, and change nothing.
    other = next(message for message in mail.outbox if message.to == ["planner2@acme.test"])
    late = signed_in_client(world.acme.host, second, world.acme.schema).post(urlsplit(_links(other)["Reject"]).path, {"comment": "no"})
    assert "Already decided: approved by planner@acme.test" in late.content.decode()
    assert _approval(world, approval.pk).status == "approved"
    assert second.pk != gone.pk


@in_db
def test_the_celery_task_the_engine_sends_is_the_announcement(world, fake):
    from workflows.tasks import approval_announce

    _run, approval = _waiting(world)
    mail.outbox.clear()
    assert approval_announce.name == "workflows.approval_announce"
    with schema_context(world.acme.schema):
        assert approval_announce(approval.pk) == 1
    assert mail.outbox[0].to == ["planner@acme.test"] and "Approve the rate" in mail.outbox[0].subject


@in_db
def test_an_escalation_is_announced_again_to_everyone_now_assigned(world, fake):
    _run, approval = _waiting(world)
    mail.outbox.clear()
    with schema_context(world.acme.schema):
        assert approvals_announce(approval.pk) == 1
        Approval.objects.filter(pk=approval.pk).update(escalation_level=1, assignee_roles=["planner", "tenant_admin"])
        assert approvals_announce(approval.pk) == 2
    escalated = mail.outbox[1:]
    assert sorted(message.to[0] for message in escalated) == ["planner@acme.test", "tenant_admin@acme.test"]
    assert all(message.subject.startswith("Escalated: Approval needed") for message in escalated)
    assert "escalated to you (level 1)" in escalated[0].body
    # The tenant admin's role requires a second factor: the mail says signing in will ask for it.
    admin_mail = next(message for message in escalated if message.to == ["tenant_admin@acme.test"])
    assert "You'll be asked to sign in with your second factor as tenant_admin@acme.test before you decide." in admin_mail.body
    assert "You'll be asked to sign in with your second factor" in admin_mail.alternatives[0][0]
    assert "second factor" not in next(message for message in escalated if message.to == ["planner@acme.test"]).body


@in_db
def test_a_reject_link_needs_a_comment_too(world, fake):
    _run, approval = _waiting(world)
    with schema_context(world.acme.schema):
        token = approval_link_token(approval=approval, user_id=world.acme.users["planner"].pk, decision="rejected")
    client = _client(world)
    page = client.get(f"/workflows/approvals/link/{token}/").content.decode()
    assert "Reject: Approve the rate" in page and "(required for this decision)" in page
    refused = client.post(f"/workflows/approvals/link/{token}/", {"comment": ""})
    assert refused.status_code == 400 and "Say why in a comment" in refused.content.decode()
    assert _approval(world, approval.pk).status == "pending"
    client.post(f"/workflows/approvals/link/{token}/", {"comment": "wrong lane"})
    assert _approval(world, approval.pk).status == "rejected"


def _token(world, approval, role="planner", decision="approved", user_id=None) -> str:
    with schema_context(world.acme.schema):
        return approval_link_token(approval=approval, user_id=user_id or world.acme.users[role].pk, decision=decision)


@in_db
def test_altered_expired_and_foreign_links_are_refused_with_what_to_do(world, fake):
    _run, approval = _waiting(world)
    token = _token(world, approval)
    client = host_client(world.acme.host)
    altered = client.get(f"/workflows/approvals/link/{token[:-3]}abc/")
    assert altered.status_code == 403 and "This approval link is not valid" in altered.content.decode()
    assert "your approvals inbox" in altered.content.decode() and "Nothing was decided" in altered.content.decode()
    swapped = signing.loads(token, salt="baton.workflows.approval-link")
    forged = signing.dumps({**swapped, "d": "rejected"}, salt="other-salt", compress=True)
    assert client.post(f"/workflows/approvals/link/{forged}/", {"comment": "x"}).status_code == 403
    with mock.patch("django.core.signing.time.time", return_value=time.time() - 8 * 24 * 3600), schema_context(world.acme.schema):
        old = approval_link_token(approval=approval, user_id=world.acme.users["planner"].pk, decision="approved")
    expired = client.post(f"/workflows/approvals/link/{old}/", {"comment": ""})
    assert expired.status_code == 403 and "This approval link has expired" in expired.content.decode()
    # Acme's link on Globex's host: the token names Acme's schema.
    foreign = host_client(world.globex.host)
    for response in (foreign.get(f"/workflows/approvals/link/{token}/"), foreign.post(f"/workflows/approvals/link/{token}/")):
        assert response.status_code == 403 and "belongs to another workspace" in response.content.decode()
        assert "Approve the rate" not in response.content.decode()
    assert _approval(world, approval.pk).status == "pending"


@in_db
def test_a_link_is_refused_once_its_person_may_no_longer_decide(world, fake):
    _run, approval = _waiting(world)
    with schema_context(world.acme.schema):
        leaver = user_create(email="leaver@acme.test", role="planner", password=PASSWORD, actor=FIXTURE_ACTOR)
        mover = user_create(email="mover@acme.test", role="planner", password=PASSWORD, actor=FIXTURE_ACTOR)
    leaver_token, mover_token = _token(world, approval, user_id=leaver.pk), _token(world, approval, user_id=mover.pk)
    with schema_context(world.acme.schema):
        type(leaver).objects.filter(pk=leaver.pk).update(is_active=False)
        type(mover).objects.filter(pk=mover.pk).update(role="finance")
    gone = host_client(world.acme.host).post(f"/workflows/approvals/link/{leaver_token}/", {"comment": "ok"})
    assert gone.status_code == 403 and "can no longer decide in this workspace" in gone.content.decode()
    mover.role = "finance"
    moved = signed_in_client(world.acme.host, mover, world.acme.schema).post(f"/workflows/approvals/link/{mover_token}/", {"comment": "ok"})
    assert moved.status_code == 403 and "Your role (Finance) is no longer among the people who decide" in moved.content.decode()
    # Someone else signed in on this host cannot use the planner's link.
    token = _token(world, approval)
    other = _client(world, "dispatcher").post(f"/workflows/approvals/link/{token}/", {"comment": "ok"})
    assert other.status_code == 403 and "you are signed in as <strong>dispatcher@acme.test</strong>" in other.content.decode()
    assert _approval(world, approval.pk).status == "pending"
    # The addressee, signed in, can.
    assert _client(world).get(f"/workflows/approvals/link/{token}/").status_code == 200


@in_db
def test_the_empty_inbox_says_what_to_do(world):
    with schema_context(world.acme.schema):
        Approval.objects.all().delete()  # rolled back with the test
    client = _client(world)
    assert "Nothing waits for you" in client.get("/workflows/approvals/").content.decode()
    assert "No approvals pending" in client.get("/workflows/approvals/?tab=all").content.decode()
    assert "Nothing decided yet" in client.get("/workflows/approvals/?tab=decided").content.decode()


# --- in a real browser, with a real worker --------------------------------------------------------------


@pytest.fixture(scope="module")
def live_port(tmp_path_factory, django_db_setup):
    with web_server(tmp_path_factory.mktemp("approvals-web") / "web.log") as port:
        yield port


@pytest.fixture(scope="module")
def worker(tmp_path_factory, django_db_setup):
    with celery_worker(tmp_path_factory.mktemp("approvals-worker") / "worker.log") as process:
        yield process


@pytest.fixture
def waiting_run(world, committed, monkeypatch):
    from workflows import runs as runs_module

    monkeypatch.setattr(runs_module, "_wake", lambda schema: None)  # the module's live worker must not take it first
    definition = definition_published(world.acme, APPROVAL_SPEC, key="rate-check-browser")
    run = run_advanced(world.acme, run_started(world.acme, definition, input={"lane": "HAM-MUC"}, business_key="RATE-BROWSER"))
    yield run
    runs_delete(world.acme, definition)


@pytest.mark.browser
@pytest.mark.worker
def test_a_planner_approves_in_the_browser_and_the_run_finishes(world, waiting_run, live_port, worker):
    base = f"http://acme.localhost:{live_port}"
    # Playwright's sync API runs an event loop in this thread: no database calls inside the block.
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1366, "height": 900}).new_page()
        sign_in(page, base, world.acme.users["planner"].email, PASSWORD)
        page.goto(base + "/workflows/approvals/")
        row = page.locator("tr", has_text="RATE-BROWSER")
        listed = row.count() == 1 and "Approve the rate" in row.inner_text()
        screenshot(page, "approvals-inbox")
        row.locator("a", has_text="Approve the rate").click()
        page.wait_for_load_state()
        instructions = "Check the rate against the contract" in page.content()
        screenshot(page, "approval-detail")
        page.get_by_role("button", name="Approve", exact=True).click()
        page.wait_for_load_state()
        back_in_inbox, toast = page.url.endswith("/workflows/approvals/"), page.locator(".toasts").inner_text()
        # The worker advances the run past the approval: the run page ends up saying so.
        page.goto(f"{base}/workflows/runs/{waiting_run.pk}/")
        deadline = time.time() + 60
        while 'badge--ok">Succeeded' not in page.content() and time.time() < deadline:
            page.wait_for_timeout(500)
            page.reload()
        run_page = page.content()
        screenshot(page, "run-after-approval")
        browser.close()
    assert listed and instructions and back_in_inbox
    assert f"Run #{waiting_run.pk} goes on" in toast
    assert 'badge--ok">Succeeded' in run_page, _status(world, waiting_run)
    assert "Approved" in run_page and "planner@acme.test · web" in run_page


def _status(world, run: Run) -> str:
    with schema_context(world.acme.schema):
        run.refresh_from_db()
    return f"run {run.pk}: {run.status} at {run.current_step} ({run.error})"
