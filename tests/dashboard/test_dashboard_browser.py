"""The analytics dashboard in headless Chromium, against a live server on demo data.

Needs Chromium at /usr/bin/chromium (or ``CHROMIUM_PATH``); without it the tests are skipped,
except under CI (``CI`` set), where a missing browser is a failure. ``UPDATE_SCREENSHOTS=1``
refreshes ``docs/screenshots/dashboard.png``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from analytics.reads import analytics_today
from tests.browser_support import require_chromium, serve

ROOT = Path(__file__).resolve().parents[2]
WAIT_MS = 20_000
ADMIN_EMAIL, ADMIN_PASSWORD = "head@school.org", "dashboard-admin-1"

pytestmark = [pytest.mark.browser]

require_chromium()

playwright_sync = pytest.importorskip("playwright.sync_api")


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def live_server(app) -> Iterator[str]:
    with serve(app, "dashboard-live-server") as url:
        yield url


@pytest.fixture
def demo(app) -> None:
    """Demo data (about 100 days, 60 students), rolled up through yesterday like the nightly job, and an admin."""
    from analytics import reads as data
    from analytics.rollup import local_today, rollup_range
    from analytics.tables import ROLLUP_TABLES
    from devtools.demo import seed_demo
    from foundation.extensions import db
    from tutor.users import create_user

    with app.app_context():
        with db.engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {', '.join(ROLLUP_TABLES)}"))
        seed_demo(db.engine, students=60, days=100, sessions=2400, seed=5, progress=False)
        today = local_today()
        rollup_range(today - timedelta(days=100), today - timedelta(days=1))
        from analytics.knowledge import refit

        refit()  # the nightly mastery refit: the learning section reads its snapshots
        create_user(ADMIN_EMAIL, ADMIN_PASSWORD, role="admin")
        db.session.commit()
        db.session.remove()
    data.clear_cache()


@pytest.fixture
def page(browser, live_server, demo):
    context = browser.new_context(base_url=live_server, viewport={"width": 1440, "height": 900})
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    page.problems = []
    page.on("pageerror", lambda error: page.problems.append(f"page error: {error}"))
    # script errors and CSP refusals show in the console; failed requests are checked by URL
    # (the login page has no favicon, which is not the dashboard's concern)
    page.on(
        "console",
        lambda message: (
            page.problems.append(f"console: {message.text}")
            if message.type == "error" and not message.text.startswith("Failed to load resource")
            else None
        ),
    )
    page.on(
        "response",
        lambda response: (
            page.problems.append(f"HTTP {response.status}: {response.url}")
            if response.status >= 400 and not response.url.endswith("/favicon.ico")
            else None
        ),
    )
    yield page
    context.close()


# ----------------------------------------------------------------------------- helpers


def log_in(page) -> None:
    page.goto("/login")
    page.fill("#login-form input[name=email]", ADMIN_EMAIL)
    page.fill("#login-form input[name=password]", ADMIN_PASSWORD)
    page.click("#login-form button[type=submit]")
    page.wait_for_url(re.compile(r"^(?!.*/login)"))


def points(page, graph_id: str) -> int:
    return page.evaluate(
        """id => { const g = document.querySelector('#' + id + ' .js-plotly-plot');
                   return g && g.data && g.data[0] && g.data[0].x ? g.data[0].x.length : -1; }""",
        graph_id,
    )


def wait_points(page, graph_id: str, n: int) -> None:
    page.wait_for_function(
        """([id, n]) => { const g = document.querySelector('#' + id + ' .js-plotly-plot');
                          return g && g.data && g.data[0] && g.data[0].x && g.data[0].x.length === n; }""",
        arg=[graph_id, n],
    )


def choose_period(page, label: str) -> None:
    page.locator("#time-range label", has_text=label).click()


# ----------------------------------------------------------------------------- tests


def traces(page, graph_id: str) -> int:
    return page.evaluate(
        "id => { const g = document.querySelector('#' + id + ' .js-plotly-plot'); return g && g.data ? g.data.length : -1; }",
        graph_id,
    )


def test_admin_switches_week_month_quarter_and_the_charts_follow(app, page):
    log_in(page)
    page.goto("/admin/analytics/")
    page.wait_for_selector("#sessions-chart .js-plotly-plot")
    wait_points(page, "sessions-chart", 30)  # the default period: a month
    page.wait_for_function("() => document.querySelector('#range-label').textContent.includes('30 days')")
    month_total = page.locator("#kpi-sessions .kpi-value").inner_text()

    choose_period(page, "Week")
    wait_points(page, "sessions-chart", 7)
    wait_points(page, "duration-chart", 7)
    page.wait_for_function("() => document.querySelector('#range-label').textContent.includes('7 days')")
    week_total = page.locator("#kpi-sessions .kpi-value").inner_text()
    assert int(week_total.replace(",", "")) < int(month_total.replace(",", ""))

    choose_period(page, "Month")
    wait_points(page, "sessions-chart", 30)
    choose_period(page, "Quarter")
    wait_points(page, "sessions-chart", 90)
    wait_points(page, "quality-chart", 90)
    page.wait_for_function("() => document.querySelector('#range-label').textContent.includes('90 days')")
    # the date picker shows the quarter's dates; the last point is today, drawn live
    last_x = page.evaluate("() => document.querySelector('#sessions-chart .js-plotly-plot').data[0].x.slice(-1)[0]")
    assert last_x == analytics_today(ZoneInfo(app.config["ANALYTICS_TZ"])).isoformat()
    start = analytics_today(ZoneInfo(app.config["ANALYTICS_TZ"])) - timedelta(days=89)
    assert page.input_value("#date-range") == f"{start.day} {start:%b %Y}"  # the picker follows the period

    # every chart drew its traces, the KPI cards carry their change
    expected = {"topics-chart": 1, "usage-heatmap": 1, "satisfaction-chart": 2, "quality-chart": 9, "subjects-chart": 2}
    assert {graph: traces(page, graph) for graph in expected} == expected
    assert page.locator(".kpi-change").count() == 7

    # clicking a topic lists its sessions
    bar = page.locator("#topics-chart .bars .point path").last  # the most popular topic, drawn on top
    bar.scroll_into_view_if_needed()
    box = bar.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_function("() => document.querySelector('#recent-title').textContent.startsWith('Sessions on')")
    topic = page.locator("#recent-title").inner_text()
    listed = page.locator("#recent-sessions tbody tr")
    assert listed.count() > 0
    name = topic.split("“", 1)[1].rstrip("”")
    assert all(name in listed.nth(i).locator("td").nth(3).inner_text() for i in range(listed.count()))

    # choosing a student shows their timeline
    first = page.locator("#students-table tbody tr a").first
    student = first.inner_text()
    first.click()
    page.wait_for_function("() => location.hash.startsWith('#student-')")  # the timeline is addressable
    page.wait_for_function("name => document.querySelector('#student-name').textContent.startsWith(name)", arg=student)
    page.wait_for_function(
        "() => { const g = document.querySelector('#student-sessions-chart .js-plotly-plot'); return g && g.data.length > 0; }"
    )
    # the learning section: mastery per student and topic, its course, the chosen student's curve
    for graph in ("mastery-heatmap", "mastery-trend", "student-mastery-chart"):
        page.wait_for_function(
            "id => { const g = document.querySelector('#' + id + ' .js-plotly-plot'); return g && g.data.length > 0; }",
            arg=graph,
        )

    if os.environ.get("UPDATE_SCREENSHOTS"):  # refresh the README's picture on demand only
        choose_period(page, "Month")
        wait_points(page, "sessions-chart", 30)
        page.wait_for_timeout(800)  # let the last transitions settle
        screenshots = ROOT / "docs" / "screenshots"
        screenshots.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(screenshots / "dashboard.png"), full_page=True)

    assert not page.problems, page.problems  # no script errors, no blocked resources (CSP)


def test_views_are_addressable_and_empty_ranges_fit(app, page):
    """A view opens from its URL and every change writes the URL (reload keeps it); an empty
    range says so without pushing the page sideways; a KPI card leads to its chart."""
    log_in(page)
    page.goto("/admin/analytics/?range=week&subject=science")
    wait_points(page, "sessions-chart", 7)
    page.wait_for_function("() => document.querySelector('#range-label')?.textContent.includes('7 days')")
    page.wait_for_function("() => document.querySelector('#time-range input[value=week]')?.checked")
    page.wait_for_function("() => document.querySelector('#subject-filter')?.innerText.includes('Science')")

    choose_period(page, "Quarter")
    page.wait_for_function("() => location.search.includes('range=quarter')")
    assert "subject=science" in page.evaluate("location.search")
    wait_points(page, "sessions-chart", 90)
    page.reload()
    wait_points(page, "sessions-chart", 90)
    page.wait_for_function("() => document.querySelector('#time-range input[value=quarter]')?.checked")
    page.wait_for_function("() => document.querySelector('#subject-filter')?.innerText.includes('Science')")

    # a range long before the demo data: nothing to show, nothing to compare, no sideways scroll
    page.goto("/admin/analytics/?range=custom&start=2020-01-01&end=2020-01-10")
    page.wait_for_function("() => document.querySelector('#range-label')?.textContent.includes('no sessions')")
    page.wait_for_function("() => document.querySelector('#time-range input[value=custom]')?.checked")
    page.wait_for_function("() => document.querySelector('#kpi-sessions .kpi-change')?.innerText === 'no earlier data'")
    assert page.evaluate("document.documentElement.scrollWidth") <= 1440

    page.goto("/admin/analytics/?range=month")
    page.wait_for_function("() => document.querySelector('#range-label')?.textContent.includes('30 days')")
    page.locator("#kpi-failure-rate").click()
    page.wait_for_function("() => location.hash === '#quality-chart-card'")
    page.wait_for_function(  # scrolled to the AI quality chart
        "() => { const top = document.querySelector('#quality-chart-card')?.getBoundingClientRect().top;"
        " return top >= 0 && top < 100; }"
    )
    assert "range=month" in page.evaluate("location.search")
    assert not page.problems, page.problems


def test_anonymous_visitors_are_sent_to_log_in(browser, live_server):
    context = browser.new_context(base_url=live_server)
    try:
        page = context.new_page()
        page.goto("/admin/analytics/")
        assert "/login" in page.url
        assert page.locator("#sessions-chart").count() == 0
    finally:
        context.close()
