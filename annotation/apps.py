from django.apps import AppConfig


class AnnotationConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "annotation"

    def ready(self) -> None:
        from . import authentication, jobs

        authentication.token_cache_signals_connect()

        # The sweep (jobs.jobs_reap_stale) recovers every registered kind of job.
        jobs.import_jobs()
        jobs.export_jobs()
