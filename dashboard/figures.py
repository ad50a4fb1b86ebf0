"""Figure builders: DataFrame in, plotly figure out, all styled here.

Figures are plain plotly.js dicts (``{"data": [...], "layout": {...}}``) of Python lists and
numbers, which ``dcc.Graph`` takes as they are: building and serialising them costs a fraction
of ``plotly.graph_objects`` validation on every request. ``plotly.graph_objects.Figure(fig)``
accepts every one of them (the tests check).

An empty frame (or a range without sessions) gives a figure that says so instead of empty axes.
"""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd

from analytics.reads import WEEKDAYS

# ------------------------------------------------------------------------------------ style

FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif'
INK = "#1e293b"
MUTED = "#64748b"
GRID = "#e2e8f0"
PRIMARY = "#4f46e5"
SECONDARY = "#0d9488"
ACCENT = "#d97706"
DANGER = "#e11d48"
PALE = "#c7d2fe"
#: Colours of one series each (models, subjects, topics), in order.
SERIES = [PRIMARY, SECONDARY, ACCENT, DANGER, "#7c3aed", "#0284c7", MUTED]
SEQUENTIAL = [[0.0, "#f8fafc"], [0.15, "#e0e7ff"], [0.5, "#818cf8"], [1.0, "#312e81"]]
GRADE_NAMES = {-1: "No grade"}

EMPTY_MESSAGE = "No sessions in this range"
GRAPH_CONFIG = {
    "displaylogo": False,
    "responsive": True,
    "modeBarButtonsToRemove": ["select2d", "lasso2d", "autoScale2d"],
}


def _axis(**extra: Any) -> dict[str, Any]:
    return {
        "gridcolor": GRID,
        "zerolinecolor": GRID,
        "linecolor": GRID,
        "tickfont": {"color": MUTED, "size": 11},
        "title": {"font": {"color": MUTED, "size": 12}},
        "automargin": True,
    } | extra


def _layout(**extra: Any) -> dict[str, Any]:
    base = {
        "font": {"family": FONT, "color": INK, "size": 12},
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
        "margin": {"l": 48, "r": 16, "t": 12, "b": 36},
        "hoverlabel": {"font": {"family": FONT}},
        "legend": {"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0, "font": {"size": 11}},
        "xaxis": _axis(),
        "yaxis": _axis(rangemode="tozero"),
        "showlegend": False,
        "uirevision": "keep",  # keep zoom/legend state across filter changes
    }
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            value = base[key] | value
        base[key] = {k: v for k, v in value.items() if v is not None} if isinstance(value, dict) else value
    return base


def empty_figure(message: str = EMPTY_MESSAGE, height: int | None = None) -> dict[str, Any]:
    """A blank figure with ``message`` in the middle (``height`` for charts that size themselves)."""
    fig = {
        "data": [],
        "layout": _layout(
            xaxis={"visible": False},
            yaxis={"visible": False},
            annotations=[
                {
                    "text": message,
                    "showarrow": False,
                    "xref": "paper",
                    "yref": "paper",
                    "x": 0.5,
                    "y": 0.5,
                    "font": {"size": 14, "color": MUTED},
                }
            ],
        ),
    }
    if height:
        fig["layout"]["height"] = height
    return fig


def is_empty(fig: dict[str, Any]) -> bool:
    return not fig.get("data")


# ------------------------------------------------------------------------------------ helpers


def _num(values: Any, digits: int | None = None) -> list[float | None]:
    """Numbers as JSON-ready floats, None for missing values."""
    out: list[float | None] = []
    for v in values:
        if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
            out.append(None)
        else:
            out.append(round(float(v), digits) if digits is not None else float(v))
    return out


def _ints(values: Any) -> list[int]:
    return [int(v) for v in values]


def _dates(values: Any) -> list[str]:
    return [v.isoformat() if isinstance(v, date | datetime) else str(v) for v in values]


def _day_range(daily: pd.DataFrame) -> list[str]:
    """An x range that holds the range's days and nothing more (bars would pad it by days)."""
    first, last = pd.Timestamp(daily["date"].iloc[0]), pd.Timestamp(daily["date"].iloc[-1])
    return [(first - pd.Timedelta(hours=12)).isoformat(), (last + pd.Timedelta(hours=12)).isoformat()]


def _no_sessions(daily: pd.DataFrame) -> bool:
    return daily is None or not len(daily) or int(daily["sessions"].sum()) == 0


# ------------------------------------------------------------------------------------ main view


def sessions_figure(daily: pd.DataFrame) -> dict[str, Any]:
    """Daily sessions: one point per day of the range, oldest first; today's point (live) stands out."""
    if daily is None or not len(daily):
        return empty_figure()
    live = list(daily["live"]) if "live" in daily else [False] * len(daily)
    fig = {
        "data": [
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": "Sessions",
                "x": _dates(daily["date"]),
                "y": _ints(daily["sessions"]),
                "line": {"color": PRIMARY, "width": 2.5, "shape": "linear"},
                "marker": {
                    "color": [ACCENT if is_live else PRIMARY for is_live in live],
                    "size": [9 if is_live else 5 for is_live in live],
                },
                "fill": "tozeroy",
                "fillcolor": "rgba(79,70,229,0.08)",
                "hovertemplate": "%{x|%a %d %b %Y}<br><b>%{y:,}</b> sessions<extra></extra>",
            }
        ],
        "layout": _layout(xaxis={"type": "date", "tickformat": "%d %b"}, yaxis={"title": {"text": "sessions"}}),
    }
    if _no_sessions(daily):
        fig["layout"]["annotations"] = [_note(EMPTY_MESSAGE)]
    return fig


def _note(text: str) -> dict[str, Any]:
    return {
        "text": text,
        "showarrow": False,
        "xref": "paper",
        "yref": "paper",
        "x": 0.5,
        "y": 0.55,
        "font": {"size": 14, "color": MUTED},
        "bgcolor": "rgba(255,255,255,0.85)",
    }


def topics_figure(
    topics: pd.DataFrame, selected: str | None = None, top: int = 12, names: dict[str, str] | None = None
) -> dict[str, Any]:
    """Most popular topics (sessions touching each), a horizontal bar per topic, labelled with
    the curriculum's names (``names``: id -> name); click one to filter (by its id)."""
    if topics is None or not len(topics) or int(topics["sessions"].sum()) == 0:
        return empty_figure("No topics in this range", height=300)
    head = topics.head(top).iloc[::-1]  # most popular on top
    ids = [str(t) for t in head["topic"]]
    labels = [(names or {}).get(t, t) for t in ids]
    return {
        "data": [
            {
                "type": "bar",
                "orientation": "h",
                "name": "Sessions",
                "x": _ints(head["sessions"]),
                "y": labels,
                "customdata": ids,
                "marker": {"color": [ACCENT if t == selected else PRIMARY for t in ids]},
                "hovertemplate": "<b>%{y}</b><br>%{x:,} sessions<extra>click to list them</extra>",
            }
        ],
        "layout": _layout(
            xaxis={"title": {"text": "sessions"}},
            yaxis={"type": "category", "rangemode": None},
            margin={"l": 8, "r": 16, "t": 8, "b": 36},
            clickmode="event",
            dragmode=False,
            height=max(260, 26 * len(labels) + 60),
        ),
    }


def duration_figure(daily: pd.DataFrame) -> dict[str, Any]:
    """Average session duration per day, in minutes (gaps on days without a finished session)."""
    if _no_sessions(daily):
        return empty_figure()
    return {
        "data": [
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": "Avg. duration",
                "x": _dates(daily["date"]),
                "y": _num(daily["avg_duration_min"], 2),
                "connectgaps": False,
                "line": {"color": SECONDARY, "width": 2.5},
                "marker": {"size": 5},
                "hovertemplate": "%{x|%a %d %b}<br><b>%{y:.1f}</b> min<extra></extra>",
            }
        ],
        "layout": _layout(xaxis={"type": "date", "tickformat": "%d %b"}, yaxis={"title": {"text": "minutes"}}),
    }


def heatmap_figure(heatmap: pd.DataFrame) -> dict[str, Any]:
    """Sessions by weekday (rows, Monday on top) and local hour of day (columns)."""
    if heatmap is None or not len(heatmap) or int(heatmap["sessions"].sum()) == 0:
        return empty_figure()
    grid = np.zeros((7, 24), np.int64)
    np.add.at(
        grid,
        (heatmap["weekday"].to_numpy(np.int64), heatmap["hour"].to_numpy(np.int64)),
        heatmap["sessions"].to_numpy(np.int64),
    )
    return {
        "data": [
            {
                "type": "heatmap",
                "name": "Sessions",
                # Rows bottom to top: Sunday first, so Monday is on top without a reversed axis
                # (plotly does not always re-apply ``autorange: "reversed"`` when Dash updates it).
                "z": grid[::-1].tolist(),
                "x": [f"{h:02d}" for h in range(24)],
                "y": list(reversed(WEEKDAYS)),
                "colorscale": SEQUENTIAL,
                "xgap": 2,
                "ygap": 2,
                "colorbar": {"thickness": 10, "outlinewidth": 0, "tickfont": {"color": MUTED, "size": 10}},
                "hovertemplate": "%{y} %{x}:00<br><b>%{z:,}</b> sessions<extra></extra>",
            }
        ],
        "layout": _layout(
            xaxis={"title": {"text": "hour of day"}, "type": "category", "showgrid": False},
            yaxis={"type": "category", "showgrid": False, "rangemode": None},
            margin={"l": 44, "r": 8, "t": 8, "b": 40},
        ),
    }


def satisfaction_figure(daily: pd.DataFrame) -> dict[str, Any]:
    """Average rating per day (1-5, top) above the number of ratings (bottom): two small
    multiples with their own round ticks rather than two overlaid axes."""
    if _no_sessions(daily) or int(daily["ratings"].sum()) == 0:
        return empty_figure("No ratings in this range")
    x = _dates(daily["date"])
    layout = _small_multiples(daily, ["Average rating (1-5)", "Ratings"])
    layout["yaxis"] |= {"range": [1, 5.2], "rangemode": "normal", "dtick": 1}
    layout["showlegend"] = False
    return {
        "data": [
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": "Avg. rating",
                "x": x,
                "y": _num(daily["avg_satisfaction"], 2),
                "connectgaps": False,
                "line": {"color": ACCENT, "width": 2.5},
                "marker": {"size": 5},
                "hovertemplate": "avg. <b>%{y:.2f}</b> / 5<extra></extra>",
            },
            {
                "type": "bar",
                "name": "Ratings",
                "x": x,
                "y": _ints(daily["ratings"]),
                "xaxis": "x2",
                "yaxis": "y2",
                "marker": {"color": PALE},
                "hovertemplate": "%{y:,} ratings<extra></extra>",
            },
        ],
        "layout": layout,
    }


def _panels(n: int, gap: float = 0.08) -> list[list[float]]:
    """Vertical domains of ``n`` stacked panels of equal height, the first on top."""
    height = (1 - gap * (n - 1)) / n
    return [[round(1 - i * (height + gap) - height, 4), round(1 - i * (height + gap), 4)] for i in range(n)]


def _panel_title(text: str, domain: list[float]) -> dict[str, Any]:
    """A small left-aligned label above a panel (small multiples need no axis titles)."""
    return {
        "text": text,
        "showarrow": False,
        "xref": "paper",
        "yref": "paper",
        "x": 0,
        "y": domain[1],
        "xanchor": "left",
        "yanchor": "bottom",
        "font": {"size": 11, "color": MUTED},
    }


def _small_multiples(
    daily: pd.DataFrame, titles: list[str], formats: list[str] | None = None, **extra: Any
) -> dict[str, Any]:
    """A layout of ``len(titles)`` stacked panels sharing the date axis, each with its own round
    ticks (at most four, from zero, in the d3 ``formats``), labelled by ``titles``."""
    formats = formats or ["~g"] * len(titles)
    domains = _panels(len(titles))
    axes: dict[str, Any] = {}
    for i, domain in enumerate(domains, start=1):
        suffix = "" if i == 1 else str(i)
        last = i == len(domains)
        axes[f"xaxis{suffix}"] = _axis(
            type="date",
            tickformat="%d %b",
            anchor=f"y{suffix}",
            range=_day_range(daily),
            showticklabels=last,
            **({} if i == 1 else {"matches": "x"}),
        )
        axes[f"yaxis{suffix}"] = _axis(domain=domain, rangemode="tozero", nticks=4, tickformat=formats[i - 1])
    return _layout(
        **axes,
        annotations=[_panel_title(t, d) for t, d in zip(titles, domains, strict=True)],
        hovermode="x unified",
        showlegend=True,
        legend={"orientation": "h", "y": 1.06, "yanchor": "bottom", "x": 0, "font": {"size": 11}},
        margin={"l": 48, "r": 16, "t": 40, "b": 36},
        **extra,
    )


def quality_figure(daily: pd.DataFrame) -> dict[str, Any]:
    """AI quality per day as three small multiples: what the student waited (p50 / p95) beside
    the model's own generation time; failed and cut-short replies; answers given away."""
    if daily is None or not len(daily) or int(daily["tutor_replies"].sum()) == 0:
        return empty_figure("No tutor replies in this range")
    x = _dates(daily["date"])

    def seconds(column: str) -> list[float | None]:
        return _num(daily[column] / 1000, 2)

    def line(name: str, y: list[Any], color: str, axis: str, hover: str, **extra: Any) -> dict[str, Any]:
        return {"type": "scatter", "mode": "lines", "name": name, "x": x, "y": y, "xaxis": f"x{axis}",
                "yaxis": f"y{axis}", "line": {"color": color, "width": 2} | extra, "hovertemplate": hover}  # fmt: skip

    def bars(name: str, column: str, color: str, hover: str) -> dict[str, Any]:
        return {"type": "bar", "name": name, "x": x, "y": _ints(daily[column]), "xaxis": "x2", "yaxis": "y2",
                "marker": {"color": color}, "opacity": 0.8, "hovertemplate": hover}  # fmt: skip

    return {
        "data": [
            line("p50 wait", seconds("latency_p50_ms"), SECONDARY, "", "p50 wait %{y:.1f} s<extra></extra>"),
            line("p95 wait", seconds("latency_p95_ms"), PRIMARY, "", "p95 wait %{y:.1f} s<extra></extra>"),
            line(
                "Model's own time (mean)",
                seconds("generation_mean_ms"),
                MUTED,
                "",
                "model %{y:.1f} s<extra></extra>",
                dash="dot",
            ),  # fmt: skip
            bars("Failed replies", "failed_replies", DANGER, "%{y:,} failed<extra></extra>"),
            bars("Cut short (max tokens)", "cut_short_replies", ACCENT, "%{y:,} cut short<extra></extra>"),
            line(
                "Answer given away (% of finished replies)",
                _num(daily["answer_revealed_share"], 2),
                ACCENT,
                "3",
                "%{y:.1f} % given away<extra></extra>",
            ),  # fmt: skip
            line(
                "Could not be judged (%)",
                _num(daily["answer_unjudged_share"], 2),
                MUTED,
                "3",
                "%{y:.1f} % not judged<extra></extra>",
                dash="dot",
            ),  # fmt: skip
            _feedback_bars("Thumbs up", daily["thumbs_up"], SECONDARY, x),
            _feedback_bars("Thumbs down", -daily["thumbs_down"], DANGER, x),
        ],
        "layout": _small_multiples(
            daily,
            [
                "Wait for a reply (s)",
                "Failed and cut-short replies",
                "Answers given away (%)",
                "Students' thumbs up / down",
            ],
            barmode="relative",
        ),  # fmt: skip
    }


def _feedback_bars(name: str, values: pd.Series, color: str, x: list[str]) -> dict[str, Any]:
    """Thumbs per day in the fourth panel: up above the axis, down below it."""
    counts = _ints(values)
    return {"type": "bar", "name": name, "x": x, "y": counts, "xaxis": "x4", "yaxis": "y4",
            "customdata": [abs(c) for c in counts], "marker": {"color": color}, "opacity": 0.8,
            "hovertemplate": f"%{{customdata:,}} {name.lower()}<extra></extra>"}  # fmt: skip


def _price(prices: dict[str, tuple[float, float]], model: str, prompt: Any, completion: Any) -> Any:
    if model not in prices:
        return None
    per_prompt, per_completion = prices[model]
    return (prompt * per_prompt + completion * per_completion) / 1_000_000


def usage_figure(
    models: pd.DataFrame, days: pd.Series | list[date], prices: dict[str, tuple[float, float]] | None = None
) -> dict[str, Any]:
    """Tokens per day by model (stacked) and, for models with a price in ``AI_PRICES``, their
    cost per day. Each model's legend entry holds the range's totals."""
    prices = prices or {}
    if models is None or not len(models) or int(models["replies"].sum()) == 0:
        return empty_figure("No finished tutor replies in this range")
    daily = pd.DataFrame({"date": list(days)})
    x = _dates(daily["date"])
    priced = [m for m in sorted(models["model"].unique()) if m in prices]
    titles = ["Tokens per day (prompt + completion)"] + (["Cost per day"] if priced else [])
    data = []
    for i, (model, rows) in enumerate(models.groupby("model", sort=True)):
        per_day = rows.groupby("date")[["prompt_tokens", "completion_tokens", "replies", "tokens_estimated"]].sum()
        per_day = per_day.reindex(daily["date"], fill_value=0)
        tokens = per_day["prompt_tokens"] + per_day["completion_tokens"]
        total = int(tokens.sum())
        cost = _price(prices, model, per_day["prompt_tokens"], per_day["completion_tokens"])
        label = f"{model} · {_compact(total)} tokens"
        if cost is not None:
            label += f" · {float(cost.sum()):,.2f}"
        if per_day["tokens_estimated"].sum():
            label += " (partly estimated)"
        color = SERIES[i % len(SERIES)]
        data.append(
            {"type": "bar", "name": label, "legendgroup": model, "x": x, "y": _ints(tokens), "marker": {"color": color},
             "customdata": _ints(per_day["replies"]),
             "hovertemplate": f"{model}: %{{y:,}} tokens, %{{customdata:,}} replies<extra></extra>"}
        )  # fmt: skip
        if cost is not None:
            data.append(
                {"type": "bar", "name": label, "legendgroup": model, "showlegend": False, "x": x,
                 "y": _num(cost, 4), "xaxis": "x2", "yaxis": "y2", "marker": {"color": color},
                 "hovertemplate": f"{model}: %{{y:,.2f}}<extra></extra>"}
            )  # fmt: skip
    formats = ["~s", ",.2~f"][: len(titles)]
    return {"data": data, "layout": _small_multiples(daily, titles, formats, barmode="stack")}


def _compact(n: int) -> str:
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= size:
            return f"{n / size:.1f}{suffix}"
    return f"{n:,}"


def grade_name(grade: int) -> str:
    return GRADE_NAMES.get(int(grade), f"Grade {int(grade)}")


def subjects_figure(
    subjects: pd.DataFrame, grades: pd.DataFrame, names: dict[str, str] | None = None
) -> dict[str, Any]:
    """Sessions by subject (left) and by grade level (right); active students in the hover text."""
    if subjects is None or not len(subjects) or int(subjects["sessions"].sum()) == 0:
        return empty_figure()
    names = names or {}
    return {
        "data": [
            {
                "type": "bar",
                "name": "By subject",
                "x": [names.get(s, s) for s in subjects["subject"]],
                "y": _ints(subjects["sessions"]),
                "customdata": _ints(subjects["active_students"]),
                "marker": {"color": PRIMARY},
                "hovertemplate": "<b>%{x}</b><br>%{y:,} sessions<br>%{customdata:,} active students<extra></extra>",
            },
            {
                "type": "bar",
                "name": "By grade",
                "x": [grade_name(g) for g in grades["grade_level"]],
                "y": _ints(grades["sessions"]),
                "customdata": _ints(grades["active_students"]),
                "xaxis": "x2",
                "yaxis": "y2",
                "marker": {"color": SECONDARY},
                "hovertemplate": "<b>%{x}</b><br>%{y:,} sessions<br>%{customdata:,} active students<extra></extra>",
            },
        ],
        "layout": _layout(
            xaxis={"domain": [0, 0.36], "type": "category", "title": {"text": "subject"}},
            xaxis2=_axis(domain=[0.46, 1], type="category", anchor="y2", title={"text": "grade level"}),
            yaxis={"title": {"text": "sessions"}},
            yaxis2=_axis(anchor="x2", rangemode="tozero"),
            bargap=0.3,
        ),
    }


# ------------------------------------------------------------------------------------ students


def student_sessions_figure(weekly: pd.DataFrame) -> dict[str, Any]:
    if weekly is None or not len(weekly):
        return empty_figure("No sessions yet")
    return {
        "data": [
            {
                "type": "bar",
                "name": "Sessions",
                "x": _dates(weekly["week"]),
                "y": _ints(weekly["sessions"]),
                "marker": {"color": PRIMARY},
                "hovertemplate": "week of %{x|%d %b %Y}<br><b>%{y}</b> sessions<extra></extra>",
            }
        ],
        "layout": _layout(xaxis={"type": "date"}, yaxis={"title": {"text": "sessions / week"}}, bargap=0.15),
    }


def student_coverage_figure(coverage: pd.DataFrame, names: dict[str, str] | None = None) -> dict[str, Any]:
    """Cumulative share of each subject's curriculum topics the student has touched."""
    if coverage is None or not len(coverage) or coverage["share"].isna().all():
        return empty_figure("No curriculum topics covered yet")
    names = names or {}
    colors = [PRIMARY, SECONDARY, ACCENT, DANGER, MUTED]
    data = []
    for i, (subject, group) in enumerate(coverage.dropna(subset=["share"]).groupby("subject", sort=True)):
        data.append(
            {
                "type": "scatter",
                "mode": "lines",
                "line": {"shape": "hv", "width": 2.5, "color": colors[i % len(colors)]},
                "name": names.get(subject, subject),
                "x": _dates(group["date"]),
                "y": _num(group["share"] * 100, 1),
                "customdata": [[int(c), int(t)] for c, t in zip(group["covered"], group["total"], strict=True)],
                "hovertemplate": "%{fullData.name}: %{customdata[0]} of %{customdata[1]} topics (%{y:.0f} %)<extra></extra>",
            }
        )
    return {
        "data": data,
        "layout": _layout(
            xaxis={"type": "date"},
            yaxis={"title": {"text": "% of curriculum"}, "range": [0, 105]},
            showlegend=True,
            margin={"l": 48, "r": 8, "t": 30, "b": 30},
        ),
    }


def student_ratings_figure(ratings: pd.DataFrame) -> dict[str, Any]:
    if ratings is None or not len(ratings):
        return empty_figure("No ratings yet")
    x = _dates(ratings["date"])
    y = _num(ratings["rating"])
    rolling = _num(pd.Series(y, dtype=float).rolling(5, min_periods=1).mean(), 2)
    return {
        "data": [
            {
                "type": "scatter",
                "mode": "markers",
                "name": "Rating",
                "x": x,
                "y": y,
                "marker": {"color": ACCENT, "size": 7, "opacity": 0.6},
                "hovertemplate": "%{x|%d %b %Y}: <b>%{y}</b> / 5<extra></extra>",
            },
            {
                "type": "scatter",
                "mode": "lines",
                "name": "Average of the last 5",
                "x": x,
                "y": rolling,
                "line": {"color": PRIMARY, "width": 2},
                "hovertemplate": "last 5: %{y:.2f}<extra></extra>",
            },
        ],
        "layout": _layout(
            xaxis={"type": "date"},
            yaxis={"title": {"text": "rating"}, "range": [0.5, 5.5], "rangemode": None},
            showlegend=True,
            margin={"l": 48, "r": 8, "t": 30, "b": 30},
        ),
    }


def retention_figure(retention: pd.DataFrame) -> dict[str, Any]:
    """Share of each weekly cohort (week of first session) active in each following week."""
    if retention is None or not len(retention):
        return empty_figure("No new students in this range", height=240)
    grid = retention.pivot(index="cohort", columns="offset", values="share").sort_index()
    sizes = retention.groupby("cohort")["cohort_size"].first().reindex(grid.index)
    z = [[None if pd.isna(v) else round(float(v) * 100, 1) for v in row] for row in grid.to_numpy()]
    labels = [f"{c:%d %b} ({int(n)})" for c, n in zip(grid.index, sizes, strict=True)]
    return {
        "data": [
            {
                "type": "heatmap",
                "name": "Retention",
                "z": z,
                "x": [f"week {int(o)}" for o in grid.columns],
                "y": labels,
                "zmin": 0,
                "zmax": 100,
                "colorscale": SEQUENTIAL,
                "xgap": 2,
                "ygap": 2,
                "text": [[("" if v is None else f"{v:.0f}%") for v in row] for row in z],
                "texttemplate": "%{text}",
                "textfont": {"size": 10},
                "colorbar": {
                    "thickness": 10,
                    "outlinewidth": 0,
                    "ticksuffix": " %",
                    "tickfont": {"color": MUTED, "size": 10},
                },
                "hovertemplate": "cohort %{y}<br>%{x}: <b>%{z:.0f} %</b> active<extra></extra>",
            }
        ],
        "layout": _layout(
            xaxis={"type": "category", "showgrid": False, "side": "top"},
            yaxis={
                "type": "category",
                "autorange": "reversed",
                "showgrid": False,
                "rangemode": None,
                "title": {"text": "started (students)"},
            },
            margin={"l": 48, "r": 8, "t": 28, "b": 8},
            height=max(240, 28 * len(labels) + 60),
        ),
    }


# ------------------------------------------------------------------------------------ learning (mastery)


def mastery_heatmap_figure(frame: pd.DataFrame) -> dict[str, Any]:
    """Students (weakest first, on top) × topics: each cell the student's current mastery."""
    if frame is None or not len(frame):
        return empty_figure("No answers graded in this range yet", height=240)
    students = list(dict.fromkeys(frame["student"]))
    topics = sorted(dict.fromkeys(frame["name"]))
    grid = frame.pivot_table(index="student", columns="name", values="mastery", aggfunc="mean")
    grid = grid.reindex(index=students, columns=topics)
    attempts = frame.pivot_table(index="student", columns="name", values="attempts", aggfunc="sum")
    attempts = attempts.reindex(index=students, columns=topics)
    z = [[None if pd.isna(v) else round(float(v) * 100) for v in row] for row in grid.to_numpy()]
    counts = [[0 if pd.isna(v) else int(v) for v in row] for row in attempts.to_numpy()]
    return {
        "data": [
            {
                "type": "heatmap",
                "z": z,
                "x": topics,
                "y": students,
                "customdata": counts,
                "zmin": 0,
                "zmax": 100,
                "colorscale": [[0.0, "#fee2e2"], [0.4, "#fde68a"], [0.8, "#a7f3d0"], [1.0, "#047857"]],
                "xgap": 1,
                "ygap": 1,
                "colorbar": {"thickness": 10, "outlinewidth": 0, "ticksuffix": " %", "tickfont": {"color": MUTED}},
                "hovertemplate": "%{y} · %{x}<br>mastery <b>%{z} %</b> after %{customdata} answers<extra></extra>",
            }
        ],
        "layout": _layout(
            height=max(240, 60 + 16 * len(students)),
            xaxis={"type": "category", "showgrid": False, "side": "top", "tickangle": -35},
            yaxis={"type": "category", "autorange": "reversed", "showgrid": False, "rangemode": None},
            margin={"l": 120, "r": 16, "t": 90, "b": 12},
        ),
    }


def mastery_over_time_figure(frame: pd.DataFrame) -> dict[str, Any]:
    """Average mastery per subject per week (over its topics' students), 0-100 %."""
    if frame is None or not len(frame):
        return empty_figure("No mastery snapshots in this range yet (the nightly refit writes them)")
    weighted = frame.assign(total=frame["mastery"] * frame["students"])
    per = weighted.groupby(["subject", "week"], as_index=False)[["total", "students"]].sum()
    per["mastery"] = per["total"] / per["students"].where(per["students"] > 0)
    data = []
    for i, (subject, rows) in enumerate(per.groupby("subject", sort=True)):
        data.append(
            {"type": "scatter", "mode": "lines+markers", "name": str(subject).title(), "x": _dates(rows["week"]),
             "y": _num(rows["mastery"] * 100, 1), "customdata": _ints(rows["students"]),
             "line": {"color": SERIES[i % len(SERIES)], "width": 2}, "marker": {"size": 5},
             "hovertemplate": "week of %{x|%d %b}: <b>%{y:.0f} %</b> (%{customdata} students)<extra></extra>"}
        )  # fmt: skip
    return {
        "data": data,
        "layout": _layout(
            xaxis={"type": "date", "tickformat": "%d %b"},
            yaxis={"range": [0, 100], "ticksuffix": " %", "nticks": 5, "rangemode": None},
            showlegend=True,
            hovermode="x unified",
        ),
    }


def student_mastery_figure(curve: pd.DataFrame) -> dict[str, Any]:
    """One student's mastery after each graded answer, a line per topic (correct answers filled)."""
    if curve is None or not len(curve):
        return empty_figure("No answers graded yet")
    data = []
    for i, (name, rows) in enumerate(curve.groupby("name", sort=True)):
        color = SERIES[i % len(SERIES)]
        data.append(
            {"type": "scatter", "mode": "lines+markers", "name": str(name), "x": _dates(rows["created_at"]),
             "y": _num(rows["mastery"] * 100, 1), "line": {"color": color, "width": 2, "shape": "hv"},
             "marker": {"size": 6, "color": [color if c else "white" for c in rows["correct"]],
                        "line": {"color": color, "width": 1.5}},
             "hovertemplate": f"{name}: %{{y:.0f}} %<extra></extra>"}
        )  # fmt: skip
    return {
        "data": data,
        "layout": _layout(
            xaxis={"type": "date"},
            yaxis={"range": [0, 100], "ticksuffix": " %", "nticks": 5, "rangemode": None},
            showlegend=len(data) <= 6,
            margin={"l": 48, "r": 8, "t": 30, "b": 30},
        ),
    }
