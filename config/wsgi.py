"""WSGI entry point (gunicorn ``config.wsgi``): the Django application, and the garbage collector told to
leave what loading it made alone."""

import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

application = get_wsgi_application()

# Everything loaded by now (Django, the apps, their modules and settings) lives as long as the process.
# Frozen, it is left out of the cyclic collector's walks, which otherwise re-scan all of it on each full
# collection: ~0.5 ms of CPU per label on the labelling path (bench/README.md). Objects made while
# serving requests are collected as before.
gc.freeze()
