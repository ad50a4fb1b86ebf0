"""The admin analytics app (Dash), mounted on the Flask server at ``/admin/analytics/``."""

from __future__ import annotations

from dash import Dash, html
from flask import Flask

URL_BASE = "/admin/analytics/"


def init_dashboard(server: Flask) -> Dash:
    app = Dash(
        __name__,
        server=server,
        url_base_pathname=URL_BASE,
        title="AI Tutor · Analytics",
        suppress_callback_exceptions=True,
    )
    app.layout = html.Div(
        [
            html.H1("Tutoring analytics"),
            html.P("Sessions, topics, durations and AI quality will appear here once the nightly rollups run."),
        ],
        id="dashboard-root",
    )
    return app
