"""Server-rendered pages of the tutor."""

from __future__ import annotations

from flask import render_template

from . import bp


@bp.get("/")
def index() -> str:
    return render_template("index.html")
