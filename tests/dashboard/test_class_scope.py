"""Teachers on the dashboard: every callback, asked over HTTP as the teacher of one class, answers
with nothing about the students of another class (the way test_admin_guard checks every URL)."""

from __future__ import annotations

import base64
import json
from datetime import datetime, time, timedelta

import pytest

from analytics import reads as data
from analytics.rollup import rollup_range
from dashboard import callbacks
from foundation.extensions import db
from tests.conftest import make_student
from tests.rows import Rows

TZ = data.ZoneInfo("UTC")


def post(client, payload):
    return client.post(
        "/admin/analytics/_dash-update-component",
        data=json.dumps(payload),
        headers={"Content-Type": "application/json", "Origin": "http://localhost"},
    )


@pytest.fixture
def two_classes(app):
    """Mrs A teaches Ann and Amy, Mr B teaches Zed Quixote; all had sessions this week, rolled up
    but for today. Zed's name, e-mail, id, subject (science) and grade (11) are his alone."""
    t1 = make_student(app, "mrs.a@school.org", role="teacher")
    t2 = make_student(app, "mr.b@school.org", role="teacher")
    admin = make_student(app, "head@school.org", role="admin")
    c1 = t1.post("/api/v1/classes", json={"name": "7A"}).get_json()
    c2 = t2.post("/api/v1/classes", json={"name": "11Z"}).get_json()
    with app.app_context():
        today = data.analytics_today()
        rows = Rows()
        ann, amy = rows.user(grade=7, name="Ann"), rows.user(grade=7, name="Amy")
        zed = rows.user(grade=11, name="Zed Quixote")
        db.session.execute(db.text("UPDATE users SET email = 'zed.quixote@other.org' WHERE id = :z"), {"z": zed})
        for back in range(6, -1, -1):
            day = datetime.combine(today - timedelta(days=back), time(10), tzinfo=TZ)
            for who, subject in ((ann, "mathematics"), (amy, "mathematics"), (zed, "science"), (zed, "science")):
                s = rows.session(
                    who, day, subject=subject, rating=1, topics=("cells",) if who == zed else ("fractions",)
                )
                rows.exchange(s, day + timedelta(minutes=1), revealed=True)
        for who, subject, topic in ((ann, "mathematics", "fractions"), (amy, "mathematics", "fractions"),
                                    (zed, "science", "cells")):  # fmt: skip
            # mastery (the learning section): everyone is at risk (stuck, and no session for weeks by the snapshot)
            db.session.execute(
                db.text(
                    "INSERT INTO mastery (student_id, subject, topic, p_known, attempts, correct, last_attempt) "
                    "VALUES (:s, :subject, :topic, 0.2, 6, 1, now())"
                ),
                {"s": who, "subject": subject, "topic": topic},
            )
            db.session.execute(
                db.text(
                    "INSERT INTO mastery_students (student_id, subject, grade_level, topics, mastery_avg, stuck, "
                    "last_attempt, last_session, snapshot_at) VALUES (:s, :subject, 7, 1, 0.2, ARRAY[:topic], now(), "
                    "now() - interval '30 days', now())"
                ),
                {"s": who, "subject": subject, "topic": topic},
            )
        db.session.execute(
            db.text("INSERT INTO class_members (class_id, student_id) VALUES (:c1, :a), (:c1, :b), (:c2, :z)"),
            {"c1": c1["id"], "c2": c2["id"], "a": ann, "b": amy, "z": zed},
        )
        db.session.commit()
        rollup_range(today - timedelta(days=30), today - timedelta(days=1))
        data.clear_cache()
        db.session.remove()
    return {"t1": t1, "t2": t2, "admin": admin, "c1": c1["id"], "c2": c2["id"], "ann": ann, "amy": amy, "zed": zed}


#: A value for every input and state of every callback, chosen to show as much as possible.
def _values(world) -> dict[str, object]:
    click = {"points": [{"curveNumber": 0, "pointNumber": 0, "y": "cells", "customdata": "cells"}]}
    return {
        "url.search": "?range=quarter",
        "url.hash": f"#student-{world['zed']}",
        "time-range.value": "quarter",
        "date-range.start_date": None,
        "date-range.end_date": None,
        "subject-filter.value": None,
        "grade-filter.value": None,
        "class-filter.value": None,
        "selected-topic.data": "cells",
        "topics-chart.clickData": click,
        "topics-chart.figure": None,
        "clear-topic.n_clicks": None,
        "student-search.value": None,
        "selected-student.data": world["zed"],
        "dashboard-root.id": "dashboard-root",
        "export-daily.n_clicks": 1,
        "export-students.n_clicks": 1,
        "export-at-risk.n_clicks": 1,
    }


def _payloads(app, values: dict[str, object]):
    """One request per callback of the app, as dash-renderer sends it (every input fired)."""
    for output, spec in app.extensions["dash"].callback_map.items():
        inputs = [{**i, "value": values[f"{i['id']}.{i['property']}"]} for i in spec["inputs"]]
        state = [{**s, "value": values[f"{s['id']}.{s['property']}"]} for s in spec["state"]]
        outputs = [{"id": o.split(".")[0], "property": o.split(".")[1]} for o in output.strip(".").split("...")]
        yield (
            output,
            {
                "output": output,
                "outputs": outputs if output.startswith("..") else outputs[0],
                "inputs": inputs,
                "changedPropIds": [f"{i['id']}.{i['property']}" for i in spec["inputs"]],
                "state": state,
            },
        )


def _readable(response) -> str:
    """The answer's text, with downloads (CSV, maybe base64) decoded."""
    body = response.get_json() or {}
    text = json.dumps(body)
    for value in (body.get("response") or {}).values():
        download = value.get("data") if isinstance(value, dict) else None
        if isinstance(download, dict) and "content" in download:
            content = download["content"]
            text += base64.b64decode(content).decode() if download.get("base64") else content
    return text


def test_every_callback_as_a_teacher_returns_nothing_about_another_class(app, two_classes):
    world = two_classes
    values = _values(world)
    secrets = ("Zed", "Quixote", "zed.quixote", f"#student-{world['zed']}", f'student-{world["zed"]}"')
    covered = set()
    for output, payload in _payloads(app, values):
        for class_filter in (None, [world["c2"]]):  # also: asking for the other class by its id
            payload["inputs"] = [
                {**i, "value": class_filter} if i["id"] == "class-filter" else i for i in payload["inputs"]
            ]
            payload["state"] = [
                {**s, "value": class_filter} if s["id"] == "class-filter" else s for s in payload["state"]
            ]
            response = post(world["t1"].client, payload)
            assert response.status_code in (200, 204), (output, response.status_code, response.data[:300])
            text = _readable(response)
            for secret in secrets:
                assert secret not in text, (output, class_filter, secret)
        covered.add(output)
    assert len(covered) == len(app.extensions["dash"].callback_map) >= 12


def test_a_teacher_sees_their_own_students_in_every_figure(app, two_classes):
    world = two_classes
    t1 = world["t1"].client
    view = post(t1, callbacks.main_callback_payload("week")).get_json()["response"]
    sessions = view["sessions-chart"]["figure"]["data"][0]["y"]
    assert sum(sessions) == 2 * 7  # Ann's and Amy's, not Zed's 14
    assert view["kpi-cards"]["children"][1]["props"]["children"][1]["props"]["children"] == "2"  # active students
    subjects = json.dumps(view["subjects-chart"]["figure"])
    assert "Science" not in subjects and "Mathematics" in subjects
    learning = callbacks.callback_payload(
        [callbacks.Output("mastery-heatmap", "figure"), callbacks.Output("mastery-trend", "figure"),
         callbacks.Output("at-risk-table", "children")],
        [(c.component_id, c.component_property, v) for c, v in zip(callbacks.CONTROLS, ["week", None, None, None, None, None], strict=True)],
        ["time-range.value"],
    )  # fmt: skip
    seen = json.dumps(post(t1, learning).get_json()["response"])
    assert "Ann" in seen and "Amy" in seen and "Zed" not in seen
    # the admin sees everyone, and narrows to a class with the filter
    admin = world["admin"].client
    everyone = post(admin, callbacks.main_callback_payload("week")).get_json()["response"]
    assert sum(everyone["sessions-chart"]["figure"]["data"][0]["y"]) == 4 * 7
    class_b = post(admin, callbacks.main_callback_payload("week", classes=[world["c2"]])).get_json()["response"]
    assert sum(class_b["sessions-chart"]["figure"]["data"][0]["y"]) == 2 * 7
    # Mr B, whose class holds only Zed, sees only Zed
    mr_b = post(world["t2"].client, callbacks.main_callback_payload("week")).get_json()["response"]
    assert sum(mr_b["sessions-chart"]["figure"]["data"][0]["y"]) == 2 * 7
    # the class filter lists one's own classes; an admin's lists all
    options = callbacks.callback_payload(
        [callbacks.Output("class-filter", "options"), callbacks.Output("class-filter", "placeholder")],
        [("dashboard-root", "id", "dashboard-root")],
        ["dashboard-root.id"],
    )
    mine = post(t1, options).get_json()["response"]["class-filter"]["options"]
    assert mine == [{"label": "7A", "value": world["c1"]}]
    assert len(post(admin, options).get_json()["response"]["class-filter"]["options"]) == 2


def test_teachers_reach_only_the_analytics_under_admin(app, two_classes):
    t1 = two_classes["t1"].client
    assert t1.get("/admin/analytics/").status_code == 200
    assert t1.get("/admin/analytics/_dash-layout").status_code == 200
    for url in ("/admin/rq/", "/admin/schedule", "/admin/audit", "/admin/rq/0/data/queues.json"):
        assert t1.get(url).status_code == 403, url


def test_sessions_worth_a_look_link_to_the_transcript(app, two_classes):
    world = two_classes
    payload = callbacks.callback_payload(
        [callbacks.Output("review-list", "children")],
        [(c.component_id, c.component_property, v) for c, v in zip(callbacks.CONTROLS, ["week", None, None, None, None, None], strict=True)],
        ["time-range.value"],
    )  # fmt: skip
    listing = json.dumps(post(world["t1"].client, payload).get_json()["response"])
    assert "answer revealed" in listing and "rated 1/5" in listing and "Ann" in listing
    link = listing.split('href=\\"/review/')[1].split('\\"')[0]
    assert world["t1"].get(f"/review/{link}").status_code == 200
    assert world["t2"].get(f"/review/{link}").status_code == 404
