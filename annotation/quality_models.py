"""The label-quality tables (issue 18). Kept apart from ``models.py`` (imported at its end) so the quality work
merges without touching the core models; Django sees them as ``annotation`` models all the same.

Everything here except ``AnnotatorExclusion`` is derived: ``annotation.quality.service.quality_recompute``
rewrites it from the judgments (a Celery task, after enough new judgments), never per request.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q


class ProjectQuality(models.Model):
    """When the project's quality figures were last computed, from which judgments, and the project-wide
    agreement statistics (Krippendorff's alpha, Fleiss' kappa, span F1…)."""

    project = models.OneToOneField("annotation.Project", on_delete=models.CASCADE, related_name="quality")
    judgment_max_id = models.BigIntegerField(default=0, help_text="The newest judgment the figures include.")
    judgment_count = models.PositiveIntegerField(default=0)
    statistics = models.JSONField(default=dict, blank=True)
    computed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"quality of project {self.project_id} up to judgment {self.judgment_max_id}"


class AnnotatorQuality(models.Model):
    """One annotator's figures in one project, as of the project's last quality computation."""

    project = models.ForeignKey("annotation.Project", on_delete=models.CASCADE, related_name="+", db_index=False)
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    judgments = models.PositiveIntegerField(default=0)
    median_time_ms = models.PositiveIntegerField(null=True, blank=True)
    gold_judged = models.PositiveIntegerField(default=0)
    gold_correct = models.FloatField(default=0.0, help_text="Ties against a gold winner count half.")
    # Estimated accuracy from the reliability model (annotation.quality.reliability); null without choices.
    reliability = models.FloatField(null=True, blank=True)
    # The training weight derived from it (annotation.quality.reliability.reliability_weight).
    weight = models.FloatField(null=True, blank=True)
    agreement_with_consensus = models.FloatField(null=True, blank=True)
    agreement_with_others = models.FloatField(null=True, blank=True)
    left_share = models.FloatField(null=True, blank=True, help_text="Share of choices for the candidate shown left.")
    longer_share = models.FloatField(null=True, blank=True, help_text="Share of choices for the longer text.")
    # Position-bias checks answered, and how many of them gave the same answer as the first time
    # (annotation.quality.position).
    position_checks = models.PositiveIntegerField(default=0)
    position_consistent = models.PositiveIntegerField(default=0)
    # [{"code": "too_fast", "message": "..."}]: see annotation.quality.flags.
    flags = models.JSONField(default=list, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "annotator"], name="annotatorquality_one_per_annotator")
        ]

    def __str__(self) -> str:
        return f"quality of user {self.annotator_id} in project {self.project_id}"


class ComparisonConsensus(models.Model):
    """The reliability model's answer for one comparison and the posterior probability it is right."""

    comparison = models.OneToOneField(
        "annotation.Comparison", on_delete=models.CASCADE, primary_key=True, related_name="consensus"
    )
    project = models.ForeignKey("annotation.Project", on_delete=models.CASCADE, related_name="+", db_constraint=False)
    winner = models.ForeignKey("annotation.Candidate", on_delete=models.CASCADE, related_name="+")
    confidence = models.FloatField()
    judgments = models.PositiveIntegerField()

    def __str__(self) -> str:
        return f"consensus on comparison {self.comparison_id}: {self.winner_id} ({self.confidence:.2f})"


class AnnotatorExclusion(models.Model):
    """A researcher's decision that an annotator's labels do not train models of this project, until restored.

    Rows are never deleted: restoring fills ``restored_at``, so the table is the history; each change is also
    written to Django's admin log (annotation.quality.exclusions).
    """

    project = models.ForeignKey("annotation.Project", on_delete=models.CASCADE, related_name="+", db_index=False)
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    reason = models.TextField(blank=True)
    excluded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    excluded_at = models.DateTimeField(auto_now_add=True)
    restored_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    restored_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # At most one standing exclusion per annotator and project: excluding twice changes nothing.
            models.UniqueConstraint(
                fields=["project", "annotator"],
                condition=Q(restored_at__isnull=True),
                name="annotatorexclusion_one_standing",
            )
        ]

    def __str__(self) -> str:
        state = "restored" if self.restored_at else "excluded"
        return f"user {self.annotator_id} {state} in project {self.project_id}"


class AnnotatorPause(models.Model):
    """The annotator fell below the project's gold pause threshold: ``next`` serves them nothing until a
    researcher resumes them. Rows are never deleted (resuming fills ``resumed_at``), so the table is the history;
    resuming is also written to Django's admin log (annotation.quality.gold)."""

    project = models.ForeignKey("annotation.Project", on_delete=models.CASCADE, related_name="+", db_index=False)
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    reason = models.TextField(help_text="Shown to the annotator in next's 403.")
    gold_judged = models.PositiveIntegerField(help_text="Gold checks judged when paused.")
    paused_at = models.DateTimeField(auto_now_add=True)
    resumed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resumed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # At most one standing pause; also the index next's pause check reads.
            models.UniqueConstraint(
                fields=["project", "annotator"],
                condition=Q(resumed_at__isnull=True),
                name="annotatorpause_one_standing",
            )
        ]

    def __str__(self) -> str:
        state = "resumed" if self.resumed_at else "paused"
        return f"user {self.annotator_id} {state} in project {self.project_id}"


class PositionCheckState(models.TextChoices):
    WAITING = "waiting"  # scheduled; due once ``wait`` reaches 0
    SERVED = "served"  # on the annotator's screen (until ``expires_at``)
    ANSWERED = "answered"
    SKIPPED = "skipped"  # the annotator skipped it: not served again
    DROPPED = "dropped"  # given back (released or run out) a second time


class PositionCheck(models.Model):
    """A comparison served again to the annotator who judged it, the candidates in reversed order: a deliberate,
    recorded exception to "nobody sees a comparison twice" (annotation.quality.position). The repeat answer lives
    here, never as a ``Judgment``: it counts toward nothing (``judged``, ``wanted``, consensus, exports)."""

    project = models.ForeignKey("annotation.Project", on_delete=models.CASCADE, related_name="+", db_index=False)
    comparison = models.ForeignKey("annotation.Comparison", on_delete=models.CASCADE, related_name="+")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    # The first answer; one check per judgment at most.
    judgment = models.OneToOneField("annotation.Judgment", on_delete=models.CASCADE, related_name="position_check")
    state = models.CharField(max_length=8, choices=PositionCheckState.choices, default=PositionCheckState.WAITING)
    wait = models.PositiveSmallIntegerField(help_text="New tasks the annotator is still to be served before it is due.")
    given_back = models.PositiveSmallIntegerField(default=0, help_text="Times released or run out unanswered.")
    served_order = models.JSONField(default=list, blank=True, help_text="Candidate ids as served, left to right.")
    served_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    # The repeat answer as submitted: winner, tie, ranking, strength, ratings, spans, rationale, shown_order,
    # time_spent_ms.
    answer = models.JSONField(null=True, blank=True)
    idempotency_key = models.CharField(max_length=255, blank=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    consistent = models.BooleanField(
        null=True, blank=True, help_text="The same winner (or top of the ranking, or tie) as the first time."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=~Q(state="answered") | Q(answer__isnull=False, consistent__isnull=False),
                name="positioncheck_answered_has_answer",
            ),
        ]
        indexes = [
            # The queue's probe for an annotator's open checks (annotation.access, annotation.quality.position).
            models.Index(
                fields=["annotator", "project"],
                condition=Q(state__in=["waiting", "served"]),
                name="positioncheck_open",
            ),
        ]

    def __str__(self) -> str:
        return f"position check of comparison {self.comparison_id} for user {self.annotator_id}: {self.state}"
