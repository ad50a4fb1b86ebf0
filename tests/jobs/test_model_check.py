"""The worker's start-up check of the AI service's model list (GET /v1/models)."""

from __future__ import annotations

import logging
import socket

from tests.openai_server import ScriptedOpenAI
from tutor.providers.openai_provider import check_model


def test_a_listed_model_passes():
    with ScriptedOpenAI(models=("smollm2", "test-model")) as server:
        assert check_model(server.base_url, "k", "test-model") is None
        assert server.model_requests == 1


def test_a_model_the_server_does_not_list_is_named():
    with ScriptedOpenAI(models=("smollm2-135m-instruct",)) as server:
        problem = check_model(server.base_url, "k", "gpt-4o-mini")
    assert "AI_MODEL='gpt-4o-mini'" in problem and "smollm2-135m-instruct" in problem


def test_an_unreachable_server_is_a_warning_not_a_crash():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    problem = check_model(f"http://127.0.0.1:{port}/v1", "k", "m", timeout=2)
    assert "could not be reached" in problem and "OPENAI_BASE_URL" in problem


def test_the_worker_logs_one_line_at_start(app, caplog):
    import worker

    saved = {k: app.config[k] for k in ("AI_PROVIDER", "OPENAI_BASE_URL", "AI_MODEL")}
    try:
        with ScriptedOpenAI(models=("llama3.2",)) as server:
            app.config.update(AI_PROVIDER="openai", OPENAI_BASE_URL=server.base_url, AI_MODEL="llama3")
            with caplog.at_level(logging.WARNING, logger="worker"):
                worker.check_provider(app)
    finally:
        app.config.update(saved)
    lines = [r.getMessage() for r in caplog.records if r.name == "worker"]
    assert len(lines) == 1 and "llama3.2" in lines[0]
