"""WSGI entry point (gunicorn ``config.wsgi``): the Django application with its code loaded, and the garbage
collector told to leave what loading it made alone."""

import gc
import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

application = get_wsgi_application()

# The URLconf, and with it every view and what the views import (the exporters' pyarrow among them), loaded now:
# else the first requests each worker serves wait for those imports (a first export the longest: bench/README.md).
get_resolver().url_patterns  # noqa: B018 (the property imports them)

# Everything loaded by now (Django, the apps, their modules and settings) lives as long as the process.
# Frozen, it is left out of the cyclic collector's walks, which otherwise re-scan all of it on each full
# collection: ~0.5 ms of CPU per label on the labelling path (bench/README.md). Objects made while
# serving requests are collected as before.
gc.freeze()
