"""Playwright driving the system Chromium (no browser download: the machine has none to fetch)."""

from __future__ import annotations

import time
from pathlib import Path

from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
SCREENS = Path(__file__).resolve().parent / "artifacts" / "screens"
WIDTHS = {"desktop": 1366, "phone": 390}


def totp_now(secret: str) -> str:
    return format_hotp_value(hotp_value(secret, int(time.time()) // 30))


def screenshot(page, name: str) -> None:
    """Save the page at desktop and phone widths, for people to look at."""
    SCREENS.mkdir(parents=True, exist_ok=True)
    original = page.viewport_size
    for label, width in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=str(SCREENS / f"{name}-{label}.png"), full_page=True)
    page.set_viewport_size(original)


def sign_in(page, base_url: str, email: str, password: str, totp_secret: str | None = None) -> None:
    page.goto(base_url + "/accounts/login/")
    page.fill("input[name=login]", email)
    page.fill("input[name=password]", password)
    page.click("form button[type=submit]")
    page.wait_for_load_state()
    if totp_secret and page.locator("input[name=code]").count():
        for _attempt in range(3):
            page.fill("input[name=code]", totp_now(totp_secret))
            page.click("form button[type=submit]")
            page.wait_for_load_state()
            if "/2fa/authenticate" not in page.url:
                break
            # The code was used by an earlier sign-in in this period (allauth refuses a reuse) or
            # expired at the boundary: the next period's code.
            time.sleep(30 - time.time() % 30 + 0.5)
