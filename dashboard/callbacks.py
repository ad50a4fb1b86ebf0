"""The dashboard's callbacks.

Each callback is a plain function of the controls' values (``update_view``, ``export_daily``,
...), so tests call them directly; ``register`` wires them to the Dash app. Callbacks that need
to know which input fired take it as ``trigger`` (``dash.ctx.triggered_id`` in the app).

Whose data: every callback asks ``viewer_scope`` which students the person asking may see: a
teacher only the students of their own classes (narrowed by the class filter), an admin
everyone or the chosen classes' students. Outside a request (tests, scripts) there is no
viewer and the view is everyone's unless classes are chosen.
"""

from __future__ import annotations

from datetime import date
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qs, urlencode

import dash
import pandas as pd
from dash import Dash, Input, Output, State, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate
from flask import current_app

from analytics import reads as data

from . import figures, layout

#: The inputs every view depends on, in the order the callbacks take them.
CONTROLS = [
    Input("time-range", "value"),
    Input("date-range", "start_date"),
    Input("date-range", "end_date"),
    Input("subject-filter", "value"),
    Input("grade-filter", "value"),
    Input("class-filter", "value"),
]
CONTROL_STATES = [State(c.component_id, c.component_property) for c in CONTROLS]

#: The main view's outputs, in the order ``update_view`` returns them.
VIEW_OUTPUTS = [
    Output("range-label", "children"),
    Output("kpi-cards", "children"),
    Output("sessions-chart", "figure"),
    Output("duration-chart", "figure"),
    Output("usage-heatmap", "figure"),
    Output("topics-chart", "figure"),
    Output("satisfaction-chart", "figure"),
    Output("quality-chart", "figure"),
    Output("usage-chart", "figure"),
    Output("subjects-chart", "figure"),
    Output("data-note", "children"),
]


def subject_names() -> dict[str, str]:
    from tutor.curriculum import get_curriculum

    return {s.id: s.name for s in get_curriculum().subjects.values()}


def topic_names() -> dict[str, str]:
    """Topic id -> the curriculum's name for it (the first subject that has it)."""
    from tutor.curriculum import get_curriculum

    names: dict[str, str] = {}
    for subject in get_curriculum().subjects.values():
        for topic in subject.topics:
            names.setdefault(topic.id, topic.name)
    return names


def prices() -> dict[str, tuple[float, float]]:
    """``AI_PRICES`` as {model: (prompt, completion)} per million tokens."""
    return _parsed_prices(current_app.config.get("AI_PRICES", ""))


@lru_cache(maxsize=4)
def _parsed_prices(raw: str) -> dict[str, tuple[float, float]]:
    from foundation.config import parse_prices

    return parse_prices(raw)


def _class_ids(classes) -> list[int]:
    if classes is None or classes == "":
        return []
    values = classes if isinstance(classes, list | tuple) else [classes]
    return [c for c in dict.fromkeys(data._as_grade(v) for v in values) if c is not None]


def viewer_scope(classes=None) -> tuple[int, ...] | None:
    """The students the person asking may see (None: everyone), narrowed to ``classes``."""
    from flask import has_request_context
    from flask_login import current_user

    from tutor.classes import students_in_scope, students_of_classes

    class_ids = _class_ids(classes)
    if has_request_context():
        return students_in_scope(current_user, class_ids)
    return students_of_classes(class_ids) if class_ids else None


def _filters(time_range, start, end, subjects, grades, classes=None, today: date | None = None) -> data.Filters:
    return data.Filters.from_controls(
        time_range, start, end, subjects, grades, today=today, students=viewer_scope(classes)
    )


def _day(d: date) -> str:
    return f"{d.day} {d:%b %Y}"


def _range_text(view: data.View) -> str:
    f = view.filters
    same_year = f.start.year == f.end.year
    first = f"{f.start.day} {f.start:%b}" if same_year else _day(f.start)
    text = f"{first} – {_day(f.end)} · {f.n_days} day{'s' if f.n_days != 1 else ''}"
    if view.live_days:
        text += " · today live"
    if view.total_sessions == 0:
        text += " · no sessions in this range"
    return text


def _note(view: data.View) -> str:
    tz = data.analytics_tz().key
    if view.rolled_through is None:
        return f"No rolled-up days yet: everything shown is computed from the raw tables. Days are local to {tz}."
    behind = (view.today - view.rolled_through).days - 1
    text = f"Rolled up through {_day(view.rolled_through)}; later days are computed live. Days are local to {tz}."
    if behind > 1:
        text += f" The nightly rollup is {behind} days behind: check the scheduler."
    return text


# ------------------------------------------------------------------------------------ callbacks


def sync_range(time_range: str | None, start: str | None, end: str | None, trigger: str | None = None):
    """Keep the period buttons and the date picker in step.

    A preset shows its dates in the picker; picking other dates switches the period to
    ``custom``. Returns (time_range, start_date, end_date), ``no_update`` where nothing changes.
    """
    today = data.analytics_today()
    if trigger == "time-range" and time_range in data.RANGES:
        first, last = data.resolve_range(time_range, today=today)
        if (first.isoformat(), last.isoformat()) == (start, end):
            raise PreventUpdate
        return no_update, first.isoformat(), last.isoformat()
    if trigger == "date-range" and start and end:
        if time_range in data.RANGES:
            first, last = data.resolve_range(time_range, today=today)
            if (first.isoformat(), last.isoformat()) == (start[:10], end[:10]):
                raise PreventUpdate
        if time_range == "custom":
            raise PreventUpdate
        return "custom", no_update, no_update
    raise PreventUpdate


#: The controls as they appear in the URL query (``?range=custom&start=...&subject=...``).
URL_KEYS = ("range", "start", "end", "subject", "grade", "class")


def view_query(time_range: str | None, start: str | None, end: str | None, subjects, grades, classes=None) -> str:
    """The URL query (``?...``) that reopens this view: a preset by name, custom dates as such."""
    pairs: list[tuple[str, str]] = [("range", time_range if time_range in data.RANGES else "custom")]
    if time_range not in data.RANGES:
        pairs += [("start", str(start)[:10]), ("end", str(end)[:10])] if start and end else []
    pairs += [("subject", str(s)) for s in subjects or ()]
    pairs += [("grade", str(g)) for g in grades or ()]
    pairs += [("class", str(c)) for c in _class_ids(classes)]
    return "?" + urlencode(pairs)


def controls_from_query(search: str | None, today: date | None = None) -> tuple[str, str, str, list, list, list] | None:
    """(range, start, end, subjects, grades, classes) from a URL query, or None if it names no view.

    Unknown values are dropped: a preset that does not exist falls back to the default, custom
    dates that do not parse to the default range, subjects not in the curriculum and grades or
    classes that are not whole numbers are left out. (A class that is not the viewer's shows
    nothing: the scope, not the URL, decides whose data a view holds.)
    """
    query = parse_qs((search or "").lstrip("?"))
    if not any(key in query for key in URL_KEYS):
        return None
    today = today or data.analytics_today()
    time_range = query.get("range", [data.DEFAULT_RANGE])[-1]
    start, end = query.get("start", [None])[-1], query.get("end", [None])[-1]
    if time_range == "custom" and data._parse_date(start) and data._parse_date(end):
        first, last = data.resolve_range("custom", start, end, today)
    else:
        time_range = time_range if time_range in data.RANGES else data.DEFAULT_RANGE
        first, last = data.resolve_range(time_range, today=today)
    known = subject_names()
    subjects = [s for s in dict.fromkeys(query.get("subject", [])) if s in known]
    grades = [g for g in dict.fromkeys(data._as_grade(g) for g in query.get("grade", [])) if g is not None]
    classes = _class_ids(query.get("class", []))
    return time_range, first.isoformat(), last.isoformat(), subjects, grades, classes


def sync_controls(search, time_range, start, end, subjects, grades, classes=None, trigger: str | None = None):
    """Keep the URL and the controls in step: opening a URL (or going back) sets the controls;
    changing a control writes the URL. Returns (search, time_range, start, end, subjects, grades,
    classes), ``no_update`` where nothing changes."""
    if trigger in (None, "url"):
        wanted = controls_from_query(search)
        if wanted is None:
            raise PreventUpdate
        current = (time_range, (start or "")[:10], (end or "")[:10], list(subjects or []), list(grades or []),
                   _class_ids(classes))  # fmt: skip
        if wanted == current:
            raise PreventUpdate
        return (no_update, *wanted)
    if trigger in ("time-range", "date-range"):
        try:
            time_range, start, end = (
                new if new is not no_update else old
                for new, old in zip(sync_range(time_range, start, end, trigger), (time_range, start, end), strict=True)
            )
            moved = True
        except PreventUpdate:
            moved = False
    else:
        moved = False
    query = view_query(time_range, start, end, subjects, grades, classes)
    if query == (search or "") and not moved:
        raise PreventUpdate
    out_range, out_start, out_end = (time_range, start, end) if moved else (no_update,) * 3
    return (query if query != (search or "") else no_update, out_range, out_start, out_end, *(no_update,) * 3)


def update_view(
    time_range, start, end, subjects, grades, classes=None, selected_topic: str | None = None, today: date | None = None
) -> tuple[Any, ...]:
    """The main view: range label, KPI cards and the seven charts (the order of ``VIEW_OUTPUTS``)."""
    f = _filters(time_range, start, end, subjects, grades, classes, today)
    view = data.load_view(f, today=today)
    names = subject_names()
    return (
        _range_text(view),
        layout.kpi_cards(view.kpis, f.n_days, view.previous_covered, view.data_start),
        figures.sessions_figure(view.daily),
        figures.duration_figure(view.daily),
        figures.heatmap_figure(view.heatmap),
        figures.topics_figure(view.topics, selected=selected_topic, names=topic_names()),
        figures.satisfaction_figure(view.daily),
        figures.quality_figure(view.daily),
        figures.usage_figure(view.models, view.daily["date"], prices()),
        figures.subjects_figure(view.subjects, view.grades, names),
        _note(view),
    )


def topic_from_click(click: dict[str, Any] | None) -> str | None:
    try:
        point = click["points"][0]
    except (TypeError, KeyError, IndexError):
        return None
    topic = point.get("customdata", point.get("y"))
    if isinstance(topic, list):
        topic = topic[0] if topic else None
    return str(topic) if topic else None


def show_topic_sessions(
    click, _clear, time_range, start, end, subjects, grades, classes=None, current=None, trigger=None,
    today: date | None = None,
):  # fmt: skip
    """The recent-sessions list, filtered to the clicked topic; returns (topic, title, list, clear-button hidden)."""
    topic = current
    if trigger == "topics-chart":
        topic = topic_from_click(click) or current
    elif trigger == "clear-topic":
        topic = None
    f = _filters(time_range, start, end, subjects, grades, classes, today)
    frame = data.recent_sessions(f, topic=topic, limit=layout.SESSION_ROWS)
    topics = topic_names()
    title = f"Sessions on “{topics.get(topic, topic)}”" if topic else "Recent sessions"
    return topic, title, layout.sessions_table(frame, subject_names(), topics), topic is None


def highlight_topic(topic: str | None, figure: dict[str, Any] | None):
    """Colour the selected topic's bar (a Patch of the topics chart, no recomputation)."""
    if not figure or not figure.get("data"):
        raise PreventUpdate
    names = figure["data"][0].get("y") or []
    patch = dash.Patch()
    patch["data"][0]["marker"]["color"] = [figures.ACCENT if n == topic else figures.PRIMARY for n in names]
    return patch


def update_students(
    search, time_range, start, end, subjects, grades, classes=None, selected=None, today: date | None = None
):
    """The student table (the first ``STUDENT_ROWS`` matches, most sessions first)."""
    f = _filters(time_range, start, end, subjects, grades, classes, today)
    frame = data.students_frame(f, search=search, limit=layout.STUDENT_ROWS, today=today)
    return layout.students_table(frame, frame.attrs.get("total", len(frame)), selected)


def pick_student(fragment: str | None) -> int:
    """The student whose name was clicked: the URL fragment ``#student-<id>`` (other fragments,
    such as a KPI card's, leave the choice as it is)."""
    prefix = layout.STUDENT_FRAGMENT
    if not fragment or not fragment.startswith(prefix) or not fragment[len(prefix) :].isdigit():
        raise PreventUpdate
    return int(fragment[len(prefix) :])


def mastery_curve(student_id: int) -> pd.DataFrame:
    from analytics import mastery

    return mastery.mastery_curve(student_id)


def show_student(student_id: int | None):
    """The chosen student's name and timeline: sessions per week, curriculum coverage, ratings
    and their mastery after each graded answer."""
    if student_id is None:
        raise PreventUpdate
    timeline = data.student_timeline(int(student_id), students=viewer_scope())
    person = timeline["student"]
    if person is None:
        return "Student not found", *(figures.empty_figure("Student not found") for _ in range(4))
    grade = figures.grade_name(person["grade_level"]) if person["grade_level"] is not None else "no grade"
    title = html.Span([person["name"], html.Span(f" · {person['email']} · {grade}", className="muted")])
    return (
        title,
        figures.student_sessions_figure(timeline["weekly"]),
        figures.student_coverage_figure(timeline["coverage"], subject_names()),
        figures.student_ratings_figure(timeline["ratings"]),
        figures.student_mastery_figure(mastery_curve(int(student_id))),
    )


def update_learning(time_range, start, end, subjects, grades, classes=None, today: date | None = None):
    """The learning section: mastery heatmap, mastery over time, students at risk."""
    from analytics import mastery

    f = _filters(time_range, start, end, subjects, grades, classes, today)
    return (
        figures.mastery_heatmap_figure(mastery.heatmap(f)),
        figures.mastery_over_time_figure(mastery.mastery_over_time(f)),
        layout.at_risk_table(mastery.students_at_risk(f, today=today)),
    )


def export_at_risk(n_clicks, time_range, start, end, subjects, grades, classes=None, today: date | None = None):
    if not n_clicks:
        raise PreventUpdate
    from analytics import mastery

    f = _filters(time_range, start, end, subjects, grades, classes, today)
    frame = mastery.students_at_risk(f, today=today)
    return dcc.send_data_frame(frame.to_csv, f"students-at-risk-{f.start}-to-{f.end}.csv", index=False)


def update_judge_table(time_range, start, end, subjects, grades, classes=None, today: date | None = None):
    f = _filters(time_range, start, end, subjects, grades, classes, today)
    return layout.judge_table(data.judge_scores(f), subject_names())


def update_retention(time_range, start, end, subjects, grades, classes=None, today: date | None = None):
    f = _filters(time_range, start, end, subjects, grades, classes, today)
    return figures.retention_figure(data.retention_frame(f, today=today))


def _daily_csv(view_daily: pd.DataFrame) -> pd.DataFrame:
    out = view_daily.copy()
    out["date"] = [d.isoformat() for d in out["date"]]
    return out.round({c: 3 for c in out.columns if out[c].dtype.kind == "f"})


def export_daily(n_clicks, time_range, start, end, subjects, grades, classes=None, today: date | None = None):
    """The current view's daily table as CSV (``dcc.Download`` data)."""
    if not n_clicks:
        raise PreventUpdate
    f = _filters(time_range, start, end, subjects, grades, classes, today)
    daily = _daily_csv(data.load_view(f, today=today).daily)
    return dcc.send_data_frame(daily.to_csv, f"tutoring-daily-{f.start}-to-{f.end}.csv", index=False)


def export_students(
    n_clicks, time_range, start, end, subjects, grades, classes=None, search=None, today: date | None = None
):
    """Every student of the current view (and search) as CSV."""
    if not n_clicks:
        raise PreventUpdate
    f = _filters(time_range, start, end, subjects, grades, classes, today)
    frame = data.students_frame(f, search=search, today=today).copy()
    frame["last_active"] = [d.isoformat() for d in frame["last_active"]]
    frame["avg_rating"] = frame["avg_rating"].round(3)
    return dcc.send_data_frame(frame.to_csv, f"tutoring-students-{f.start}-to-{f.end}.csv", index=False)


def load_grade_options(_root_id: str | None = None) -> list[dict[str, Any]]:
    """The grade filter's choices: the grade levels students have, and "No grade"."""
    return layout.grade_options(data.grade_levels(viewer_scope()))


def load_class_options(_root_id: str | None = None) -> tuple[list[dict[str, Any]], str]:
    """The class filter's choices (a teacher's own classes, every class for an admin) and its
    placeholder."""
    from flask import has_request_context
    from flask_login import current_user

    from tutor.classes import visible_classes

    if not has_request_context() or not current_user.is_authenticated:
        return [], "All classes"
    found = visible_classes(current_user)
    teacher = current_user.role == "teacher"
    placeholder = ("All my classes" if found else "You have no classes yet") if teacher else "All students"
    return [{"label": c.name, "value": c.id} for c in found], placeholder


def update_review(time_range, start, end, subjects, grades, classes=None, today: date | None = None):
    """Sessions worth a look in the range (answer revealed, thumbs down, failed reply, low
    rating), newest first, each linking to its transcript."""
    from tutor.classes import sessions_worth_a_look

    f = _filters(time_range, start, end, subjects, grades, classes, today)
    lo, hi = data._utc_bounds(f.start, f.end, data.analytics_tz())
    rows = sessions_worth_a_look(f.students, since=lo, until=hi, limit=layout.SESSION_ROWS)
    if f.subjects:
        rows = [r for r in rows if r["subject"] in f.subjects]
    return layout.review_table(rows, subject_names())


# ------------------------------------------------------------------------------------ wiring


def register(app: Dash) -> None:
    app.callback(
        Output("url", "search"),
        *(Output(c.component_id, c.component_property) for c in CONTROLS),
        Input("url", "search"),
        *CONTROLS,
    )(lambda search, *controls: sync_controls(search, *controls, trigger=ctx.triggered_id))

    app.callback(*VIEW_OUTPUTS, *CONTROLS, State("selected-topic", "data"))(update_view)

    app.callback(Output("grade-filter", "options"), Input("dashboard-root", "id"))(load_grade_options)

    app.callback(
        Output("class-filter", "options"), Output("class-filter", "placeholder"), Input("dashboard-root", "id")
    )(load_class_options)

    app.callback(Output("review-list", "children"), *CONTROLS)(update_review)

    app.callback(
        Output("selected-topic", "data"),
        Output("recent-title", "children"),
        Output("recent-sessions", "children"),
        Output("clear-topic", "hidden"),
        Input("topics-chart", "clickData"),
        Input("clear-topic", "n_clicks"),
        *CONTROLS,
        State("selected-topic", "data"),
    )(
        lambda click, clear, *rest: show_topic_sessions(
            click, clear, *rest[:-1], current=rest[-1], trigger=ctx.triggered_id
        )
    )

    app.callback(
        Output("topics-chart", "figure", allow_duplicate=True),
        Input("selected-topic", "data"),
        State("topics-chart", "figure"),
        prevent_initial_call=True,
    )(highlight_topic)

    app.callback(
        Output("students-table", "children"),
        Input("student-search", "value"),
        *CONTROLS,
        State("selected-student", "data"),
    )(update_students)

    app.callback(Output("selected-student", "data"), Input("url", "hash"))(pick_student)

    app.callback(
        Output("student-name", "children"),
        Output("student-sessions-chart", "figure"),
        Output("student-coverage-chart", "figure"),
        Output("student-ratings-chart", "figure"),
        Output("student-mastery-chart", "figure"),
        Input("selected-student", "data"),
        prevent_initial_call=True,
    )(show_student)

    app.callback(Output("retention-chart", "figure"), *CONTROLS)(update_retention)
    app.callback(Output("judge-table", "children"), *CONTROLS)(update_judge_table)
    app.callback(
        Output("mastery-heatmap", "figure"), Output("mastery-trend", "figure"), Output("at-risk-table", "children"),
        *CONTROLS,
    )(update_learning)  # fmt: skip
    app.callback(
        Output("download-at-risk", "data"), Input("export-at-risk", "n_clicks"), *CONTROL_STATES,
        prevent_initial_call=True,
    )(export_at_risk)  # fmt: skip

    app.callback(
        Output("download-daily", "data"),
        Input("export-daily", "n_clicks"),
        *CONTROL_STATES,
        prevent_initial_call=True,
    )(export_daily)

    app.callback(
        Output("download-students", "data"),
        Input("export-students", "n_clicks"),
        *CONTROL_STATES,
        State("student-search", "value"),
        prevent_initial_call=True,
    )(export_students)


# ------------------------------------------------------------------------------------ requests as the browser sends them


def callback_payload(outputs: list[Output], inputs: list[tuple[str, str, Any]], changed: list[str]) -> dict[str, Any]:
    """The JSON body the Dash renderer POSTs to ``_dash-update-component`` for a callback.

    ``inputs``: (component id, property, value) in the callback's order; ``changed``: the
    ``"id.property"`` strings of the inputs that fired.
    """
    specs = [{"id": o.component_id, "property": o.component_property} for o in outputs]
    if len(specs) == 1:
        output = f"{specs[0]['id']}.{specs[0]['property']}"
        outputs_field: Any = specs[0]
    else:
        output = ".." + "...".join(f"{s['id']}.{s['property']}" for s in specs) + ".."
        outputs_field = specs
    return {
        "output": output,
        "outputs": outputs_field,
        "inputs": [{"id": i, "property": p, "value": v} for i, p, v in inputs],
        "changedPropIds": changed,
        "state": [],
    }


def main_callback_payload(
    time_range: str = "quarter",
    start: str | None = None,
    end: str | None = None,
    subjects: list[str] | None = None,
    grades: list[int] | None = None,
    classes: list[int] | None = None,
) -> dict[str, Any]:
    """The request the browser sends when the period buttons switch to ``time_range``."""
    values = [time_range, start, end, subjects, grades, classes]
    inputs = [(c.component_id, c.component_property, v) for c, v in zip(CONTROLS, values, strict=True)]
    payload = callback_payload(VIEW_OUTPUTS, inputs, ["time-range.value"])
    payload["state"] = [{"id": "selected-topic", "property": "data", "value": None}]
    return payload
