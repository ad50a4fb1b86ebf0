"""My progress and Quiz me in headless Chromium: a student takes a quiz and sees the bar move.

Needs Chromium at /usr/bin/chromium (or ``CHROMIUM_PATH``); skipped without it except under CI.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.browser_support import require_chromium, serve
from tutor.grading import answer_for

WAIT_MS = 20_000
EMAIL, PASSWORD = "quizzer@school.org", "learning123"

pytestmark = [pytest.mark.browser]

require_chromium()

playwright_sync = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def live_server(app) -> Iterator[str]:
    with serve(app, "progress-live-server") as url:
        yield url


@pytest.fixture
def page(app, browser, live_server):
    from foundation.extensions import db
    from tutor.users import create_user

    with app.app_context():
        create_user(EMAIL, PASSWORD, grade_level=8)
        db.session.commit()
    context = browser.new_context(base_url=live_server)
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    page.problems = []
    page.on("pageerror", lambda e: page.problems.append(str(e)))
    page.on("console", lambda m: "Content Security Policy" in m.text and page.problems.append(m.text))
    page.on(
        "response",
        lambda r: (
            r.status >= 400 and not r.url.endswith("/favicon.ico") and page.problems.append(f"{r.status} {r.url}")
        ),
    )
    page.goto("/login")
    page.fill("input[name=email]", EMAIL)
    page.fill("input[name=password]", PASSWORD)
    page.click("form button:has-text('Log in')")
    page.wait_for_url("**/sessions")
    yield page
    context.close()


def _take_quiz(page, right: int) -> None:
    labels = page.locator("form.quiz label")
    count = labels.count()
    for i in range(count):
        question = labels.nth(i).inner_text().strip()
        expected = answer_for("mathematics", "linear equations", question)
        assert expected is not None, question
        page.locator("form.quiz input[name=answer]").nth(i).fill(expected.answer if i < right else "x = 100")
    page.click("text=Check my answers")


def test_quiz_me_from_my_progress_moves_the_mastery_bar(page):
    page.click("nav >> text=My progress")
    page.wait_for_selector("text=No graded answers yet")
    page.select_option("select[name=choice]", "mathematics/linear equations")
    page.click("form.quiz-pick button")
    page.wait_for_selector("h1:has-text('Quiz: Linear equations')")
    assert page.locator("form.quiz input[name=answer]").count() == 5
    _take_quiz(page, right=2)
    page.wait_for_selector("text=2 of 5 right")
    assert page.locator(".results li.wrong").count() == 3
    first = float(page.locator(".mastery-change meter").get_attribute("value"))

    page.click("text=Another quiz")
    page.wait_for_selector("h1:has-text('Quiz: Linear equations')")
    _take_quiz(page, right=5)
    page.wait_for_selector("text=5 of 5 right")
    page.click("a:has-text('My progress')")
    row = page.locator("tr[data-topic='linear equations']")
    row.wait_for()
    now = float(row.locator("meter").get_attribute("value"))
    assert now > first and now >= 0.8
    assert "7 of 10" in row.inner_text() and "mastered" in row.inner_text()
    next_up = page.locator(".next-up")
    assert next_up.get_attribute("data-topic") == "expanding brackets"  # all mastered: the next topic
    next_up.locator("text=Quiz me").click()
    page.wait_for_selector("h1:has-text('Quiz: Expanding brackets')")
    assert page.problems == []
