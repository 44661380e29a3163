"""An approval email's link is no way round signing in: it names the approval, the person and the
decision, but deciding needs that person's own session – with their second factor when their
role requires one or they set one up – so someone who can read the mailbox cannot decide.

The link survives the sign-in (`next=`): sign-in, allauth's MFA step, then the confirmation page
with the decision named. A session of someone else is refused with a way to switch accounts; GET
(a mail scanner's prefetch) and sessionless POSTs decide nothing; another tenant's host knows no
link of this one. The full path runs in a real browser too, with screenshots of both pages.
"""

from __future__ import annotations

import time
from urllib.parse import quote

import pytest
from allauth.mfa.totp.internal.auth import generate_totp_secret
from django_tenants.utils import schema_context
from playwright.sync_api import sync_playwright

from accounts.services import user_create, user_mfa_totp_activate
from governance.models import AuditEvent
from tests.browser import CHROMIUM, CHROMIUM_ARGS, screenshot, totp_now
from tests.conftest import FIXTURE_ACTOR, PASSWORD, TOTP_SECRET, host_client, signed_in_client
from tests.processes import web_server
from tests.workflows.runs_setup import definition_published, run_advanced, run_started, runs_delete
from tests.workflows.test_approval_pages import APPROVAL_SPEC
from workflows.models import Approval, Run
from workflows.operations import approval_link_token

in_db = pytest.mark.django_db
LOGIN = "/accounts/login/"
MFA_AUTHENTICATE = "/accounts/2fa/authenticate/"
MFA_REAUTHENTICATE = "/accounts/2fa/reauthenticate/"


def _waiting(world, key="rate-link", business_key="") -> tuple[Run, Approval]:
    definition = definition_published(world.acme, APPROVAL_SPEC, key=key)
    run = run_advanced(world.acme, run_started(world.acme, definition, input={"lane": "HAM-MUC"}, business_key=business_key))
    assert run.status == "waiting"
    with schema_context(world.acme.schema):
        return run, Approval.objects.get(run=run)


def _approval(world, approval_id: int) -> Approval:
    with schema_context(world.acme.schema):
        return Approval.objects.select_related("run").get(pk=approval_id)


def _link(world, approval: Approval, user, decision: str = "approved") -> str:
    with schema_context(world.acme.schema):
        token = approval_link_token(approval=approval, user_id=user.pk, decision=decision)
    return f"/workflows/approvals/link/{token}/"


def _person(world, email: str, role: str, *, totp: bool):
    """A person of Acme (rolled back with the test), with an authenticator of their own: a fresh
    secret, so no code another test used in this 30-second window is refused as a replay."""
    with schema_context(world.acme.schema):
        person = user_create(email=email, role=role, password=PASSWORD, actor=FIXTURE_ACTOR)
        secret = generate_totp_secret()
        if totp:
            user_mfa_totp_activate(user=person, secret=secret, actor=FIXTURE_ACTOR)
    return person, secret


def _after_login(link: str) -> str:
    return f"{LOGIN}?next={quote(link)}"


@in_db
def test_a_link_without_a_session_goes_through_sign_in_and_mfa_and_comes_back_to_the_decision(world, fake):
    run, approval = _waiting(world, business_key="RATE-MFA")
    admin, secret = _person(world, "admin2@acme.test", "tenant_admin", totp=True)
    link = _link(world, approval, admin, "changes_requested")
    client = host_client(world.acme.host)
    # Following the link shows nothing of the approval: sign in first, the link kept as next=.
    opened = client.get(link)
    assert opened.status_code == 302 and opened["Location"] == _after_login(link)
    login_page = client.get(opened["Location"]).content.decode()
    assert f'name="next" value="{link}"' in login_page
    # The password alone is not a session yet: allauth's MFA step comes first.
    password = client.post(LOGIN, {"login": admin.email, "password": PASSWORD, "next": link})
    assert password.status_code == 302 and password["Location"] == MFA_AUTHENTICATE
    halfway = client.get(link)
    assert halfway.status_code == 302 and halfway["Location"] == _after_login(link)
    assert client.post(link, {"comment": "sneaky"}).status_code == 302
    assert _approval(world, approval.pk).status == "pending"
    wrong = client.post(MFA_AUTHENTICATE, {"code": "000000" if totp_now(secret) != "000000" else "111111"})
    assert wrong.status_code == 200 and client.get(link).status_code == 302
    passed = client.post(MFA_AUTHENTICATE, {"code": totp_now(secret)})
    assert passed.status_code == 302 and passed["Location"] == link
    # Back on the link: the confirmation, with the decision named and the comment it needs.
    confirm = client.get(link)
    body = confirm.content.decode()
    assert confirm.status_code == 200 and "Confirm your decision" in body and "Request changes: Approve the rate" in body
    assert "admin2@acme.test" in body and "(required for this decision)" in body and "RATE-MFA" in body
    assert _approval(world, approval.pk).status == "pending"  # GET decides nothing
    done = client.post(link, {"comment": "use the contract lane"})
    assert done.status_code == 200 and "Recorded as your decision (admin2@acme.test)" in done.content.decode()
    decided = _approval(world, approval.pk)
    assert (decided.status, decided.decided_by_email, decided.decided_via, decided.comment) == (
        "changes_requested",
        "admin2@acme.test",
        "email",
        "use the contract lane",
    )
    assert decided.run.status == "running"
    with schema_context(world.acme.schema):
        event = AuditEvent.objects.get(action="workflow_approval.decided", target_id=str(approval.pk))
    assert event.actor_email == "admin2@acme.test" and event.data["via"] == "email" and event.reason == "use the contract lane"
    # Single use: the same link again, even posted, changes nothing.
    again = client.post(link, {"comment": "changed my mind"})
    assert "Already decided: changes requested by admin2@acme.test" in again.content.decode()
    assert _approval(world, approval.pk).comment == "use the contract lane"
    assert run.pk == decided.run_id


@in_db
def test_a_session_that_skipped_the_second_factor_passes_it_before_deciding(world, fake):
    """Signed in with the password alone (before the authenticator was set up, say): allauth's
    MFA step, then back to the link. Someone without any second factor is not asked for one."""
    _run, approval = _waiting(world)
    admin, secret = _person(world, "admin3@acme.test", "tenant_admin", totp=True)
    link = _link(world, approval, admin)
    client = signed_in_client(world.acme.host, admin, world.acme.schema, mfa_passed=False)
    step = client.get(link)
    assert step.status_code == 302 and step["Location"] == f"{MFA_REAUTHENTICATE}?next={quote(link)}"
    refused = client.post(link, {"comment": "quick"})
    assert refused.status_code == 302 and refused["Location"].startswith(MFA_REAUTHENTICATE)
    assert _approval(world, approval.pk).status == "pending"
    passed = client.post(step["Location"], {"code": totp_now(secret)})
    assert passed.status_code == 302 and passed["Location"] == link
    assert "Confirm your decision" in client.get(link).content.decode()
    client.post(link, {"comment": ""})
    assert _approval(world, approval.pk).status == "approved"

    # A planner who set up a second factor of their own is asked for it as well (allauth asks at sign-in).
    _run, other_approval = _waiting(world, key="rate-link-2")
    planner, _secret = _person(world, "careful-planner@acme.test", "planner", totp=True)
    careful = signed_in_client(world.acme.host, planner, world.acme.schema, mfa_passed=False).get(_link(world, other_approval, planner))
    assert careful.status_code == 302 and careful["Location"].startswith(MFA_REAUTHENTICATE)
    # A tenant admin without one yet sets it up first (their role requires it).
    bare, _secret = _person(world, "new-admin@acme.test", "tenant_admin", totp=False)
    bare_step = signed_in_client(world.acme.host, bare, world.acme.schema).get(_link(world, other_approval, bare))
    assert bare_step.status_code == 302 and bare_step["Location"] == "/accounts/2fa/totp/activate/?required=1"
    # A planner without one signs in with the password and decides.
    plain = signed_in_client(world.acme.host, world.acme.users["planner"], world.acme.schema, mfa_passed=False)
    assert "Confirm your decision" in plain.get(_link(world, other_approval, world.acme.users["planner"])).content.decode()
    assert _approval(world, other_approval.pk).status == "pending"


@in_db
def test_a_link_opened_as_someone_else_is_refused_with_a_way_to_switch_accounts(world, fake):
    _run, approval = _waiting(world)
    planner = world.acme.users["planner"]
    link = _link(world, approval, planner)
    dispatcher = signed_in_client(world.acme.host, world.acme.users["dispatcher"], world.acme.schema)
    opened = dispatcher.get(link)
    body = opened.content.decode()
    assert opened.status_code == 403 and "This link is for someone else" in body
    assert "sent to <strong>planner@acme.test</strong>, and you are signed in as <strong>dispatcher@acme.test</strong>" in body
    assert "Nothing was decided" in body and "Approve the rate" not in body  # nothing of the approval shows
    assert 'action="/accounts/logout/"' in body and f'name="next" value="{link}"' in body and "Switch to planner@acme.test" in body
    assert 'href="/workflows/approvals/">Stay as dispatcher@acme.test</a>' in body
    posted = dispatcher.post(link, {"comment": "ok"})
    assert posted.status_code == 403 and "This link is for someone else" in posted.content.decode()
    # A tenant admin, who could decide it from the inbox, cannot use someone else's link either.
    admin = signed_in_client(world.acme.host, world.acme.users["tenant_admin"], world.acme.schema)
    assert admin.post(link, {"comment": "ok"}).status_code == 403
    assert _approval(world, approval.pk).status == "pending"
    # Switching: signed out, back to the link, which asks to sign in as the planner.
    switched = dispatcher.post("/accounts/logout/", {"next": link})
    assert switched.status_code == 302 and switched["Location"] == link
    again = dispatcher.get(link)
    assert again.status_code == 302 and again["Location"] == _after_login(link)
    signed_in = dispatcher.post(LOGIN, {"login": planner.email, "password": PASSWORD, "next": link})
    assert signed_in.status_code == 302 and signed_in["Location"] == link
    assert "Confirm your decision" in dispatcher.get(link).content.decode()


@in_db
def test_prefetching_a_link_decides_nothing_with_or_without_a_session(world, fake):
    """Mail scanners follow (and sometimes post to) links: nothing they can do decides."""
    _run, approval = _waiting(world)
    link = _link(world, approval, world.acme.users["planner"])
    scanner = host_client(world.acme.host)
    assert scanner.get(link).status_code == 302
    assert scanner.head(link).status_code in (302, 405)
    assert scanner.post(link, {"comment": "scanned"})["Location"] == _after_login(link)
    owner = signed_in_client(world.acme.host, world.acme.users["planner"], world.acme.schema)
    assert owner.get(link).status_code == 200
    approval = _approval(world, approval.pk)
    assert approval.status == "pending" and approval.decided_at is None
    with schema_context(world.acme.schema):
        assert not AuditEvent.objects.filter(action="workflow_approval.decided", target_id=str(approval.pk)).exists()


@in_db
def test_expired_altered_and_foreign_links_are_refused_before_any_sign_in(world, fake):
    """Nothing to sign in for: a link that cannot work says so at once, whoever opens it."""
    from unittest import mock

    _run, approval = _waiting(world)
    planner = world.acme.users["planner"]
    with mock.patch("django.core.signing.time.time", return_value=time.time() - 8 * 24 * 3600):
        expired = _link(world, approval, planner)
    for client in (host_client(world.acme.host), signed_in_client(world.acme.host, planner, world.acme.schema)):
        response = client.get(expired)
        assert response.status_code == 403 and "This approval link has expired" in response.content.decode()
        assert client.get(expired[:-4] + "xyz/").status_code == 403
    # Acme's link on Globex's host, even with a Globex admin's session that passed MFA.
    link = _link(world, approval, planner)
    globex = signed_in_client(world.globex.host, world.globex.users["tenant_admin"], world.globex.schema)
    for response in (globex.get(link), globex.post(link, {"comment": "x"})):
        assert response.status_code == 403 and "belongs to another workspace" in response.content.decode()
        assert "Approve the rate" not in response.content.decode() and "planner@acme.test" not in response.content.decode()
    # An Acme session's cookie presented on Globex's host is nobody's there.
    stolen = host_client(world.globex.host)
    stolen.cookies = signed_in_client(world.acme.host, planner, world.acme.schema).cookies
    assert stolen.get(link).status_code == 403
    assert _approval(world, approval.pk).status == "pending"


# --- in a real browser -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def live_port(tmp_path_factory, django_db_setup):
    with web_server(tmp_path_factory.mktemp("approval-links-web") / "web.log") as port:
        yield port


@pytest.fixture
def waiting_approval(world, committed, monkeypatch):
    from workflows import runs as runs_module

    monkeypatch.setattr(runs_module, "_wake", lambda schema: None)  # no worker here: the run stays where it is
    definition = definition_published(world.acme, APPROVAL_SPEC, key="rate-link-browser")
    run = run_advanced(world.acme, run_started(world.acme, definition, input={"lane": "HAM-MUC"}, business_key="RATE-LINK"))
    with schema_context(world.acme.schema):
        approval = Approval.objects.get(run=run)
    yield approval
    runs_delete(world.acme, definition)


def _enter_code(page, secret: str) -> None:
    """The TOTP step; a code the fixture admin already used in this window is refused as a replay,
    so then the next window's code."""
    for _attempt in range(2):
        page.fill("input[name=code]", totp_now(secret))
        page.click("form button[type=submit]")
        page.wait_for_load_state()
        if not page.locator("input[name=code]").count():
            return
        page.wait_for_timeout(1000 * (31 - int(time.time()) % 30))


@pytest.mark.browser
def test_in_a_browser_the_link_signs_in_with_mfa_and_someone_else_can_switch(world, waiting_approval, live_port):
    base = f"http://acme.localhost:{live_port}"
    admin, dispatcher = world.acme.users["tenant_admin"], world.acme.users["dispatcher"]
    with schema_context(world.acme.schema):
        token = approval_link_token(approval=waiting_approval, user_id=admin.pk, decision="approved")
    link = f"{base}/workflows/approvals/link/{token}/"
    # Playwright's sync API runs an event loop in this thread: no database calls inside the block.
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1366, "height": 900}).new_page()
        # Signed in as the dispatcher, the admin's link is refused with an offer to switch.
        page.goto(base + LOGIN)
        page.fill("input[name=login]", dispatcher.email)
        page.fill("input[name=password]", PASSWORD)
        page.click("form button[type=submit]")
        page.wait_for_load_state()
        page.goto(link)
        someone_else = page.locator("main").inner_text()
        screenshot(page, "approval-link-someone-else")
        page.get_by_role("button", name=f"Switch to {admin.email}").click()
        page.wait_for_load_state()
        on_login = page.url.startswith(base + LOGIN) and "next=" in page.url
        # The admin signs in with password and TOTP and lands on the confirmation.
        page.fill("input[name=login]", admin.email)
        page.fill("input[name=password]", PASSWORD)
        page.click("form button[type=submit]")
        page.wait_for_load_state()
        asked_for_code = page.locator("input[name=code]").count() == 1
        _enter_code(page, TOTP_SECRET)
        back_on_link = page.url == link
        confirmation = page.locator("main").inner_text()
        screenshot(page, "approval-link-confirm")
        page.fill("textarea[name=comment]", "rate matches the contract")
        page.get_by_role("button", name="Approve", exact=True).click()
        page.wait_for_load_state()
        done = page.locator("main").inner_text()
        browser.close()
    assert "This link is for someone else" in someone_else and f"you are signed in as {dispatcher.email}" in someone_else
    assert "Approve the rate" not in someone_else
    assert on_login and asked_for_code and back_on_link
    assert "confirm your decision" in confirmation.lower() and "Approve: Approve the rate" in confirmation and admin.email in confirmation
    assert f"Recorded as your decision ({admin.email})" in done
    decided = _approval(world, waiting_approval.pk)
    assert (decided.status, decided.decided_by_email, decided.decided_via) == ("approved", admin.email, "email")
