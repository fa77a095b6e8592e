from django.apps import AppConfig


class AnnotationConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "annotation"

    def ready(self) -> None:
        from . import jobs

        # The sweep (jobs.jobs_reap_stale) recovers every registered kind of job.
        jobs.import_jobs()
        jobs.export_jobs()
