"""gunicorn settings (``gunicorn -c python:foundation.gunicorn_conf 'app:create_app()'``).

The ``gevent`` worker class (``WEB_WORKER_CLASS``, the default) serves every request of a
process on one OS thread, switching between them whenever one waits on a socket: an open
reply stream costs a greenlet and its socket, not a thread, so a process holds thousands
(``WEB_CONNECTIONS``) while pages, the API and the dashboard keep answering. psycopg2 is made
cooperative in each worker (psycogreen), and password hashing runs on gevent's thread pool
(``foundation.cooperative``). ``WEB_WORKER_CLASS=gthread`` gives the previous behaviour:
``WEB_THREADS`` threads per process, one per open request. Settings come from the same
environment as the app; a bad one stops the server with one line before any worker starts.
"""

import os
import shutil
import sys
import tempfile

from .config import ConfigError, load_settings

try:
    _settings = load_settings()
except ConfigError as exc:
    sys.stderr.write(f"error: {exc}\n")
    raise SystemExit(2) from None

bind = f"0.0.0.0:{_settings.PORT}"
workers = _settings.WEB_CONCURRENCY
worker_class = _settings.WEB_WORKER_CLASS
worker_connections = _settings.WEB_CONNECTIONS  # gevent: open connections per process
threads = _settings.WEB_THREADS  # gthread only
timeout = 60
graceful_timeout = 20
keepalive = 5
# A line per request belongs in the production (JSON) log or a DEBUG run, not in the dev console.
accesslog = "-" if _settings.LOG_FORMAT == "json" or _settings.LOG_LEVEL == "DEBUG" else None
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms'
logger_class = "foundation.gunicorn_logging.RedactingLogger"  # embed tokens never reach the access log
# gunicorn's start lines ("Listening at", "Booting worker" ...) repeat what the dev console's
# own lines say; the JSON production log keeps them.
loglevel = (
    "warning" if _settings.LOG_FORMAT == "text" and _settings.LOG_LEVEL == "INFO" else _settings.LOG_LEVEL.lower()
)
# gunicorn's control socket (one fixed path per user) would clash between instances; unused here.
control_socket_disable = True


# Request metrics from every gunicorn worker are merged through files in this folder
# (prometheus_client's multiprocess mode); it is made fresh for each server start.
_metrics_dir = tempfile.mkdtemp(prefix="aitutor-metrics-")
os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir


def post_fork(server, worker):
    if worker_class == "gevent":
        from foundation.cooperative import patch_psycopg

        patch_psycopg()


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    shutil.rmtree(_metrics_dir, ignore_errors=True)
