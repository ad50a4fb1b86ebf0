"""Security issue, item 4: the password policy (NIST SP 800-63B: length range and a blocklist)."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("password", ["        ", "12345678", "password", "Password", "iloveyou", "aaaaaaaaaa",
                                      "pupil2024", "x" * 257, "short"])  # fmt: skip
def test_weak_or_unbounded_passwords_are_refused_at_register(client, password):
    response = client.post("/api/v1/auth/register", json={"email": "pupil@school.org", "password": password})
    assert response.status_code == 400 and response.is_json, (password, response.status_code)
    assert "password" in response.get_json()["detail"]


@pytest.mark.parametrize("password", ["learning123", "correct horse battery staple", "Ünïcödé-pass", "p" * 8 + "q"])
def test_reasonable_passwords_of_any_shape_are_accepted(client, password):
    response = client.post("/api/v1/auth/register", json={"email": "pupil@school.org", "password": password})
    assert response.status_code == 201, response.get_json()


def test_the_cli_applies_the_same_policy(runner):
    result = runner.invoke(
        args=["users", "create", "--email", "t@school.org", "--password", "12345678", "--role", "admin"]
    )
    assert result.exit_code != 0 and "too easy to guess" in result.output
