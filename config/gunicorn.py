"""gunicorn settings for production: ``gunicorn -c config/gunicorn.py config.wsgi``.

Threads overlap the database round trips of the labelling calls; several
processes keep one Python interpreter's lock from capping a machine. On the
2-core machine of bench/README.md, 4 workers × 4 threads served the most labels
per second at 32 annotators; set WEB_WORKERS / WEB_THREADS for other machines.
"""

import os

bind = os.environ.get("WEB_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("WEB_WORKERS", "4"))
threads = int(os.environ.get("WEB_THREADS", "4"))
worker_class = "gthread"
# Keep-alive lets an annotator's browser reuse its connection between next and submit.
keepalive = 30
timeout = 60
# No access log by default: a line written per request, in the request's thread, is CPU on the labelling hot path.
# WEB_ACCESS_LOG=- writes it to stdout (or name a file). Errors go to stderr either way (gunicorn's error log, and
# Django's for 4xx/5xx answers: config/settings.py LOGGING).
accesslog = os.environ.get("WEB_ACCESS_LOG") or None
