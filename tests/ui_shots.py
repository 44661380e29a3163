"""Screenshots of Baton's pages at desktop and phone widths, for looking at what we build.

Not a pytest test: run it against a running dev server with demo data (`manage.py seed_demo`):

    .venv/bin/python tests/ui_shots.py                       # the default tour, console + acme
    .venv/bin/python tests/ui_shots.py --console http://localhost:8010 --tenant http://acme.localhost:8010
    .venv/bin/python tests/ui_shots.py --only console-tenants tenant-home
    .venv/bin/python tests/ui_shots.py --url console:/tenants/?status=ready --url tenant:/settings/users/

Screens land in tests/artifacts/screens/<name>-<width>.png (git-ignored). Signs in through the
real allauth pages; MFA is handled by computing the TOTP code (RFC 6238) from the demo secret
(var/demo.json, or --totp-secret), or from the secret shown on the activation page when the
account has no authenticator yet. Needs Chromium at /usr/bin/chromium
(apt-get install -y chromium fonts-dejavu-core fonts-liberation2).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import re
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "artifacts" / "screens"
WIDTHS = {"desktop": (1366, 900), "phone": (390, 844)}
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def totp(secret: str, at: float | None = None, step: int = 30, digits: int = 6) -> str:
    """RFC 6238 TOTP (HMAC-SHA1), as authenticator apps and allauth compute it."""
    key = base64.b32decode(secret.replace(" ", "").upper() + "=" * (-len(secret.replace(" ", "")) % 8))
    counter = int((time.time() if at is None else at) // step)
    digest = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    code = (struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF) % (10**digits)
    return str(code).zfill(digits)


def _fresh_code(secret: str, used: set[str]) -> str:
    """A code not used yet in this run (allauth refuses a code twice): waits for the next window."""
    code = totp(secret)
    while code in used:
        time.sleep(1)
        code = totp(secret)
    used.add(code)
    return code


@dataclass
class Account:
    email: str
    password: str
    totp_secret: str = ""


@dataclass
class Shot:
    name: str
    host: str  # "console", "tenant" or a full base URL
    path: str
    account: str | None  # "console", "tenant" or None (signed out)
    before: Callable[[Page], None] | None = None
    status_ok: tuple[int, ...] = (200,)


class Tour:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.hosts = {"console": args.console.rstrip("/"), "tenant": args.tenant.rstrip("/")}
        demo = _demo_file()
        secret = args.totp_secret or demo.get("totp_secret", "")
        self.accounts = {
            "console": Account(args.console_email, args.password, secret),
            "tenant": Account(args.tenant_email, args.password, secret),
        }
        self.used_codes: set[str] = set()
        self.problems: list[str] = []

    # ---- signing in -------------------------------------------------------------------
    def sign_in(self, page: Page, host: str, account: Account) -> None:
        base = self.hosts.get(host, host)
        page.goto(base + "/accounts/login/")
        if "/accounts/login" not in page.url:
            return  # already signed in
        page.fill("input[name=login]", account.email)
        page.fill("input[name=password]", account.password)
        page.click("main form button[type=submit]")
        page.wait_for_load_state("networkidle")
        for _ in range(4):
            if "/2fa/authenticate" in page.url:
                if not account.totp_secret:
                    sys.exit(f"{account.email} needs a TOTP code: pass --totp-secret")
                page.fill("input[name=code]", _fresh_code(account.totp_secret, self.used_codes))
                page.click("main form button[type=submit]")
                page.wait_for_load_state("networkidle")
            elif "/accounts/reauthenticate" in page.url:
                # allauth asks for the password again before TOTP can be activated.
                self.capture(page, "reauthenticate")
                page.fill("input[name=password]", account.password)
                page.click("main form button[type=submit]")
                page.wait_for_load_state("networkidle")
            elif "/2fa/totp/activate" in page.url:
                self.capture(page, "mfa-activate")
                secret = page.input_value("#authenticator_secret")
                account.totp_secret = secret
                page.fill("input[name=code]", _fresh_code(secret, self.used_codes))
                page.click("main form button[type=submit]")
                page.wait_for_load_state("networkidle")
            else:
                break
        if "/accounts/login" in page.url or "/2fa/authenticate" in page.url:
            self.problems.append(f"could not sign in as {account.email} on {base} (ended at {page.url})")

    # ---- capturing --------------------------------------------------------------------
    def capture(self, page: Page, name: str) -> None:
        """Screenshot the current page at every width (the page is reloaded per width)."""
        OUT.mkdir(parents=True, exist_ok=True)
        for width, height in WIDTHS.values():
            page.set_viewport_size({"width": width, "height": height})
            page.wait_for_timeout(150)
            path = OUT / f"{name}-{width}.png"
            page.screenshot(path=str(path), full_page=True)
            overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
            if overflow > 0:
                self.problems.append(f"{name} @ {width}px: page is {overflow}px wider than the viewport")
            print(f"  {path.relative_to(ROOT)}")

    def visit(self, page: Page, shot: Shot) -> None:
        base = self.hosts.get(shot.host, shot.host)
        response = page.goto(base + shot.path)
        page.wait_for_load_state("networkidle")
        if shot.before:
            shot.before(page)
        status = response.status if response else 0
        if status not in shot.status_ok:
            self.problems.append(f"{shot.name}: HTTP {status} for {base + shot.path}")
        # Toasts auto-dismiss; freeze them so screenshots are stable.
        page.add_style_tag(content=".toast{transition:none!important}")
        self.capture(page, shot.name)


def _demo_file() -> dict:
    path = ROOT / "var" / "demo.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _open_first_tenant(page: Page) -> None:
    link = page.locator("#tenant-results tbody a").first
    if link.count():
        link.click()
        page.wait_for_load_state("networkidle")


def _search(text: str) -> Callable[[Page], None]:
    def run(page: Page) -> None:
        page.locator("#tenant-q").press_sequentially(text, delay=30)  # keyup events, as a person types
        page.wait_for_timeout(900)  # htmx: keyup changed delay:300ms, then the swap

    return run


def _invalid_tenant_form(page: Page) -> None:
    page.fill("#id_name", "Bad Colours Ltd")
    page.fill("#id_slug", "Bad slug!")
    page.fill("#id_product_name", "Bad Colours")
    page.evaluate(
        """() => { const i = document.querySelector('#id_primary_color'); i.value = '#f5d76e'; i.dispatchEvent(new Event('input')); }"""
    )
    page.click("main form button[type=submit]")
    page.wait_for_load_state("networkidle")


def _new_api_key(page: Page) -> None:
    page.fill("#id_name", f"Screenshot key {int(time.time())}")
    page.check("input[name=scopes][value='audit:read']")
    page.click("main section.card form button[type=submit]")
    page.wait_for_load_state("networkidle")


def _user_menu(page: Page) -> None:
    page.click(".user-menu summary")


DEFAULT_SHOTS = [
    Shot("console-login", "console", "/accounts/login/", None),
    Shot("console-password-reset", "console", "/accounts/password/reset/", None),
    Shot("console-reset-bad-key", "console", "/accounts/password/reset/key/1-abc/", None),
    Shot("unknown-host", "http://nowhere.localhost:{port}", "/", None, status_ok=(404,)),
    Shot("console-tenants", "console", "/tenants/", "console"),
    Shot("console-tenants-menu", "console", "/tenants/", "console", before=_user_menu),
    Shot("console-tenants-search-empty", "console", "/tenants/", "console", before=_search("zzz-no-such")),
    Shot("console-tenant-detail", "console", "/tenants/?q=acme", "console", before=_open_first_tenant),
    Shot("console-tenant-new", "console", "/tenants/new/", "console"),
    Shot("console-tenant-new-errors", "console", "/tenants/new/", "console", before=_invalid_tenant_form),
    Shot("console-partners", "console", "/partners/", "console"),
    Shot("console-audit", "console", "/audit/", "console"),
    Shot("console-404", "console", "/no-such-page/", "console", status_ok=(404,)),
    Shot("tenant-login", "tenant", "/accounts/login/", None),
    Shot("tenant-home", "tenant", "/", "tenant"),
    Shot("tenant-users", "tenant", "/settings/users/", "tenant"),
    Shot("tenant-api-keys", "tenant", "/settings/api-keys/", "tenant"),
    Shot("tenant-api-key-created", "tenant", "/settings/api-keys/", "tenant", before=_new_api_key),
    Shot("tenant-support-access", "tenant", "/settings/support-access/", "tenant"),
    Shot("tenant-audit", "tenant", "/settings/audit/", "tenant"),
    Shot("tenant-mfa", "tenant", "/accounts/2fa/", "tenant"),
]


def _support_session(tour: Tour, browser) -> None:
    """Console: ask for support access to the tenant, enter it, and capture the banner."""
    context = browser.new_context()
    page = context.new_page()
    tour.sign_in(page, "console", tour.accounts["console"])
    slug = re.sub(r"^https?://([^.:/]+).*$", r"\1", tour.hosts["tenant"])
    page.goto(tour.hosts["console"] + f"/tenants/?q={slug}")
    _open_first_tenant(page)
    page.fill("#id_reason", "Screenshot tour: checking the support banner")
    page.fill("#id_hours", "0.25")
    page.click("main form[action*='/support/'] button[type=submit]")
    page.wait_for_load_state("networkidle")
    tour.capture(page, "console-tenant-detail-grant")
    enter = page.locator("form[action*='/enter/'] button").first
    if not enter.count():
        tour.problems.append("support: no 'Enter tenant' button after requesting access")
        context.close()
        return
    enter.click()
    page.wait_for_load_state("networkidle")
    tour.capture(page, "tenant-support-session")
    context.close()


def main() -> int:
    demo = _demo_file()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--console", default="http://localhost:8010")
    parser.add_argument("--tenant", default="http://acme.localhost:8010")
    parser.add_argument("--console-email", default="admin@relay.localhost")
    parser.add_argument("--tenant-email", default="admin@acme.localhost")
    parser.add_argument("--password", default=(demo.get("console", {}).get("logins") or [{}])[0].get("password", "baton-demo-2026"))
    parser.add_argument("--totp-secret", default="")
    parser.add_argument("--only", nargs="*", help="names of default shots to take")
    parser.add_argument(
        "--url",
        action="append",
        default=[],
        help="extra page as console:/path or tenant:/path (signed in), anon-console:/path or anon-tenant:/path (signed out)",
    )
    parser.add_argument("--no-support", action="store_true", help="skip the support-session flow (it creates a grant)")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()

    tour = Tour(args)
    port = re.sub(r"^.*:(\d+)$", r"\1", tour.hosts["console"])
    shots = [s for s in DEFAULT_SHOTS if not args.only or s.name in args.only]
    for index, spec in enumerate(args.url):
        host, _, path = spec.partition(":")
        signed_out = host.startswith("anon-")
        host = host.removeprefix("anon-")
        slug = re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-")[:60] or "root"
        shots.append(Shot(f"extra-{index}-{host}-{slug}", host, path, None if signed_out else host))

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
        sessions: dict[str | None, object] = {}
        for shot in shots:
            shot.host = shot.host.replace("{port}", port)
            if shot.account not in sessions:
                context = browser.new_context()
                page = context.new_page()
                if shot.account:
                    tour.sign_in(page, shot.account, tour.accounts[shot.account])
                sessions[shot.account] = page
            print(shot.name)
            tour.visit(sessions[shot.account], shot)  # type: ignore[arg-type]
        if not args.no_support and not args.only:
            print("support session")
            _support_session(tour, browser)
        browser.close()

    for problem in tour.problems:
        print("PROBLEM:", problem)
    return 1 if tour.problems else 0


if __name__ == "__main__":
    sys.exit(main())
