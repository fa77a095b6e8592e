from django.apps import AppConfig


class TrainingConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "training"

    def ready(self) -> None:
        from .dispatch import round_jobs

        round_jobs()  # registered with the job sweep (annotation.jobs.jobs_reap_stale)
