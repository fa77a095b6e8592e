"""Annotation data: projects, prompts, candidates, comparisons, leases, judgments.

Foreign keys whose column leads a unique constraint or index carry no index of
their own (``db_index=False``): the composite one serves the same lookups, and
every extra index slows bulk imports.

A ``project`` key that another key implies (a candidate's or comparison's
project is its prompt's; an assignment's or judgment's, its comparison's) has no
database constraint (``db_constraint=False``): the column is a denormalised copy
for filtering, written from the parent by the code that creates the row, and
Django still cascades deletes through it. Checking it cost one foreign-key
lookup per row (600,000 per 200,000-comparison import) and one per claim and
submission.

The keys an import writes by the million (a prompt's project, a candidate's and
a comparison's prompt) are checked on Postgres by statement-level triggers, not
constraints (migration 0008, docs/DECISIONS.md): one check per ``COPY`` batch
instead of one per row. They are as strict: a missing parent fails the insert,
removing a parent that still has children fails.

Models hold fields, constraints and trivial properties. Every write with rules
goes through a service module (``queue.py``, ``judgments.py``, ``importers.py``…);
invariants the database can keep are declared here as constraints.
"""

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from .job_models import BackgroundJob, JobStatus


class Modality(models.TextChoices):
    TEXT = "text"
    IMAGE = "image"
    VIDEO = "video"
    AUDIO = "audio"


class Role(models.TextChoices):
    """Project roles, each including the rights of the ones before it."""

    ANNOTATOR = "annotator"
    RESEARCHER = "researcher"
    ADMIN = "admin"


ROLE_RANK = {Role.ANNOTATOR: 1, Role.RESEARCHER: 2, Role.ADMIN: 3}


class Split(models.TextChoices):
    TRAIN = "train"
    EVAL = "eval"


class Project(models.Model):
    name = models.CharField(max_length=200)
    modality = models.CharField(max_length=10, choices=Modality.choices, default=Modality.TEXT)
    # The labeling schema, validated by annotation.schema.LabelingSchema.
    schema = models.JSONField(default=dict)
    overlap = models.PositiveSmallIntegerField(default=1, help_text="Judgments wanted per comparison.")
    gold_share = models.FloatField(default=0.0, help_text="Share of served tasks that are gold checks, 0..1.")
    lease_seconds = models.PositiveIntegerField(default=600)
    guidelines = models.TextField(blank=True, help_text="Markdown shown to annotators.")
    training_settings = models.JSONField(default=dict, blank=True)
    # Optional gold-accuracy thresholds and whether annotators see their own accuracy; validated by
    # annotation.quality.gold.parse_gold_settings. Empty: off.
    gold_settings = models.JSONField(default=dict, blank=True)
    # Position-bias checks (annotation.quality.position): the share of ordinary judgments whose comparison is
    # served again, swapped, to the same annotator, between after_min and after_max new tasks later. 0: off.
    position_check_share = models.FloatField(default=0.0)
    position_check_after_min = models.PositiveSmallIntegerField(default=5)
    position_check_after_max = models.PositiveSmallIntegerField(default=20)
    serve_prompt_pairs_together = models.BooleanField(
        default=False,
        help_text="Serve the comparisons of one prompt one after another (else the queue spreads them out).",
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(overlap__gte=1), name="project_overlap_positive"),
            models.CheckConstraint(condition=Q(gold_share__gte=0, gold_share__lte=1), name="project_gold_share_0_1"),
            models.CheckConstraint(
                condition=Q(position_check_share__gte=0, position_check_share__lte=1),
                name="project_position_check_share_0_1",
            ),
            models.CheckConstraint(
                condition=Q(
                    position_check_after_min__gte=1, position_check_after_max__gte=F("position_check_after_min")
                ),
                name="project_position_check_after_range",
            ),
            models.CheckConstraint(condition=Q(lease_seconds__gte=10), name="project_lease_at_least_10s"),
        ]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships", db_index=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=12, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "user"], name="membership_one_per_user")]

    def __str__(self) -> str:
        return f"{self.user} is {self.role} of {self.project}"


class Prompt(models.Model):
    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="prompts", db_index=False, db_constraint=False
    )
    # Unique per project: re-importing the same file updates nothing twice.
    external_id = models.CharField(max_length=255)
    text = models.TextField()
    # Chat context before the prompt: [{"role": "user"|"assistant"|"system", "content": "..."}].
    context = models.JSONField(default=list, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    split = models.CharField(max_length=5, choices=Split.choices, default=Split.TRAIN)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "external_id"], name="prompt_external_id_unique"),
        ]

    def __str__(self) -> str:
        return self.external_id


class CandidateSource(models.TextChoices):
    IMPORTED = "imported"
    GENERATED = "generated"


class Candidate(models.Model):
    """One output for a prompt: text, or a media file (image, video, audio)."""

    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="candidates", db_index=False, db_constraint=False
    )
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="candidates", db_constraint=False)
    external_id = models.CharField(max_length=255)
    text = models.TextField(blank=True)
    # Stored by annotation.media under a name made of the content's hash; the type is sniffed from the content.
    media = models.FileField(upload_to="candidates/%Y/%m/", blank=True)
    mime_type = models.CharField(max_length=100, default="text/plain")
    # An image's size in pixels (so a page can lay it out before it loads); null for text.
    media_width = models.PositiveIntegerField(null=True, blank=True)
    media_height = models.PositiveIntegerField(null=True, blank=True)
    source = models.CharField(max_length=10, choices=CandidateSource.choices, default=CandidateSource.IMPORTED)
    # Which round and model version produced it, written by training as plain
    # values: annotation never points into training's tables.
    origin = models.JSONField(default=dict, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "external_id"], name="candidate_external_id_unique"),
        ]

    def __str__(self) -> str:
        return self.external_id


class ComparisonStatus(models.TextChoices):
    OPEN = "open"  # still wants judgments
    DONE = "done"  # judged == wanted
    PAUSED = "paused"  # withheld from the queue by a researcher


class Comparison(models.Model):
    """A prompt and 2..K ordered candidates, served to ``wanted`` annotators.

    ``judged`` and ``leased`` live on this row so that claiming a task changes the
    row itself: a concurrent claimer re-reads the new row version and skips it
    (see annotation.queue). The check constraint keeps the queue from ever
    handing out more live leases than the judgments still wanted.
    """

    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="comparisons", db_index=False, db_constraint=False
    )
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="comparisons", db_constraint=False)
    external_id = models.CharField(max_length=255)
    # Candidate ids in their stored order (left to right before shuffling): the
    # only link between a comparison and its candidates (no through table: its
    # rows and foreign-key checks were a third of a bulk import's database work).
    # Every id is a candidate of this comparison's prompt; the code that writes
    # comparisons keeps that rule (docs/DECISIONS.md, "Comparisons").
    candidate_ids = models.JSONField()
    status = models.CharField(max_length=6, choices=ComparisonStatus.choices, default=ComparisonStatus.OPEN)
    priority = models.IntegerField(default=0, help_text="Higher is served first.")
    # Order within a priority, fixed when the comparison is written (annotation.queue.serve_order): for imported
    # and built comparisons a hash, so prompts (and the train and eval splits) are served interleaved, not in file
    # order; 0 for those training pushes, which come in the order to serve them (then id order applies).
    serve_order = models.PositiveIntegerField(default=0)
    wanted = models.PositiveIntegerField()
    judged = models.PositiveIntegerField(default=0)
    leased = models.PositiveIntegerField(default=0)
    is_gold = models.BooleanField(default=False)
    # The expected answer of a gold check: {"winner": id} | {"ranking": [ids]} | {"tie": true}.
    gold_answer = models.JSONField(null=True, blank=True)
    origin = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "external_id"], name="comparison_external_id_unique"),
            models.CheckConstraint(
                condition=Q(judged__lte=F("wanted") - F("leased")), name="comparison_not_overserved"
            ),
            models.CheckConstraint(
                condition=Q(is_gold=False) | Q(gold_answer__isnull=False), name="comparison_gold_has_answer"
            ),
        ]
        indexes = [
            # The claim walks this partial index in priority order (annotation.queue).
            models.Index(
                fields=["project", "is_gold", "-priority", "serve_order", "id"],
                condition=Q(status="open"),
                name="comparison_open_queue",
            ),
        ]

    def __str__(self) -> str:
        return self.external_id


class AssignmentState(models.TextChoices):
    LEASED = "leased"  # live lease (until expires_at)
    SUBMITTED = "submitted"
    SKIPPED = "skipped"
    EXPIRED = "expired"  # lease ran out; the comparison went back to the pool
    RELEASED = "released"  # the annotator gave it back without answering


class Assignment(models.Model):
    """One annotator's relation to one comparison: a lease, then its outcome.

    One row per (comparison, annotator): the queue's "not judged or skipped by me"
    test is a single probe of this table's unique index.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="assignments", db_constraint=False)
    comparison = models.ForeignKey(Comparison, on_delete=models.CASCADE, related_name="assignments", db_index=False)
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments")
    state = models.CharField(max_length=9, choices=AssignmentState.choices, default=AssignmentState.LEASED)
    leased_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)
    # Which of the annotator's two live-lease places in the project this lease
    # holds: the task on screen and one fetched ahead (annotation.queue).
    slot = models.PositiveSmallIntegerField(default=0, db_default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["comparison", "annotator"], name="assignment_one_per_annotator"),
            # At most two live leases per annotator and project (annotation.queue):
            # one per slot, and there are two slots, so concurrent claims can never
            # make a third. Also the claim's index for "the leases I hold".
            models.UniqueConstraint(
                fields=["annotator", "project", "slot"],
                condition=Q(state="leased"),
                name="assignment_live_slot_per_project",
            ),
            models.CheckConstraint(condition=Q(slot__in=(0, 1)), name="assignment_slot_current_or_ahead"),
        ]
        indexes = [
            models.Index(fields=["expires_at"], condition=Q(state="leased"), name="assignment_live_by_expiry"),
        ]

    def __str__(self) -> str:
        return f"comparison {self.comparison_id} → user {self.annotator_id}: {self.state}"


class Judgment(models.Model):
    """One annotator's answer to one comparison.

    Exactly one of: a ``winner``, a ``tie``, or a full ``ranking`` (best first).
    ``ratings`` maps candidate id → {criterion key → value}. ``shown_order`` is the
    candidate order the annotator saw, left to right (to measure position bias).
    """

    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="judgments", db_index=False, db_constraint=False
    )
    comparison = models.ForeignKey(Comparison, on_delete=models.CASCADE, related_name="judgments", db_index=False)
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="judgments")
    winner = models.ForeignKey(Candidate, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    tie = models.BooleanField(default=False)
    ranking = models.JSONField(null=True, blank=True)
    strength = models.SmallIntegerField(null=True, blank=True)
    ratings = models.JSONField(default=dict, blank=True)
    rationale = models.TextField(blank=True)
    shown_order = models.JSONField(default=list, blank=True)
    time_spent_ms = models.PositiveIntegerField(null=True, blank=True)
    idempotency_key = models.CharField(max_length=255)
    # True when the lease had run out before the submission arrived (kept, because
    # the comparison still needed it).
    lease_lost = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["comparison", "annotator"], name="judgment_one_per_annotator"),
            models.UniqueConstraint(fields=["annotator", "idempotency_key"], name="judgment_idempotency_key"),
            models.CheckConstraint(
                condition=(
                    Q(winner__isnull=False, tie=False, ranking__isnull=True)
                    | Q(winner__isnull=True, tie=True, ranking__isnull=True)
                    | Q(winner__isnull=True, tie=False, ranking__isnull=False)
                ),
                name="judgment_one_answer",
            ),
            # How much better the winner is (annotation.schema); the winner is the direction.
            models.CheckConstraint(
                condition=Q(strength__isnull=True) | Q(strength__gte=0), name="judgment_strength_is_a_magnitude"
            ),
        ]
        indexes = [models.Index(fields=["project", "created_at"], name="judgment_project_time")]

    def __str__(self) -> str:
        return f"judgment {self.pk} of comparison {self.comparison_id} by user {self.annotator_id}"


class SpanMark(models.Model):
    """A marked region of one candidate, with an error category.

    Text: ``start``/``end`` are Unicode code-point offsets, end exclusive (Python
    string indices). Audio/video: seconds. Images: ``box`` = [x, y, width, height]
    as fractions of the image size, and no start/end.
    """

    judgment = models.ForeignKey(Judgment, on_delete=models.CASCADE, related_name="spans")
    candidate = models.ForeignKey(Candidate, on_delete=models.CASCADE, related_name="+")
    start = models.FloatField(null=True, blank=True)
    end = models.FloatField(null=True, blank=True)
    box = models.JSONField(null=True, blank=True)
    category = models.CharField(max_length=64)
    note = models.TextField(blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(start__isnull=False, end__isnull=False, box__isnull=True, start__gte=0, start__lt=F("end"))
                    | Q(start__isnull=True, end__isnull=True, box__isnull=False)
                ),
                name="spanmark_start_before_end_or_box",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.category} on candidate {self.candidate_id}"


ImportStatus = JobStatus


class ImportJob(BackgroundJob):
    """One uploaded file being validated and imported, all or nothing (a background job: ``annotation/jobs.py``).
    Label imports (kinds ``pairs`` and ``judgments``) are import jobs too."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="imports")
    kind = models.CharField(max_length=20)  # see annotation.importers.IMPORT_KINDS
    file_format = models.CharField(max_length=10)  # jsonl | csv | parquet
    file = models.FileField(upload_to="imports/%Y/%m/")
    original_name = models.CharField(max_length=255, blank=True)
    options = models.JSONField(default=dict, blank=True)
    phase = models.CharField(max_length=20, blank=True)
    rows_total = models.PositiveIntegerField(null=True, blank=True)
    rows_done = models.PositiveIntegerField(default=0)
    # Row errors: [{"line": 3, "field": "text", "message": "..."}], capped in size.
    errors = models.JSONField(default=list, blank=True)
    result = models.JSONField(default=dict, blank=True)  # counts created / unchanged
    message = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        # The sweep's scan for running jobs whose worker went silent (annotation/jobs.py).
        indexes = [models.Index(fields=["status", "heartbeat_at"], name="importjob_status_heartbeat")]

    def __str__(self) -> str:
        return f"import {self.pk} ({self.kind}, {self.status})"


# The export's table lives in its own module; importing it here registers it with the app.
from .export_models import ExportJob, ExportStatus  # noqa: E402, F401
from .quality_models import (  # noqa: E402, F401
    AnnotatorExclusion,
    AnnotatorPause,
    AnnotatorQuality,
    ComparisonConsensus,
    PositionCheck,
    PositionCheckState,
    ProjectQuality,
)
