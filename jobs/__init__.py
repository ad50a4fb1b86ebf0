"""Background work, run by RQ workers (``worker.py``).

Jobs are plain functions of ids. The worker runs each inside the app context, so a job
uses ``db.session`` and the config like a request does, and tests can call it directly.
The queues and enqueueing by name live in :mod:`foundation.queue`.
"""
