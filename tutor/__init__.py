"""The tutoring domain: everything a student touches."""

from flask import Blueprint

bp = Blueprint("tutor", __name__, template_folder="templates", static_folder="static", static_url_path="/static/tutor")

from . import class_views, views  # noqa: E402,F401  (routes register on import)
