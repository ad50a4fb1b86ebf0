"""A bare Flask app with one trivial JSON route: the ceiling ``bench/api_bench.py`` compares
the message-post endpoint against. Served with the same gunicorn settings as the real app:

    gunicorn -c python:foundation.gunicorn_conf 'bench.bare_app:create_app()'

``POST /ping`` (or GET) parses a JSON body if there is one and answers ``{"status": "ok"}``.
No database, no Redis, no login: what is left is gunicorn + Flask + JSON.
"""

from __future__ import annotations

from flask import Flask, jsonify, request


def create_app() -> Flask:
    app = Flask(__name__)

    @app.route("/ping", methods=["GET", "POST"])
    def ping():
        data = request.get_json(silent=True)
        return jsonify(status="ok", fields=len(data) if isinstance(data, dict) else 0)

    return app


app = create_app()
