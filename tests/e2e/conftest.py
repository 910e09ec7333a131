"""Browser tests: Playwright's sync API driving Debian's Chromium against pytest-django's live server.

Never `playwright install`: the browser is /usr/bin/chromium (`apt-get install chromium`).
"""

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

# Playwright's sync API keeps an event loop in this thread; Django refuses ORM calls from it unless told that
# this is fine here (the tests create their data with the ORM while the browser is open).
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
PASSWORD = "pw-123456"


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing: apt-get install chromium"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@dataclass
class Session:
    """One browser context (its own cookies) and everything its pages wrote to the console."""

    page: object
    base_url: str
    console: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    def goto(self, path: str):
        return self.page.goto(self.base_url + path)

    def login(self, username: str) -> None:
        self.goto("/accounts/login/")
        self.page.fill("input[name=username]", username)
        self.page.fill("input[name=password]", PASSWORD)
        with self.page.expect_navigation():
            self.page.click("form.stack button[type=submit]")

    def csp_violations(self) -> list[str]:
        return [m for m in self.console if "Content Security Policy" in m]


@pytest.fixture
def new_session(browser, live_server) -> Iterator:
    """Open a browser session; each one is checked for CSP violations and script errors when the test ends."""
    sessions: list[tuple[object, Session]] = []

    def make(locale: str = "zh-CN") -> Session:
        context = browser.new_context(locale=locale, timezone_id="Asia/Shanghai",
                                      viewport={"width": 1366, "height": 900})
        session = Session(page=context.new_page(), base_url=live_server.url)
        session.page.on("console", lambda message: session.console.append(f"{message.type}: {message.text}"))
        session.page.on("pageerror", lambda error: session.page_errors.append(str(error)))
        sessions.append((context, session))
        return session

    yield make
    for context, _ in sessions:
        context.close()
