"""bench/check_model.py, the manual check of a model server, runs against the test server."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.openai_server import ScriptedOpenAI

ROOT = Path(__file__).resolve().parents[2]


def _script():
    spec = importlib.util.spec_from_file_location("check_model", ROOT / "bench" / "check_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("style", ["llamacpp", "openai"])
def test_every_check_passes_on_a_server_like_the_real_ones(style, capsys):
    words = " ".join(["word"] * 40)
    with ScriptedOpenAI(reply=words, style=style, context_window=1024, models=("smollm2",)) as server:
        code = _script().main(["--base-url", server.base_url, "--model", "smollm2", "--context-window", "1024",
                               "--max-tokens", "64"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    assert "finish_reason 'length'" in out and "overflow:" in out
    assert ("NOT sent" in out) == (style == "llamacpp")


def test_a_wrong_model_name_fails_the_check(capsys):
    with ScriptedOpenAI(models=("smollm2",)) as server:
        code = _script().main(["--base-url", server.base_url, "--model", "llama3"])
    assert code == 1 and "AI_MODEL='llama3'" in capsys.readouterr().out
