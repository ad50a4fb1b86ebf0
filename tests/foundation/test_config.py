import pytest

from foundation.config import ConfigError, development_secret_key, load_settings, normalize_database_url


def test_defaults():
    s = load_settings({})
    assert s.PORT == 8050
    assert s.AI_PROVIDER == "builtin"
    assert s.ANALYTICS_TZ == "UTC"
    assert s.APP_ENV == "development"
    assert s.embedded


def test_production_requires_secret_key():
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        load_settings({"APP_ENV": "production", "DATABASE_URL": "postgresql://x/y", "REDIS_URL": "redis://x"})


def test_production_requires_services():
    with pytest.raises(ConfigError, match="DATABASE_URL and REDIS_URL"):
        load_settings({"APP_ENV": "production", "SECRET_KEY": "k" * 40})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PORT": "eighty"}, "PORT"),
        ({"ANALYTICS_TZ": "Mars/Olympus"}, "ANALYTICS_TZ"),
        ({"AI_PROVIDER": "magic"}, "AI_PROVIDER"),
        ({"APP_ENV": "staging"}, "APP_ENV"),
        ({"MESSAGE_RATE_LIMIT": "lots"}, "MESSAGE_RATE_LIMIT"),
        ({"MESSAGE_RATE_LIMIT": "0/minute"}, "MESSAGE_RATE_LIMIT"),
        ({"AI_RETRY_DELAYS": "2,soon"}, "AI_RETRY_DELAYS"),
        ({"ANALYTICS_LIVE_SECONDS": "-1"}, "ANALYTICS_LIVE_SECONDS"),
        ({"AI_PRICES": "gpt-4o-mini=0.15"}, "AI_PRICES"),
        ({"AI_PRICES": "gpt-4o-mini=cheap/0.6"}, "AI_PRICES"),
        ({"AI_PRICES": "=0.1/0.2"}, "AI_PRICES"),
        ({"AI_PRICES": "m=-1/0.2"}, "AI_PRICES"),
        ({"AI_PRICES": "m=nan/0.2"}, "AI_PRICES"),
    ],
)
def test_bad_values_name_the_variable(env, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(env)


def test_paas_database_url_is_normalized():
    assert normalize_database_url("postgres://u:p@h:5/d") == "postgresql+psycopg2://u:p@h:5/d"
    assert normalize_database_url("postgresql://u@h/d") == "postgresql+psycopg2://u@h/d"


def test_development_secret_key_is_kept(tmp_path):
    first = development_secret_key(tmp_path)
    assert len(first) >= 64
    assert development_secret_key(tmp_path) == first


def test_context_window_and_reply_cap():
    s = load_settings({"AI_CONTEXT_WINDOW": "4096", "AI_MAX_TOKENS": "512"})
    assert (s.AI_CONTEXT_WINDOW, s.AI_MAX_TOKENS) == (4096, 512)
    with pytest.raises(ConfigError, match="at most half the window"):
        load_settings({"AI_CONTEXT_WINDOW": "2048", "AI_MAX_TOKENS": "1500"})
    with pytest.raises(ConfigError, match="AI_CONTEXT_WINDOW"):  # the old setting says what replaced it
        load_settings({"AI_CONTEXT_TOKENS": "3000"})


def test_prices_per_model():
    from foundation.config import parse_prices

    assert load_settings({"AI_PRICES": " gpt-4o-mini=0.15/0.60, smollm2=0/0 "}).AI_PRICES
    assert parse_prices("gpt-4o-mini=0.15/0.60, ollama/llama3:8b=0/0") == {
        "gpt-4o-mini": (0.15, 0.6),
        "ollama/llama3:8b": (0.0, 0.0),  # model names may hold '/' and ':'
    }
    assert parse_prices("") == {}
