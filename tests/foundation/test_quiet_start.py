"""The dev run starts without warnings that are about us (the console issue)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-W", "error", "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip


def test_gunicorns_master_loads_no_ssl_before_gevent_patches():
    """gevent warns (MonkeyPatchWarning) when ssl is imported before its workers patch it: the
    config and the logger class the master imports must not pull in ssl (Flask and redis do)."""
    code = "import sys, foundation.gunicorn_conf, foundation.gunicorn_logging; print('ssl' in sys.modules)"
    result = _python(code, dict(os.environ))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_no_runtime_dir_warning_without_xdg_runtime_dir(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "XDG_RUNTIME_DIR"} | {"TMPDIR": str(tmp_path)}
    code = (
        "import os, stat; from foundation.embedded import ensure_runtime_dir; ensure_runtime_dir(); "
        "import pgserver; d = os.environ['XDG_RUNTIME_DIR']; print(d, oct(stat.S_IMODE(os.stat(d).st_mode)))"
    )
    result = _python(code, env)  # -W error: platformdirs' RuntimeDirWarning would fail the import
    assert result.returncode == 0, result.stderr
    folder, mode = result.stdout.split()
    assert folder.startswith(str(tmp_path)) and mode == "0o700"
