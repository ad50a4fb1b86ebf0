"""Prometheus metrics at ``/metrics`` (a bearer ``METRICS_TOKEN``, or an admin's login).

- request latency: a histogram per web process, aggregated across gunicorn workers with
  prometheus_client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, set by the gunicorn
  config);
- job durations and failures, and tutor reply latency: recorded by workers, which may run
  on other machines, into Redis hashes, so any web process reports the whole cluster;
- queue depths, failed and running jobs, workers: read from Redis when scraped.
"""

from __future__ import annotations

import hmac
import json
import os
import time
from bisect import bisect_left

from flask import Blueprint, Flask, Response, current_app, g, request
from flask_login import current_user
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from redis import Redis

bp = Blueprint("metrics", __name__)

JOB_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600)
REPLY_BUCKETS = (0.25, 0.5, 1, 2, 3, 5, 8, 13, 20, 30, 60, 120)
_KEY = "aitutor:metrics:"

REQUEST_LATENCY = Histogram(
    "aitutor_http_request_duration_seconds",
    "Time to answer an HTTP request (streams: until the response starts).",
    ["method", "endpoint", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


# ----------------------------------------------------------------------------- recording (workers)


def _observe(redis: Redis, name: str, labels: dict[str, str], value: float, buckets: tuple[float, ...]) -> None:
    label = json.dumps(labels, sort_keys=True)
    index = bisect_left(buckets, value)
    le = str(buckets[index]) if index < len(buckets) else "+Inf"
    pipe = redis.pipeline(transaction=False)
    pipe.hincrby(_KEY + name, f"{label}|{le}", 1)
    pipe.hincrbyfloat(_KEY + name, f"{label}|sum", value)
    pipe.execute()


def record_job(redis: Redis, func: str, seconds: float, ok: bool) -> None:
    try:
        _observe(redis, "job_duration", {"func": func}, seconds, JOB_BUCKETS)
        if not ok:
            redis.hincrby(_KEY + "job_failures", json.dumps({"func": func}), 1)
    except Exception:  # noqa: BLE001 - metrics must never break a job
        current_app.logger.debug("could not record job metrics", exc_info=True)


def record_reply(redis: Redis, provider: str, latency_ms: int) -> None:
    try:
        _observe(redis, "reply_latency", {"provider": provider}, latency_ms / 1000, REPLY_BUCKETS)
    except Exception:  # noqa: BLE001
        current_app.logger.debug("could not record reply metrics", exc_info=True)


# ----------------------------------------------------------------------------- scraping


class ClusterCollector:
    """Metrics that live in Redis: what every worker recorded, and the queues' state."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    def collect(self):
        from rq import Queue, Worker
        from rq.registry import FailedJobRegistry, StartedJobRegistry

        from .queue import QUEUES

        yield from self._histogram("job_duration", "aitutor_job_duration_seconds", "RQ job run time.", JOB_BUCKETS)
        yield from self._histogram(
            "reply_latency",
            "aitutor_reply_latency_seconds",
            "Tutor reply time, job start to last chunk.",
            REPLY_BUCKETS,
        )
        failures = CounterMetricFamily("aitutor_job_failures", "RQ job runs that failed.", labels=["func"])
        for label, count in self.redis.hgetall(_KEY + "job_failures").items():
            failures.add_metric([json.loads(label)["func"]], int(count))
        yield failures
        depth = GaugeMetricFamily("aitutor_queue_depth", "Jobs waiting in an RQ queue.", labels=["queue"])
        running = GaugeMetricFamily("aitutor_queue_running", "Jobs being run.", labels=["queue"])
        failed = GaugeMetricFamily("aitutor_queue_failed", "Jobs in the failed registry.", labels=["queue"])
        for name in QUEUES:
            queue = Queue(name, connection=self.redis)
            depth.add_metric([name], queue.count)
            running.add_metric([name], StartedJobRegistry(queue=queue).count)
            failed.add_metric([name], FailedJobRegistry(queue=queue).count)
        yield depth
        yield running
        yield failed
        workers = GaugeMetricFamily("aitutor_workers", "RQ workers alive.")
        workers.add_metric([], Worker.count(connection=self.redis))
        yield workers

    def _histogram(self, key: str, name: str, doc: str, buckets: tuple[float, ...]):
        raw = self.redis.hgetall(_KEY + key)
        series: dict[str, dict[str, float]] = {}
        for field, value in raw.items():
            label, _, le = field.decode().rpartition("|")
            series.setdefault(label, {})[le] = float(value)
        family = HistogramMetricFamily(name, doc, labels=None if not series else sorted(json.loads(next(iter(series)))))
        for label, values in series.items():
            labels = json.loads(label)
            cumulative, out = 0.0, []
            for bound in [*map(str, buckets), "+Inf"]:
                cumulative += values.get(bound, 0)
                out.append((bound, cumulative))
            family.add_metric([labels[k] for k in sorted(labels)], out, values.get("sum", 0.0))
        yield family


@bp.get("/metrics")
def metrics():
    token = current_app.config["METRICS_TOKEN"]
    sent = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    allowed = (token and sent and hmac.compare_digest(token, sent)) or (
        current_user.is_authenticated and current_user.role == "admin"
    )
    if not allowed:
        status = 403 if current_user.is_authenticated else 401
        from .errors import json_error

        return json_error(status, "unauthorized", "Send 'Authorization: Bearer <METRICS_TOKEN>' or log in as an admin.")
    from .extensions import redis_ext

    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(REQUEST_LATENCY)
    registry.register(ClusterCollector(redis_ext.conn))
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


def _start_timer() -> None:
    g.request_started = time.perf_counter()


def _observe_request(response):
    started = g.get("request_started")
    if started is not None and request.endpoint != "metrics.metrics":
        REQUEST_LATENCY.labels(request.method, request.endpoint or "unknown", str(response.status_code)).observe(
            time.perf_counter() - started
        )
    return response


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.before_request(_start_timer)
    app.after_request(_observe_request)
