"""The one place that reads the environment.

Every setting the app, the worker and the CLI use is listed here, with its default, so that
the README's configuration table and the code cannot drift apart. Nothing else in the code
base reads ``os.environ`` for settings.
"""

from __future__ import annotations

import math
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class ConfigError(RuntimeError):
    """A setting is missing or malformed; the message says which and how to fix it."""


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number; set it to e.g. {default}.") from None
    if value < minimum:
        raise ConfigError(f"{name}={value} is too small; it must be at least {minimum}.")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number; set it to e.g. {default}.") from None


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    value = _float(env, name, default)
    if value < 0:
        raise ConfigError(f"{name}={value!r} cannot be negative; 0 turns it off.")
    return value


def _choice(env: Mapping[str, str], name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = env.get(name, "").strip().lower() or default
    if value not in allowed:
        raise ConfigError(f"{name}={value!r} is not known; use one of: {', '.join(allowed)}.")
    return value


def _retry_delays(raw: str) -> str:
    raw = raw.strip() or "2,10,30"
    try:
        delays = [int(x) for x in raw.split(",")]
    except ValueError:
        raise ConfigError(f"AI_RETRY_DELAYS={raw!r} must be comma-separated seconds, e.g. '2,10,30'.") from None
    if any(d < 0 for d in delays):
        raise ConfigError("AI_RETRY_DELAYS cannot hold negative delays.")
    return ",".join(str(d) for d in delays)


def _rate_limit(raw: str, name: str = "MESSAGE_RATE_LIMIT", default: str = "20/minute") -> str:
    from .ratelimit import Limit

    raw = raw.strip() or default
    try:
        Limit.parse(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} must be a count per period, e.g. '20/minute' or '100/hour'.") from None
    return raw


def normalize_database_url(url: str) -> str:
    """Accept the ``postgres://`` spelling PaaS providers hand out and pin the psycopg2 driver."""
    url = url.strip()
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg2://" + url[len("postgresql://") :]
    return url


@dataclass(frozen=True)
class Settings:
    """Typed view of the environment. Field names are the environment variable names."""

    APP_ENV: str = "development"
    DATABASE_URL: str = ""
    REDIS_URL: str = ""
    SECRET_KEY: str = ""
    PORT: int = 8050
    AI_PROVIDER: str = "builtin"
    ANALYTICS_TZ: str = "UTC"
    ANALYTICS_LIVE_SECONDS: float = 5.0
    CURRICULUM_DIR: str = ""
    INSTANCE_PATH: str = str(PROJECT_ROOT / "instance")
    LOG_LEVEL: str = "INFO"
    LOG_FORMAT: str = "text"
    METRICS_TOKEN: str = ""
    WEB_CONCURRENCY: int = 2
    WEB_WORKER_CLASS: str = "gevent"
    WEB_CONNECTIONS: int = 2000
    WEB_THREADS: int = 32
    WEB_ACTIVE_REQUESTS: int = 16
    WORKER_REPLY_CONCURRENCY: int = 200
    WORKER_PROCESSES: int = 0  # python app.py: 0 = one per CPU core beyond the first, 1 to 4
    STREAMS_PER_STUDENT: int = 4
    STREAM_FLUSH_MS: int = 50
    DB_POOL_SIZE: int = 10
    DB_MAX_OVERFLOW: int = 10
    DB_POOL_TIMEOUT: float = 5.0
    SESSION_IDLE_MINUTES: int = 30
    MESSAGE_MAX_CHARS: int = 4000
    REQUEST_MAX_BYTES: int = 1_048_576  # larger request bodies get 413 before they are read
    MESSAGE_RATE_LIMIT: str = "20/minute"
    STREAM_OPEN_RATE_LIMIT: str = "60/minute"
    REGISTER_RATE_LIMIT: str = "100/hour"  # account registrations per client address
    OPENAI_BASE_URL: str = ""
    OPENAI_API_KEY: str = ""
    AI_MODEL: str = "gpt-4o-mini"
    AI_TIMEOUT: float = 60.0
    AI_RETRY_DELAYS: str = "2,10,30"
    AI_CONTEXT_WINDOW: int = 8192  # the model server's context (tokens): prompt + reply
    AI_MAX_TOKENS: int = 800  # the longest reply (sent as max_tokens)
    BUILTIN_CHUNK_DELAY: float = 0.03
    AI_JUDGE: bool = True  # with AI_PROVIDER=openai: the hidden solve step and the LLM judge of replies
    EMBED_SECRET: str = ""
    AI_PRICES: str = ""  # "gpt-4o-mini=0.15/0.60,...": USD per million prompt/completion tokens, for the dashboard
    EMBED_SITES: str = ""  # "portal=SECRET,lms=SECRET": one key per host site (tokens name it in "kid")
    EMBED_ALLOWED_ORIGINS: str = ""
    TRUSTED_PROXIES: int = 0
    DEMO_STUDENTS: int = 200
    DEMO_DAYS: int = 120

    @property
    def is_production(self) -> bool:
        return self.APP_ENV == "production"

    @property
    def embedded(self) -> bool:
        """True when neither service is configured: ``python app.py`` starts its own."""
        return not self.DATABASE_URL and not self.REDIS_URL

    def flask_config(self) -> dict[str, Any]:
        config = asdict(self)
        config["MAX_CONTENT_LENGTH"] = self.REQUEST_MAX_BYTES  # Flask answers 413 above it
        return config


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build :class:`Settings` from an environment mapping (``os.environ`` by default)."""
    env = os.environ if env is None else env
    app_env = env.get("APP_ENV", "development").strip().lower() or "development"
    if app_env not in {"development", "production"}:
        raise ConfigError(f"APP_ENV={app_env!r} is not known; use 'development' or 'production'.")

    tz = env.get("ANALYTICS_TZ", "UTC").strip() or "UTC"
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"ANALYTICS_TZ={tz!r} is not an IANA time zone; use e.g. 'Europe/Berlin' or 'UTC'.") from None

    provider = env.get("AI_PROVIDER", "builtin").strip().lower() or "builtin"
    if provider not in {"builtin", "openai"}:
        raise ConfigError(f"AI_PROVIDER={provider!r} is not known; use 'builtin' or 'openai'.")

    if env.get("AI_CONTEXT_TOKENS", "").strip():
        raise ConfigError(
            "AI_CONTEXT_TOKENS is no longer read: set AI_CONTEXT_WINDOW (the model's context, in tokens) "
            "and AI_MAX_TOKENS (the longest reply); the history gets what is left."
        )
    context_window = _int(env, "AI_CONTEXT_WINDOW", 8192, minimum=512)
    max_tokens = _int(env, "AI_MAX_TOKENS", 800, minimum=16)
    if max_tokens > context_window // 2:
        raise ConfigError(
            f"AI_MAX_TOKENS={max_tokens} leaves too little of AI_CONTEXT_WINDOW={context_window} for the "
            "conversation; keep it at most half the window."
        )

    database_url = env.get("DATABASE_URL", "").strip()
    redis_url = env.get("REDIS_URL", "").strip()
    if app_env == "production":
        if not env.get("SECRET_KEY", "").strip():
            raise ConfigError(
                "SECRET_KEY is not set; production mode needs a long random SECRET_KEY in the environment."
            )
        if not database_url or not redis_url:
            missing = " and ".join(n for n, v in (("DATABASE_URL", database_url), ("REDIS_URL", redis_url)) if not v)
            raise ConfigError(f"{missing} not set; production mode needs both services configured.")

    return Settings(
        APP_ENV=app_env,
        DATABASE_URL=normalize_database_url(database_url) if database_url else "",
        REDIS_URL=redis_url,
        SECRET_KEY=env.get("SECRET_KEY", "").strip(),
        PORT=_int(env, "PORT", 8050, minimum=1),
        AI_PROVIDER=provider,
        ANALYTICS_TZ=tz,
        ANALYTICS_LIVE_SECONDS=_seconds(env, "ANALYTICS_LIVE_SECONDS", 5.0),
        CURRICULUM_DIR=env.get("CURRICULUM_DIR", "").strip(),
        INSTANCE_PATH=str(Path(env.get("INSTANCE_PATH", "").strip() or PROJECT_ROOT / "instance").resolve()),
        LOG_LEVEL=env.get("LOG_LEVEL", "INFO").strip().upper() or "INFO",
        LOG_FORMAT=_choice(env, "LOG_FORMAT", "json" if app_env == "production" else "text", ("text", "json")),
        METRICS_TOKEN=env.get("METRICS_TOKEN", "").strip(),
        WEB_CONCURRENCY=_int(env, "WEB_CONCURRENCY", 2, minimum=1),
        WEB_WORKER_CLASS=_choice(env, "WEB_WORKER_CLASS", "gevent", ("gevent", "gthread")),
        WEB_CONNECTIONS=_int(env, "WEB_CONNECTIONS", 2000, minimum=10),
        WEB_THREADS=_int(env, "WEB_THREADS", 32, minimum=1),
        WEB_ACTIVE_REQUESTS=_int(env, "WEB_ACTIVE_REQUESTS", 16, minimum=0),
        WORKER_REPLY_CONCURRENCY=_int(env, "WORKER_REPLY_CONCURRENCY", 200, minimum=1),
        WORKER_PROCESSES=_int(env, "WORKER_PROCESSES", 0, minimum=0),
        STREAMS_PER_STUDENT=_int(env, "STREAMS_PER_STUDENT", 4, minimum=1),
        STREAM_FLUSH_MS=_int(env, "STREAM_FLUSH_MS", 50, minimum=0),
        DB_POOL_SIZE=_int(env, "DB_POOL_SIZE", 10, minimum=1),
        DB_MAX_OVERFLOW=_int(env, "DB_MAX_OVERFLOW", 10, minimum=0),
        DB_POOL_TIMEOUT=_seconds(env, "DB_POOL_TIMEOUT", 5.0),
        SESSION_IDLE_MINUTES=_int(env, "SESSION_IDLE_MINUTES", 30, minimum=1),
        MESSAGE_MAX_CHARS=_int(env, "MESSAGE_MAX_CHARS", 4000, minimum=1),
        REQUEST_MAX_BYTES=_int(env, "REQUEST_MAX_BYTES", 1_048_576, minimum=16_384),
        MESSAGE_RATE_LIMIT=_rate_limit(env.get("MESSAGE_RATE_LIMIT", "")),
        STREAM_OPEN_RATE_LIMIT=_rate_limit(
            env.get("STREAM_OPEN_RATE_LIMIT", ""), "STREAM_OPEN_RATE_LIMIT", "60/minute"
        ),
        REGISTER_RATE_LIMIT=_rate_limit(env.get("REGISTER_RATE_LIMIT", ""), "REGISTER_RATE_LIMIT", "100/hour"),
        OPENAI_BASE_URL=env.get("OPENAI_BASE_URL", "").strip(),
        OPENAI_API_KEY=env.get("OPENAI_API_KEY", "").strip(),
        AI_MODEL=env.get("AI_MODEL", "gpt-4o-mini").strip() or "gpt-4o-mini",
        AI_TIMEOUT=_float(env, "AI_TIMEOUT", 60.0),
        AI_RETRY_DELAYS=_retry_delays(env.get("AI_RETRY_DELAYS", "2,10,30")),
        AI_CONTEXT_WINDOW=context_window,
        AI_MAX_TOKENS=max_tokens,
        BUILTIN_CHUNK_DELAY=_float(env, "BUILTIN_CHUNK_DELAY", 0.03),
        AI_JUDGE=env.get("AI_JUDGE", "1").strip().lower() not in ("0", "false", "no", "off"),
        EMBED_SECRET=env.get("EMBED_SECRET", "").strip(),
        AI_PRICES=_prices(env.get("AI_PRICES", "")),
        EMBED_SITES=_embed_sites(env.get("EMBED_SITES", "")),
        EMBED_ALLOWED_ORIGINS=env.get("EMBED_ALLOWED_ORIGINS", "").strip(),
        TRUSTED_PROXIES=_int(env, "TRUSTED_PROXIES", 1 if app_env == "production" else 0),
        DEMO_STUDENTS=_int(env, "DEMO_STUDENTS", 200, minimum=1),
        DEMO_DAYS=_int(env, "DEMO_DAYS", 120, minimum=1),
    )


def parse_embed_sites(raw: str) -> dict[str, str]:
    """``EMBED_SITES`` ("portal=SECRET,lms=SECRET") as {site id: secret}."""
    sites: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        site, sep, secret = item.partition("=")
        site, secret = site.strip(), secret.strip()
        if not sep or not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", site) or site == "default":
            raise ConfigError(
                f"EMBED_SITES item {site!r}: use site=secret, a site id of letters, digits, '.', '_' or '-' "
                "(not 'default', which is EMBED_SECRET's)"
            )
        if len(secret.encode()) < 32:
            raise ConfigError(f"EMBED_SITES: the secret of {site!r} must be at least 32 bytes")
        sites[site] = secret
    return sites


def parse_prices(raw: str) -> dict[str, tuple[float, float]]:
    """``AI_PRICES`` ("gpt-4o-mini=0.15/0.60,llama3=0/0") as {model: (prompt, completion)}, each
    in US dollars (or any one currency) per million tokens."""
    prices: dict[str, tuple[float, float]] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        model, sep, pair = item.rpartition("=")
        prompt, slash, completion = pair.partition("/")
        try:
            value = (float(prompt), float(completion))
        except ValueError:
            value = None
        if (
            not sep
            or not model.strip()
            or not slash
            or value is None
            or min(value) < 0
            or not all(map(math.isfinite, value))
        ):
            raise ConfigError(
                f"AI_PRICES item {item!r}: use model=PROMPT/COMPLETION, prices per million tokens "
                "(e.g. gpt-4o-mini=0.15/0.60)"
            )
        prices[model.strip()] = value
    return prices


def _prices(raw: str) -> str:
    parse_prices(raw)  # checked when the settings load
    return raw.strip()


def _embed_sites(raw: str) -> str:
    parse_embed_sites(raw)  # checked when the settings load
    return raw.strip()


def development_secret_key(instance_path: str | Path) -> str:
    """Generate a key once per instance folder so dev sessions survive restarts."""
    path = Path(instance_path) / "secret_key"
    if path.exists():
        key = path.read_text().strip()
        if key:
            return key
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(key)
    tmp.chmod(0o600)
    tmp.replace(path)
    return key
