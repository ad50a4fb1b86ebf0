"""gunicorn settings (``gunicorn -c python:foundation.gunicorn_conf 'app:create_app()'``).

The ``gthread`` worker class gives every open request, streamed replies included, its own
thread, so a worker holds ``WEB_THREADS`` server-sent-event streams open while the heartbeat
keeps running. Settings come from the same environment as the app; a bad one stops the
server with one line before any worker starts.
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


# Request metrics from every gunicorn worker are merged through files in this folder
# (prometheus_client's multiprocess mode); it is made fresh for each server start.
_metrics_dir = tempfile.mkdtemp(prefix="aitutor-metrics-")
os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    shutil.rmtree(_metrics_dir, ignore_errors=True)
