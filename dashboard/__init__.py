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
    server.extensions["dash"] = app  # tests walk its callback map
    server.before_request(_check_callback_body)
    return app


def _check_callback_body():
    """A callback request Dash's own page would never send (a hand-made or truncated body)
    gets 400 here; Dash would fail on it with a KeyError, a 500."""
    from flask import request

    from foundation.errors import json_error

    if request.method != "POST" or request.path != URL_BASE + "_dash-update-component":
        return None
    body = request.get_json(silent=True)
    ok = (
        isinstance(body, dict)
        and isinstance(body.get("output"), str)
        and isinstance(body.get("inputs"), list)
        and all(isinstance(body.get(k, []), list) for k in ("state", "changedPropIds"))
        and isinstance(body.get("outputs", []), list | dict)
    )
    if not ok:
        return json_error(400, "bad_request", "Not a Dash callback request.")
    return None
