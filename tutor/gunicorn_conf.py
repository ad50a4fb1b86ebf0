"""gunicorn settings (``gunicorn -c python:tutor.gunicorn_conf 'app:create_app()'``).

The ``gthread`` worker class gives every open request, streamed replies included, its own
thread, so a worker holds ``WEB_THREADS`` server-sent-event streams open while the heartbeat
keeps running. Settings come from the same environment as the app; a bad one stops the
server with one line before any worker starts.
"""

import sys

from tutor.config import ConfigError, load_settings

try:
    _settings = load_settings()
except ConfigError as exc:
    sys.stderr.write(f"error: {exc}\n")
    raise SystemExit(2) from None

bind = f"0.0.0.0:{_settings.PORT}"
workers = _settings.WEB_CONCURRENCY
worker_class = "gthread"
threads = _settings.WEB_THREADS
timeout = 60
graceful_timeout = 20
keepalive = 5
accesslog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms'
loglevel = _settings.LOG_LEVEL.lower()
# gunicorn's control socket (one fixed path per user) would clash between instances; unused here.
control_socket_disable = True
