"""The rooms of the code (docs/ARCHITECTURE in the README): imports point down only.

app.py builds the app and imports everything; below it, each package may import only the
rooms it stands on. Every import statement counts, including those inside functions, so a
lazy import cannot sneak an upward dependency in.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: Package -> the top-level names its modules must never import.
FORBIDDEN: dict[str, set[str]] = {
    "foundation": {"tutor", "analytics", "jobs", "dashboard", "devtools", "app", "worker"},
    "tutor": {"analytics", "jobs", "dashboard", "devtools", "app", "worker"},
    "analytics": {"jobs", "dashboard", "devtools", "app", "worker"},
    "jobs": {"dashboard", "devtools", "app", "worker"},
    "dashboard": {"jobs", "devtools", "app", "worker"},
    "devtools": {"dashboard", "app", "worker"},
}

#: Modules that belong to the platform (foundation/), the analytics package or devtools, by name:
#: none of them may come back into tutor/.
NOT_IN_TUTOR = {
    "config",
    "settings",
    "extensions",
    "logs",
    "metrics",
    "errors",
    "health",
    "embedded",
    "devserver",
    "gunicorn_conf",
    "demo",
    "rollups",
    "queue",
}


def imported_roots(path: Path, package: str) -> list[tuple[int, str]]:
    """(line, top-level name) of every import in ``path``, relative imports resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: stays inside its own top-level package
                found.append((node.lineno, package))
            elif node.module:
                found.append((node.lineno, node.module.split(".")[0]))
    return found


def violations(root: Path) -> list[str]:
    out = []
    for package, forbidden in FORBIDDEN.items():
        for path in sorted((root / package).rglob("*.py")):
            for line, name in imported_roots(path, package):
                if name in forbidden:
                    out.append(f"{path.relative_to(root)}:{line} imports {name}")
    return out


def test_imports_point_down_only():
    assert violations(ROOT) == []


def test_the_check_catches_an_upward_import(tmp_path):
    """The rule above can fail: an upward import, even a lazy one, is reported."""
    for package in FORBIDDEN:
        (tmp_path / package).mkdir()
    (tmp_path / "tutor" / "api.py").write_text("def f():\n    from jobs.ai import process_ai_response\n")
    (tmp_path / "dashboard" / "data.py").write_text("import jobs.analytics\n")
    (tmp_path / "foundation" / "devserver.py").write_text("from app import create_app\n")
    assert violations(tmp_path) == [
        "foundation/devserver.py:1 imports app",
        "tutor/api.py:2 imports jobs",
        "dashboard/data.py:1 imports jobs",
    ]


@pytest.mark.parametrize("name", sorted(NOT_IN_TUTOR))
def test_platform_modules_live_outside_tutor(name):
    assert not (ROOT / "tutor" / f"{name}.py").exists()
    assert not (ROOT / "tutor" / name / "__init__.py").exists()
