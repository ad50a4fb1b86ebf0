"""The chat pages in headless Chromium, against a live server and a real RQ worker.

Needs Chromium at /usr/bin/chromium (Debian: ``apt-get install -y chromium``); the tests are
skipped without it. Select or deselect them with ``-m browser`` / ``-m "not browser"``.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from tests.browser_support import require_chromium
from tests.conftest import TEST_CONFIG
from tutor.embed import make_token

ROOT = Path(__file__).resolve().parents[2]
WAIT_MS = 20_000
QUESTION = "How do I solve 2x + 3 = 7?"
PASSWORD = "learning123"

pytestmark = [pytest.mark.browser]

require_chromium()

playwright_sync = pytest.importorskip("playwright.sync_api")


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def live_server(app, services) -> Iterator[str]:
    """The test app on a free port, and a real worker (``python worker.py``) beside it."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    env = {
        **os.environ,
        **services,
        "APP_ENV": "development",
        "AI_PROVIDER": "builtin",
        "BUILTIN_CHUNK_DELAY": "0.02",
        "AI_RETRY_DELAYS": "0,0,0",
        "EMBED_SECRET": TEST_CONFIG["EMBED_SECRET"],
    }
    with tempfile.TemporaryFile(mode="w+") as log:
        worker = subprocess.Popen(
            [sys.executable, "worker.py"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            _wait_for_worker(worker, log, services["REDIS_URL"])
            yield f"http://127.0.0.1:{server.server_port}"
        finally:
            server.shutdown()
            server.server_close()
            thread.join(5)
            if worker.poll() is None:
                worker.terminate()
                try:
                    worker.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(worker.pid, signal.SIGKILL)  # the worker and its work horse
                    worker.wait(5)


def _wait_for_worker(worker: subprocess.Popen, log, redis_url: str) -> None:
    from rq import Worker

    from foundation.extensions import make_redis

    conn = make_redis(redis_url)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"worker.py exited with {worker.returncode}:\n{log.read()[-3000:]}")
        if Worker.all(connection=conn):
            return
        time.sleep(0.1)
    raise RuntimeError("worker.py did not register with Redis within 30 s")


def _wait_until_idle(redis_url: str, timeout: float = 20) -> None:
    """Until the worker has no job queued or running (seen twice, 0.1 s apart): its last jobs
    (session metrics after "End", a reply still streaming) must not write while the next test
    empties the tables."""
    from rq import Queue, Worker

    from foundation.extensions import make_redis
    from foundation.queue import QUEUES

    conn = make_redis(redis_url)
    deadline = time.monotonic() + timeout
    idle_since = None
    while time.monotonic() < deadline:
        queues = [Queue(name, connection=conn) for name in QUEUES]
        busy = any(w.get_state() == "busy" for w in Worker.all(connection=conn)) or any(
            q.count or q.started_job_registry.count for q in queues
        )
        if busy:
            idle_since = None
        elif idle_since is None:
            idle_since = time.monotonic()
        elif time.monotonic() - idle_since >= 0.1:
            return
        time.sleep(0.02)
    raise AssertionError(f"the worker was still busy {timeout} s after the test")


@pytest.fixture
def new_page(browser, live_server, services):
    """``new_page(**context_options)``: a page in a fresh context (no cookies) on the live server."""
    contexts = []

    def make(**options):
        context = browser.new_context(base_url=live_server, **options)
        context.set_default_timeout(WAIT_MS)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()
    _wait_until_idle(services["REDIS_URL"])


# ----------------------------------------------------------------------------- helpers


def create_student(app, email="pupil@school.org", password=PASSWORD) -> int:
    from foundation.extensions import db
    from tutor.users import create_user

    with app.app_context():
        user = create_user(email, password, grade_level=7)
        db.session.commit()
        return user.id


def log_in(page, email="pupil@school.org", password=PASSWORD) -> None:
    page.goto("/login")
    page.fill("#login-form input[name=email]", email)
    page.fill("#login-form input[name=password]", password)
    page.click("#login-form button[type=submit]")
    page.wait_for_url(re.compile(r"/sessions$"))


def open_new_chat(page, subject="mathematics") -> None:
    page.goto(f"/chat?subject={subject}")
    page.wait_for_url(re.compile(r"/sessions/[0-9a-f-]{36}$"))
    page.locator("#message").wait_for(state="visible")


def send_and_wait(page, message: str):
    """Send a message; return the finished tutor bubble."""
    before = page.locator(".bubble.tutor").count()
    page.fill("#message", message)
    page.click("#send")
    bubble = page.locator(".bubble.tutor").nth(before)
    bubble.wait_for(state="attached")
    page.wait_for_function(
        "n => { const b = document.querySelectorAll('.bubble.tutor')[n]; return b && b.dataset.status === 'done'; }",
        arg=before,
        timeout=WAIT_MS,
    )
    return bubble


def query(app, sql: str, **params):
    from foundation.extensions import db

    with app.app_context():
        try:
            return db.session.execute(text(sql), params).all()
        finally:
            db.session.remove()


def execute(app, sql: str, **params):
    from foundation.extensions import db

    with app.app_context():
        try:
            result = db.session.execute(text(sql), params)
            rows = result.all() if result.returns_rows else []
            db.session.commit()
            return rows
        finally:
            db.session.remove()


# Records the last tutor bubble's state every 10 ms, from before it exists until it is done.
SAMPLER = """() => {
  window.__samples = [];
  window.__sampler = setInterval(() => {
    const all = document.querySelectorAll('.bubble.tutor');
    const b = all[all.length - 1];
    if (!b) return;
    window.__samples.push({
      typing: b.classList.contains('typing'),
      len: b.querySelector('.body').textContent.length,
      done: b.dataset.status === 'done',
    });
  }, 10);
}"""


# ----------------------------------------------------------------------------- tests


@pytest.mark.browser
def test_student_logs_in_chats_ends_and_rates(app, new_page):
    create_student(app)
    page = new_page(viewport={"width": 1000, "height": 760})
    log_in(page)
    page.click("a.subject[data-subject=mathematics]")
    page.wait_for_url(re.compile(r"/sessions/[0-9a-f-]{36}$"))
    session_id = page.url.rsplit("/", 1)[1]
    page.locator("#message").wait_for(state="visible")

    page.evaluate(SAMPLER)
    bubble = send_and_wait(page, QUESTION)
    samples = page.evaluate("() => { clearInterval(window.__sampler); return window.__samples; }")

    # The typing indicator was on while the text streamed in, chunk by chunk, and off at the end.
    streaming = [s["len"] for s in samples if s["typing"] and not s["done"]]
    assert streaming, f"never saw the typing indicator: {samples[:5]}"
    growing = sorted({n for n in streaming if n > 0})
    assert len(growing) >= 2, f"the reply did not grow while streaming: {growing}"
    assert streaming == sorted(streaming), "streamed text shrank"
    assert "typing" not in (bubble.get_attribute("class") or "")

    # Student bubble, then a tutor reply that teaches without giving the answer, as Markdown.
    assert page.locator(".bubble.student .body").inner_text() == QUESTION
    reply = bubble.locator(".body").inner_text()
    assert len(reply) > max(growing) * 0.5
    assert not re.search(r"x\s*=\s*2\b", reply), reply
    assert bubble.locator(".body strong").count() >= 1
    assert "**" not in reply  # rendered, not raw Markdown

    if os.environ.get("UPDATE_SCREENSHOTS"):  # refresh the README's picture on demand only
        screenshots = ROOT / "docs" / "screenshots"
        screenshots.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(screenshots / "chat.png"), full_page=True)

    page.click("#end-session")
    page.locator("#rating").wait_for(state="visible")
    page.click(".star[data-rating='4']")
    page.locator("#rating-thanks").wait_for(state="visible")
    assert page.locator(".star.on").count() == 4

    rows = query(app, "SELECT id::text, status, satisfaction, ended_at FROM sessions")
    assert len(rows) == 1
    sid, status, satisfaction, ended_at = rows[0]
    assert (sid, status, satisfaction) == (session_id, "ended", 4)
    assert ended_at is not None


@pytest.mark.browser
def test_embed_works_with_a_token_and_no_login(app, new_page):
    token = make_token(TEST_CONFIG["EMBED_SECRET"], "lms-student-42", "Ada L.", subject="science")
    page = new_page()
    api_calls = []
    page.on(
        "request",
        lambda r: api_calls.append((r.url, r.headers.get("authorization", ""))) if "/api/v1/" in r.url else None,
    )
    page.goto(f"/embed?token={token}")
    assert page.locator("header.topbar").count() == 0  # embedded: no site navigation
    page.locator("#message").wait_for(state="visible")  # the session started by itself
    bubble = send_and_wait(page, "how do plants make food?")
    assert len(bubble.locator(".body").inner_text().strip()) > 20
    assert page.locator("#chat-error").is_hidden()

    # Every API call carried the embed token; no login cookie was ever needed or set.
    assert api_calls and all(auth == f"Bearer {token}" for _, auth in api_calls), api_calls
    cookies = {c["name"] for c in page.context.cookies()}
    assert not cookies & {"session", "remember_token"}, cookies

    rows = query(
        app,
        "SELECT u.role, u.display_name, s.subject, count(m.id) FROM users u "
        "JOIN sessions s ON s.student_id = u.id JOIN messages m ON m.session_id = s.id "
        "WHERE u.external_id = :x GROUP BY u.role, u.display_name, s.subject",
        x="lms-student-42",
    )
    assert rows == [("student", "Ada L.", "science", 2)]


def stored_reply(app, uid: int, content: str) -> str:
    """A maths session of student ``uid`` holding one question and the finished reply ``content``."""
    (sid,) = execute(
        app, "INSERT INTO sessions (student_id, subject) VALUES (:u, 'mathematics') RETURNING id::text", u=uid
    )[0]
    execute(
        app,
        "INSERT INTO messages (session_id, role, content, status) VALUES "
        "(CAST(:s AS uuid), 'student', 'hello', 'done'), (CAST(:s AS uuid), 'tutor', :c, 'done')",
        s=sid,
        c=content,
    )
    return sid


XSS_MESSAGE = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'


@pytest.mark.browser
def test_student_text_and_stored_replies_cannot_run_script(app, new_page):
    uid = create_student(app)
    # Without the pages' Content-Security-Policy, so that this checks the escaping and the
    # sanitizer themselves (the CSP is a second line of defence, not the first).
    page = new_page(bypass_csp=True)
    log_in(page)
    open_new_chat(page)

    send_and_wait(page, XSS_MESSAGE)
    student = page.locator(".bubble.student .body")
    assert student.inner_text() == XSS_MESSAGE  # shown literally
    assert page.locator("#conversation img, #conversation script").count() == 0
    page.wait_for_timeout(200)
    assert page.evaluate("() => typeof window.__xss") == "undefined"

    # A finished reply whose stored Markdown tries to run script (as a model might write it).
    evil = (
        "Look: <script>window.__xss=3</script>\n\n"
        '[click](javascript:window.__xss=4) and <img src=x onerror="window.__xss=5">\n\n'
        "**still Markdown**"
    )
    sid = stored_reply(app, uid, evil)
    page.goto(f"/sessions/{sid}")
    body = page.locator(".bubble.tutor .body")
    body.locator("strong").wait_for()
    assert body.locator("strong").inner_text() == "still Markdown"
    assert page.locator("#conversation script, #conversation img").count() == 0
    assert "<script>window.__xss=3</script>" in body.inner_text()  # escaped, shown as text
    links = body.locator("a")
    for i in range(links.count()):
        href = links.nth(i).get_attribute("href")
        assert href is None or not href.strip().lower().startswith("javascript:"), href
        links.nth(i).click()
    page.wait_for_timeout(200)
    assert page.url.endswith(f"/sessions/{sid}")
    assert page.evaluate("() => typeof window.__xss") == "undefined"


@pytest.mark.browser
def test_chat_fits_a_phone_screen(app, new_page):
    create_student(app)
    page = new_page(viewport={"width": 375, "height": 740}, is_mobile=True, has_touch=True)
    log_in(page)
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 375  # the sessions page
    open_new_chat(page)
    send_and_wait(page, QUESTION)
    send_and_wait(page, "I got " + "x" * 120 + " is that right?")  # a long unbroken word wraps too
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 375, f"horizontal scroll on a phone: scrollWidth {width}"


@pytest.mark.browser
def test_composer_is_hidden_when_there_is_no_active_session(app, new_page):
    uid = create_student(app)
    (sid,) = execute(
        app,
        "INSERT INTO sessions (student_id, subject, status, ended_at) "
        "VALUES (:u, 'mathematics', 'ended', now()) RETURNING id::text",
        u=uid,
    )[0]
    page = new_page()
    log_in(page)
    page.goto("/chat")  # no subject yet: the picker, and nothing to type into
    page.locator("#subject-buttons .subject[data-subject=mathematics]").wait_for(state="visible")
    assert page.locator("#composer").is_hidden()
    page.goto(f"/sessions/{sid}")  # an ended session: the rating, and nothing to type into
    page.locator("#rating").wait_for(state="visible")
    assert page.locator("#composer").is_hidden()


@pytest.mark.browser
def test_maths_in_a_reply_is_typeset_under_the_strict_csp(app, new_page):
    """$...$ becomes MathML by KaTeX from our own static files (the page's CSP on), and a ``*``
    between operands in plain-text maths stays a multiplication sign, never emphasis."""
    uid = create_student(app)
    page = new_page()
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    log_in(page)
    reply = (
        "Write it as $\\frac{3}{4} + \\frac{1}{8}$, then check:\n\n"
        "$$x^2 - 5x + 6 = 0$$\n\n(10*y) * y - x = 20*y, and it costs $5 and $6."
    )
    sid = stored_reply(app, uid, reply)
    page.goto(f"/sessions/{sid}")
    body = page.locator(".bubble.tutor .body")
    body.locator("math").first.wait_for()
    assert body.locator("math").count() == 2
    assert body.locator("math mfrac").count() == 2  # \frac typeset, not shown as TeX
    assert body.locator("math[display=block]").count() == 1
    text_ = body.inner_text()
    assert "(10*y) * y - x = 20*y" in text_ and body.locator("em").count() == 0
    assert "costs $5 and $6" in text_  # dollar amounts stay text
    assert violations == [], violations


# ----------------------------------------------------------------------------- issue 14: the finished chat


@pytest.mark.browser
def test_a_new_session_greets_with_starters_and_stop_keeps_the_partial_reply(app, new_page):
    create_student(app)
    page = new_page()
    log_in(page)
    open_new_chat(page, "science")
    assert page.title() == "Science · AI Tutor" and page.locator("#chat-title").inner_text() == "Science"
    greeting = page.locator(".bubble.tutor.greeting")
    greeting.wait_for()
    assert "Science tutor" in greeting.inner_text()
    starters = page.locator("#starters .starter")
    assert starters.count() == 3
    first = starters.first.inner_text()
    if os.environ.get("UPDATE_SCREENSHOTS"):  # the README's picture of a new session
        page.screenshot(path=str(ROOT / "docs" / "screenshots" / "chat-start.png"))

    starters.first.click()  # a starter is sent as the student's message
    page.locator(".bubble.student").wait_for()
    assert page.locator(".bubble.student .body").inner_text() == first
    assert page.locator("#starters").is_hidden()
    reply = page.locator(".bubble.tutor:not(.greeting)").first
    page.wait_for_function(
        "() => { const b = document.querySelector('.bubble.tutor:not(.greeting) .body'); return b && b.textContent.length > 0; }"
    )
    page.locator("#stop").click()
    page.wait_for_function(
        "() => document.querySelector('.bubble.tutor:not(.greeting)').dataset.status === 'done'", timeout=WAIT_MS
    )
    reply.locator(".stopped-note").wait_for()
    assert page.locator("#stop").is_hidden() and page.locator("#send").is_visible()
    ((stopped, content),) = query(app, "SELECT stopped, content FROM messages WHERE role = 'tutor'")
    assert stopped is True and content and "Let's check" not in content  # ended before its last line


@pytest.mark.browser
def test_thumbs_rating_and_comment_survive_a_reload_and_start_another(app, new_page):
    create_student(app)
    page = new_page()
    log_in(page)
    open_new_chat(page)
    first_session = page.url.rsplit("/", 1)[1]
    bubble = send_and_wait(page, QUESTION)
    bubble.locator(".thumb-up").click()
    page.wait_for_function("() => document.querySelector('.thumb-up').getAttribute('aria-pressed') === 'true'")
    assert query(app, "SELECT feedback FROM messages WHERE role = 'tutor'") == [(1,)]

    page.click("#end-session")
    page.locator("#rating").wait_for(state="visible")
    page.click(".star[data-rating='5']")
    page.locator("#rating-thanks").wait_for(state="visible")
    page.fill("#rating-comment", "Clear hints, thank you")
    page.click("#send-comment")
    page.locator("#comment-thanks").wait_for(state="visible")

    page.reload()
    page.locator("#rating").wait_for(state="visible")
    page.wait_for_function("() => document.querySelectorAll('.star.on').length === 5")
    assert page.locator("#rating-comment").input_value() == "Clear hints, thank you"
    assert page.locator(".thumb-up").get_attribute("aria-pressed") == "true"
    assert page.locator("#composer").is_hidden()

    page.click("#start-another")
    page.wait_for_function(f"() => !location.pathname.endsWith('{first_session}')")
    page.locator("#message").wait_for(state="visible")
    page.locator(".bubble.tutor.greeting").wait_for()
    assert page.locator(".bubble.student").count() == 0 and page.locator("#rating").is_hidden()
    assert query(app, "SELECT count(*), count(*) FILTER (WHERE status = 'active') FROM sessions") == [(2, 1)]


@pytest.mark.browser
def test_reloading_an_embed_continues_the_session(app, new_page):
    page = new_page()
    token = make_token(TEST_CONFIG["EMBED_SECRET"], "lms-student-9", "Bo", subject="english")
    page.goto(f"/embed?token={token}")
    page.locator("#message").wait_for(state="visible")
    send_and_wait(page, "what is a metaphor")
    # The host reloads the embed with a fresh token (docs/EMBEDDING.md): same session, same messages.
    fresh = make_token(TEST_CONFIG["EMBED_SECRET"], "lms-student-9", "Bo", subject="english", ttl=900)
    page.goto(f"/embed?token={fresh}")
    page.locator(".bubble.tutor[data-status=done]").wait_for()
    assert page.locator(".bubble.student .body").inner_text() == "what is a metaphor"
    assert page.locator(".bubble.greeting").count() == 0
    assert query(app, "SELECT count(*) FROM sessions") == [(1,)]
