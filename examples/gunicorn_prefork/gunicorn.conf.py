"""gunicorn configuration: several pre-forked workers, each profiled under its own pid.

Run (from anywhere):

    gunicorn -c examples/gunicorn_prefork/gunicorn.conf.py
    curl 'http://127.0.0.1:8000/slow'

Environment: BIND (127.0.0.1:8000), WORKERS (3), SPANPROF_SERVER_ADDRESS, OTEL_EXPORTER_OTLP_ENDPOINT.
"""

import os

chdir = os.path.dirname(os.path.abspath(__file__))
wsgi_app = "app:app"
bind = os.environ.get("BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WORKERS", "3"))
preload_app = False  # import the app in each worker; with True, still start profiling in post_fork


def post_fork(server, worker):
    # Runs in the new worker process. Start profiling and tracing here, not in the master:
    # threads (spanprof's uploader, the OTel batch exporter) do not survive fork.
    from app import setup_telemetry

    setup_telemetry()


def worker_exit(server, worker):
    # Runs in the worker as it stops (SIGTERM, max_requests, reload): send what is buffered.
    from app import flush_telemetry

    flush_telemetry()
