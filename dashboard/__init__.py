"""The admin analytics app (Dash), mounted on the Flask server at ``/admin/analytics/``.

``data`` reads the rollups and today's raw rows (SQL, pandas, numpy; no Dash), ``figures``
turns DataFrames into plotly figures, ``layout`` builds the page and ``callbacks`` connects
them. The global admin guard (``tutor.auth.admin_guard``) protects the page and every
``_dash-*`` endpoint; the dashboard only reads.
"""

from __future__ import annotations

from dash import Dash
from flask import Flask

URL_BASE = "/admin/analytics/"


def init_dashboard(server: Flask) -> Dash:
    from . import callbacks, layout

    app = Dash(
        __name__,
        server=server,
        url_base_pathname=URL_BASE,
        title="AI Tutor · Analytics",
        update_title=None,
        suppress_callback_exceptions=True,
        serve_locally=True,
        meta_tags=[{"name": "viewport", "content": "width=device-width, initial-scale=1"}],
    )
    app.layout = layout.serve_layout
    callbacks.register(app)
    return app
