"""What the browser tests share: the system's Chromium, started the way this machine allows.

Playwright drives Debian's Chromium (its own browser download is not used). Without it the
browser tests are skipped locally and fail in CI (``CI`` set), where it is installed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]


def require_chromium() -> None:
    """Call at module level of a browser test file."""
    if Path(CHROMIUM).exists():
        return
    if os.environ.get("CI"):
        raise RuntimeError(f"Chromium not found at {CHROMIUM}; install it: apt-get install -y chromium")
    pytest.skip(
        f"Chromium not found at {CHROMIUM} (install Debian's 'chromium' or set CHROMIUM_PATH); browser tests skipped",
        allow_module_level=True,
    )


@pytest.fixture(scope="module")
def browser() -> Iterator:
    """One headless Chromium per test module (import this fixture into the module)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@contextmanager
def serve(app, name: str = "live-server") -> Iterator[str]:  # type: ignore[no-untyped-def]
    """The app on a free port in a thread (werkzeug), for a module's ``live_server`` fixture."""
    import threading

    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
