"""The dashboard's page: controls, KPI cards, charts, the session list and student progress.

Component ids are the contract with the callbacks (``dashboard/callbacks.py``), the tests and
the browser test; styling lives in ``dashboard/assets/dashboard.css``.
"""

from __future__ import annotations

import math
from datetime import date
from html import escape
from typing import Any

import pandas as pd
from dash import dcc, html

from analytics import reads as data

from .figures import GRAPH_CONFIG, empty_figure, grade_name

TIME_RANGE_OPTIONS = [
    {"label": "Week", "value": "week"},
    {"label": "Month", "value": "month"},
    {"label": "Quarter", "value": "quarter"},
    {"label": "Custom", "value": "custom"},
]
STUDENT_ROWS = 50
SESSION_ROWS = 15


def serve_layout() -> html.Div:
    """The page, built per page load (so "today" is current).

    It reads no database: Dash also builds it to validate the app on the server's first request,
    whatever that request is (a health probe must not wait for PostgreSQL). The grade levels
    that students have are filled in by a callback.
    """
    today = data.analytics_today()
    first, last = data.resolve_range(data.DEFAULT_RANGE, today=today)
    return html.Div(
        id="dashboard-root",
        className="dash-page",
        children=[
            dcc.Location(id="url", refresh=False),  # the view lives in the query: ?range=...&subject=...
            dcc.Store(id="selected-topic"),
            dcc.Store(id="selected-student"),
            _header(),
            _controls(today, first, last),
            dcc.Loading(
                html.Div(id="kpi-cards", className="kpi-grid", children=kpi_cards(None)),
                type="dot",
                delay_show=250,
                parent_className="kpi-loading",
            ),
            html.Div(
                className="grid",
                children=[
                    _card(
                        "Sessions per day",
                        "sessions-chart",
                        "Every day of the range; today so far is highlighted.",
                        wide=True,
                    ),
                    _card("Average session duration", "duration-chart", "Minutes, over sessions that have ended."),
                    _card("When students learn", "usage-heatmap", "Sessions by weekday and hour of day."),
                    _topics_card(),
                    _review_card(),
                    _card("Satisfaction", "satisfaction-chart", "Average rating per day and number of ratings."),
                    _card(
                        "Tokens and cost",
                        "usage-chart",
                        "Tokens per day by model; cost for the models priced in AI_PRICES.",
                    ),
                    _card(
                        "AI quality",
                        "quality-chart",
                        "What students waited for a reply (p50 / p95) beside the model's own time; failed and "
                        "cut-short replies; answers given away (of all finished replies, beside the share the "
                        "guardrail could not judge); the students' thumbs.",
                        wide=True,
                        height="560px",
                        extra=html.Div(
                            [
                                html.H3("The model's judgement (MRBench dimensions)", className="subhead"),
                                dcc.Loading(html.Div(id="judge-table", className="table-scroll"), type="dot"),
                            ]
                        ),
                    ),
                    _card(
                        "Subjects and grade levels", "subjects-chart", "Sessions; hover for active students.", wide=True
                    ),
                ],
            ),
            _learning_section(),
            _students_section(),
            html.Footer(
                className="dash-footer",
                children=[
                    html.Span(id="data-note"),
                    html.Span(" · "),
                    html.A("Queues and workers", href="/admin/rq/"),
                    html.Span(" · "),
                    html.A("Back to the tutor", href="/"),
                ],
            ),
        ],
    )


def _header() -> html.Header:
    return html.Header(
        className="dash-header",
        children=[
            html.Div(
                [
                    html.H1("Tutoring analytics"),
                    html.P(id="range-label", className="range-label", children="Loading…"),
                ]
            ),
            html.Div(
                className="header-actions",
                children=[
                    html.Button("Export daily table (CSV)", id="export-daily", className="button secondary"),
                    dcc.Download(id="download-daily"),
                ],
            ),
        ],
    )


def grade_options(grades: list[int]) -> list[dict[str, Any]]:
    options = [{"label": grade_name(g), "value": g} for g in grades]
    return [*options, {"label": grade_name(data.UNKNOWN_GRADE), "value": data.UNKNOWN_GRADE}]


def _controls(today: date, first: date, last: date) -> html.Section:
    from tutor.curriculum import get_curriculum

    subjects = [{"label": s.name, "value": s.id} for s in get_curriculum().subjects.values()]
    return html.Section(
        className="controls",
        children=[
            html.Div(
                className="control",
                children=[
                    html.Label("Period", htmlFor="time-range"),
                    dcc.RadioItems(
                        id="time-range",
                        options=TIME_RANGE_OPTIONS,
                        value=data.DEFAULT_RANGE,
                        inline=True,
                        className="segmented",
                    ),
                ],
            ),
            html.Div(
                className="control",
                children=[
                    html.Label("Dates", htmlFor="date-range"),
                    dcc.DatePickerRange(
                        id="date-range",
                        start_date=first.isoformat(),
                        end_date=last.isoformat(),
                        max_date_allowed=today.isoformat(),
                        display_format="D MMM YYYY",
                        first_day_of_week=1,
                        minimum_nights=0,
                        updatemode="bothdates",
                    ),
                ],
            ),
            html.Div(
                className="control grow",
                children=[
                    html.Label("Subjects", htmlFor="subject-filter"),
                    dcc.Dropdown(id="subject-filter", options=subjects, multi=True, placeholder="All subjects"),
                ],
            ),
            html.Div(
                className="control grow",
                children=[
                    html.Label("Grade levels", htmlFor="grade-filter"),
                    dcc.Dropdown(id="grade-filter", options=grade_options([]), multi=True, placeholder="All grades"),
                ],
            ),
            html.Div(
                className="control grow",
                children=[
                    html.Label("Classes", htmlFor="class-filter"),
                    # options (the viewer's classes) come from a callback: the layout reads no database
                    dcc.Dropdown(id="class-filter", options=[], multi=True, placeholder="All classes"),
                ],
            ),
        ],
    )


def _graph(graph_id: str, height: str | None = "300px") -> dcc.Loading:
    """A chart with its loading spinner; ``height`` None lets the figure's own height decide."""
    style = {"height": height} if height else {"minHeight": "200px"}
    return dcc.Loading(
        dcc.Graph(
            id=graph_id,
            figure=empty_figure("Loading…", height=None if height else 240),
            config=GRAPH_CONFIG,
            className="graph",
            style=style,
        ),
        type="circle",
        delay_show=250,
    )


def _card(
    title: str, graph_id: str, subtitle: str = "", wide: bool = False, height: str | None = None, extra: Any = None
) -> html.Section:
    return html.Section(
        className="card wide" if wide else "card",
        id=f"{graph_id}-card",
        children=[
            html.H2(title),
            html.P(subtitle, className="card-subtitle") if subtitle else None,
            _graph(graph_id, height or ("320px" if wide else "300px")),
            extra,
        ],
    )


def _topics_card() -> html.Section:
    return html.Section(
        className="card wide topics-card",
        children=[
            html.H2("Popular topics"),
            html.P("Sessions touching each topic. Click a bar to list its sessions.", className="card-subtitle"),
            html.Div(
                className="split",
                children=[
                    _graph("topics-chart", None),
                    html.Div(
                        className="session-list",
                        children=[
                            html.Div(
                                className="list-header",
                                children=[
                                    html.H3(id="recent-title", children="Recent sessions"),
                                    html.Button(
                                        "Show all topics", id="clear-topic", className="button link", hidden=True
                                    ),
                                ],
                            ),
                            dcc.Loading(
                                html.Div(id="recent-sessions", className="table-scroll"), type="dot", delay_show=250
                            ),
                        ],
                    ),
                ],
            ),
        ],
    )


def _learning_section() -> html.Section:
    """Evidence of learning: mastery per student and topic, its course, who needs help."""
    return html.Section(
        className="card wide learning",
        id="learning-section",
        children=[
            html.H2("Learning"),
            html.P(
                "Mastery (Bayesian Knowledge Tracing on graded answers) of the students who answered "
                "something in the range, weakest first; lighter cells need practice.",
                className="card-subtitle",
            ),
            _graph("mastery-heatmap", None),
            html.H3("Mastery over time", className="subhead"),
            _graph("mastery-trend", "280px"),
            html.Div(
                className="section-header",
                children=[
                    html.H3("Students at risk", className="subhead"),
                    html.Div(
                        className="header-actions",
                        children=[
                            html.Button("Export at-risk list (CSV)", id="export-at-risk", className="button secondary"),
                            dcc.Download(id="download-at-risk"),
                        ],
                    ),
                ],
            ),
            dcc.Loading(html.Div(id="at-risk-table", className="table-scroll"), type="dot", delay_show=250),
        ],
    )


def _review_card() -> html.Section:
    return html.Section(
        className="card wide review-card",
        children=[
            html.H2("Sessions worth a look"),
            html.P(
                "Sessions in the range where a reply gave the answer away, got a thumbs down or failed, or that "
                "were rated 1 or 2. Opening a transcript is recorded in the audit log.",
                className="card-subtitle",
            ),
            dcc.Loading(html.Div(id="review-list", className="table-scroll"), type="dot", delay_show=250),
        ],
    )


def at_risk_table(frame: pd.DataFrame) -> html.Div | dcc.Markdown:
    """Students with no session for a week, or whose mastery is not rising (one component)."""
    if frame is None or not len(frame):
        return empty_state("No student at risk in this range.", "Everyone active this week, and learning.")
    rows = []
    for r in frame.itertuples(index=False):
        days = "—" if r.days_inactive is None or r.days_inactive != r.days_inactive else f"{int(r.days_inactive)}"
        link = f'<a class="button link" href="{STUDENT_FRAGMENT}{int(r.student_id)}">{escape(str(r.student))}</a>'
        cells = [
            (link, ""),
            (escape(grade_name(r.grade_level)) if r.grade_level == r.grade_level else "—", ""),
            (days, "num"),
            (escape(str(r.stuck_topics or "—")), "muted"),
            (escape(str(r.reason)), ""),
        ]
        rows.append(("", cells))
    head = [("Student", ""), ("Grade", ""), ("Days inactive", "num"), ("Stuck on", ""), ("Why", "")]
    return _static_table(head, rows)


def _students_section() -> html.Section:
    return html.Section(
        className="card wide students",
        id="students-section",
        children=[
            html.Div(
                className="section-header",
                children=[
                    html.Div(
                        [
                            html.H2("Student progress"),
                            html.P(
                                "Students with sessions in the range. Choose one to see their timeline.",
                                className="card-subtitle",
                            ),
                        ]
                    ),
                    html.Div(
                        className="header-actions",
                        children=[
                            dcc.Input(
                                id="student-search",
                                type="search",
                                placeholder="Search name or e-mail",
                                debounce=0.3,
                                className="search",
                            ),
                            html.Button("Export students (CSV)", id="export-students", className="button secondary"),
                            dcc.Download(id="download-students"),
                        ],
                    ),
                ],
            ),
            dcc.Loading(html.Div(id="students-table", className="table-wrap"), type="dot", delay_show=250),
            html.Div(
                id="student-detail",
                className="student-detail",
                children=[
                    html.H3(id="student-name", children="No student chosen"),
                    html.Div(
                        className="grid four",
                        children=[
                            _mini("Sessions per week", "student-sessions-chart"),
                            _mini("Curriculum covered", "student-coverage-chart"),
                            _mini("Ratings", "student-ratings-chart"),
                            _mini("Mastery after each answer", "student-mastery-chart"),
                        ],
                    ),
                ],
            ),
            html.H3("Weekly retention by the week students started"),
            html.P(
                "Share of each week's new students who had a session in each following week of the range.",
                className="card-subtitle",
            ),
            _graph("retention-chart", None),
        ],
    )


def _mini(title: str, graph_id: str) -> html.Div:
    return html.Div(
        className="mini",
        children=[
            html.H4(title),
            dcc.Graph(
                id=graph_id,
                figure=empty_figure("Choose a student above"),
                config=GRAPH_CONFIG,
                className="graph small",
                style={"height": "240px"},
            ),
        ],
    )


# ------------------------------------------------------------------------------------ pieces the callbacks fill


def _fmt_number(value: float | None, kpi: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if kpi in ("sessions", "active_students", "tutor_replies"):
        return f"{int(round(value)):,}"
    if kpi == "avg_duration_min":
        return f"{value:.1f} min"
    if kpi == "avg_satisfaction":
        return f"{value:.2f} / 5"
    if kpi == "latency_p95_ms":
        return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.0f} ms"
    if kpi == "failure_rate":
        return f"{value:.2f} %"
    return f"{value:,}"


def _fmt_change(row: dict[str, Any], kpi: str) -> tuple[str, str]:
    """The change's text and its tone: ``good``, ``bad`` or ``flat``."""
    change, pct, better = row["change"], row["change_pct"], row["better"]
    if change is None or (isinstance(change, float) and math.isnan(change)):
        return ("no data to compare", "flat")
    if change == 0:
        return ("no change", "flat")
    if kpi == "avg_satisfaction":
        text, size = f"{change:+.2f}", abs(change) >= 0.005
    elif kpi == "failure_rate":
        text, size = f"{change:+.2f} pp", abs(change) >= 0.005
    elif pct is None or (isinstance(pct, float) and math.isnan(pct)):
        return ("new", "good" if better == "up" else "bad")
    else:
        text, size = f"{pct:+.1f} %", abs(pct) >= 0.05
    if not size:
        return (text, "flat")
    up = change > 0
    return (text, "good" if up == (better == "up") else "bad")


#: Where each KPI card leads: the card (chart or list) that shows the figure behind it.
KPI_TARGETS = {
    "sessions": "sessions-chart-card",
    "active_students": "students-section",
    "avg_duration_min": "duration-chart-card",
    "avg_satisfaction": "satisfaction-chart-card",
    "tutor_replies": "usage-chart-card",
    "latency_p95_ms": "quality-chart-card",
    "failure_rate": "quality-chart-card",
}


def kpi_cards(
    kpis: pd.DataFrame | None, days: int | None = None, previous_covered: int | None = None, data_start: Any = None
) -> list[html.A]:
    """One card per KPI: the value, and its change against the previous range of the same length.

    ``previous_covered`` is how many days of that previous range are on or after ``data_start``
    (the first session's day): with none there is nothing to compare; with some but not all,
    the change is marked as against a partial period. Each card links to its chart or list.
    """
    cards = []
    rows = kpis.to_dict("index") if kpis is not None else {}
    partial = days is not None and previous_covered is not None and 0 < previous_covered < days
    for kpi, (label, _unit, _better) in data.KPI_SPECS.items():
        vs = " vs partial previous" if partial else " vs previous"
        if kpis is None:
            value, change, tone, title = "…", "", "flat", ""
        else:
            row = rows[kpi]
            value = _fmt_number(row["current"], kpi)
            change, tone = _fmt_change(row, kpi)
            title = f"Previous {days} days: {_fmt_number(row['previous'], kpi)}" if days else ""
            if previous_covered == 0:
                change, tone, vs = "no earlier data", "flat", ""
                title = f"The previous {days} days are before the first session" + (
                    f" ({data_start:%d %b %Y})." if data_start else "."
                )
            elif change == "no data to compare":
                vs = ""
            elif partial:
                title += (
                    f". Only {previous_covered} of those {days} days are after the first session"
                    f" ({data_start:%d %b %Y}): compare with care."
                )
        cards.append(
            html.A(
                className="kpi",
                id=f"kpi-{kpi.replace('_', '-')}",
                href=f"#{KPI_TARGETS[kpi]}",
                title=title,
                children=[
                    html.Div(label, className="kpi-label"),
                    html.Div(value, className="kpi-value"),
                    html.Div(
                        [html.Span(change, className=f"kpi-change {tone}"), html.Span(vs, className="kpi-vs")]
                        if change
                        else None,
                        className="kpi-foot",
                    ),
                ],
            )
        )
    return cards


def empty_state(message: str, hint: str = "") -> html.Div:
    return html.Div(
        className="empty-state", children=[html.P(message), html.P(hint, className="hint") if hint else None]
    )


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return str(value)


def _static_table(head: list[tuple[str, str]], rows: list[tuple[str, list[tuple[str, str]]]]) -> dcc.Markdown:
    """A table drawn as one component: its HTML, every value escaped here.

    A table of ``html.Tr``/``html.Td`` components costs dash-renderer work per cell on every
    store update (it re-checks each connected component), which made a range change take
    seconds to paint with a 50-row student list; one component per table is cheap. ``rows``
    holds (row class, [(cell HTML, cell class)]); cell HTML must already be escaped.
    """
    head_html = "".join(f'<th class="{c}">{escape(h)}</th>' if c else f"<th>{escape(h)}</th>" for h, c in head)
    body = []
    for row_class, cells in rows:
        tds = "".join(f'<td class="{c}">{v}</td>' if c else f"<td>{v}</td>" for v, c in cells)
        body.append(f'<tr class="{row_class}">{tds}</tr>' if row_class else f"<tr>{tds}</tr>")
    table = f'<table class="table"><thead><tr>{head_html}</tr></thead><tbody>{"".join(body)}</tbody></table>'
    return dcc.Markdown(table, dangerously_allow_html=True, className="static-table")


def sessions_table(
    frame: pd.DataFrame, subject_names: dict[str, str], topic_names: dict[str, str] | None = None
) -> html.Div | dcc.Markdown:
    """The recent-sessions list (topics by their curriculum names)."""
    topic_names = topic_names or {}
    if frame is None or not len(frame):
        return empty_state("No sessions in this range", "Try a longer period or fewer filters.")
    rows = []
    for r in frame.itertuples(index=False):
        topics = ", ".join(topic_names.get(t, t) for t in r.topics.split(", ")) if r.topics else "—"
        stars = "★" * int(r.satisfaction) if r.satisfaction == r.satisfaction and r.satisfaction else "—"
        status = escape(str(r.status))
        cells = [
            (pd.Timestamp(r.started).strftime("%d %b %H:%M"), "nowrap"),
            (escape(str(r.student)), ""),
            (escape(subject_names.get(r.subject, r.subject)), ""),
            (escape(topics), "muted"),
            (escape(_cell(r.duration_min)), "num"),
            (stars, ""),
            (f'<span class="pill {status}">{status}</span>', ""),
        ]
        rows.append(("", cells))
    head = [("Started", ""), ("Student", ""), ("Subject", ""), ("Topics", ""), ("Min", "num"), ("Rating", ""),
            ("Status", "")]  # fmt: skip
    return _static_table(head, rows)


def judge_table(frame: pd.DataFrame, subject_names: dict[str, str]) -> html.Div | dcc.Markdown:
    """The LLM judge's verdicts per subject and model, beside the guardrail rules' count."""
    if frame is None or not len(frame):
        return empty_state(
            "No replies judged by a model in this range.",
            "With AI_PROVIDER=openai and AI_JUDGE on, a model rates every finished reply.",
        )

    def score(v: Any) -> str:
        return "—" if v is None or v != v else f"{v:.2f}"

    rows = []
    for r in frame.itertuples(index=False):
        cells = [
            (escape(subject_names.get(r.subject, r.subject)), ""),
            (escape(str(r.model)), ""),
            (f"{int(r.judged):,}", "num"),
            (f"{int(r.unrated):,}", "num"),
            (f"{int(r.judge_reveals):,}", "num"),
            (f"{int(r.rules_reveals):,}", "num"),
            (score(r.identifies_mistake), "num"),
            (score(r.gives_guidance), "num"),
            (score(r.actionable), "num"),
        ]
        rows.append(("", cells))
    head = [("Subject", ""), ("Model", ""), ("Judged", "num"), ("Unrated", "num"), ("Reveals: judge", "num"),
            ("Reveals: rules", "num"), ("Finds the mistake", "num"), ("Guidance", "num"), ("Actionable", "num")]  # fmt: skip
    return _static_table(head, rows)


#: The URL fragment that opens a student's timeline (the student table's names link to it).
STUDENT_FRAGMENT = "#student-"


def students_table(frame: pd.DataFrame, total: int, selected: int | None = None) -> html.Div:
    """The student table: one row per student; a name links to ``#student-<id>``, which opens
    their timeline (and can be bookmarked with the view)."""
    if frame is None or not len(frame):
        return empty_state("No students in this range", "Try a longer period, fewer filters or another search.")
    rows = []
    for r in frame.itertuples(index=False):
        sid = int(r.student_id)
        link = (
            f'<a class="button link" href="{STUDENT_FRAGMENT}{sid}" title="{escape(str(r.email))}">'
            f"{escape(str(r.name))}</a>"
        )
        cells = [
            (link, ""),
            (escape(grade_name(r.grade_level)), ""),
            (f"{int(r.sessions):,}", "num"),
            (pd.Timestamp(r.last_active).strftime("%d %b %Y"), "nowrap"),
            (f"{int(r.topics_covered)}", "num"),
            ("—" if r.avg_rating != r.avg_rating else f"{r.avg_rating:.2f}", "num"),
        ]
        rows.append(("selected" if selected == sid else "", cells))
    head = [("Student", ""), ("Grade", ""), ("Sessions", "num"), ("Last active", ""), ("Topics covered", "num"),
            ("Avg. rating", "num")]  # fmt: skip
    note = f"Showing {len(frame):,} of {total:,} students, most sessions first." if total > len(frame) else ""
    return html.Div([_static_table(head, rows), html.P(note, className="hint") if note else None])


def review_table(rows: list[dict[str, Any]], subject_names: dict[str, str]) -> html.Div | dcc.Markdown:
    """Sessions worth a look (``tutor.classes.sessions_worth_a_look``), each linking to its transcript."""
    if not rows:
        return empty_state("Nothing stands out in this range", "No answers given away, failed replies or low ratings.")
    out = []
    for r in rows:
        link = f'<a href="/review/{escape(str(r["session_id"]))}" target="_blank" rel="noopener">Read</a>'
        cells = [
            (pd.Timestamp(r["started"]).strftime("%d %b %H:%M"), "nowrap"),
            (escape(str(r["student"])), ""),
            (escape(subject_names.get(r["subject"], r["subject"])), ""),
            (escape(", ".join(r["reasons"])), "muted"),
            (link, ""),
        ]
        out.append(("", cells))
    head = [("Started", ""), ("Student", ""), ("Subject", ""), ("Why", ""), ("Transcript", "")]
    return _static_table(head, out)
