"""The model registry: versions per project and kind, and which one is active.

Artifacts live under ``settings.TRAINING_ARTIFACTS_DIR`` (default ``VAR_DIR/artifacts``) as
``<project>/<kind>/round-<round>-a<attempt>``; the row stores that path relative to the root, so the folder can be
mounted elsewhere on another machine. The ML core writes each artifact atomically, so a registered path always
names a complete checkpoint that loads with ``from_pretrained``.

Switching the active version locks the project row first: registering a round's result and an admin rolling
back at the same moment are serialised instead of one of them failing on the one-active index.
"""

from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from annotation.models import Project

from .models import ModelKind, ModelVersion, VersionStatus


class VersionNotActivatable(ValueError):
    """The version cannot become the active one (its status is not ready)."""


def artifacts_root() -> Path:
    return Path(getattr(settings, "TRAINING_ARTIFACTS_DIR", None) or Path(settings.VAR_DIR) / "artifacts")


def artifact_relpath(*, project_id: int, kind: str, round_id: int, attempt: int) -> str:
    """A fresh path per attempt: a retry never collides with what a killed attempt left behind."""
    return f"{project_id}/{kind}/round-{round_id}-a{attempt}"


def artifact_location(version_or_path: ModelVersion | str) -> Path:
    """The absolute folder of a version's artifact (what to pass to ``from_pretrained``)."""
    path = Path(version_or_path.artifact_path if isinstance(version_or_path, ModelVersion) else version_or_path)
    return path if path.is_absolute() else artifacts_root() / path


def active_version(*, project_id: int, kind: str = ModelKind.REWARD) -> ModelVersion | None:
    return ModelVersion.objects.filter(project_id=project_id, kind=kind, is_active=True).first()


def versions_of(*, project_id: int, kind: str | None = None):
    qs = ModelVersion.objects.filter(project_id=project_id)
    return qs.filter(kind=kind) if kind else qs


def version_register(
    *,
    project_id: int,
    kind: str,
    base_model: str,
    artifact_path: str,
    metrics: dict,
    config: dict,
    judgment_snapshot_id: str,
    judgment_count: int,
    judgment_max_id: int | None,
    activate: bool,
) -> ModelVersion:
    """Add the next version of (project, kind), optionally making it the active one. Call inside the
    transaction that also records the round's success, so both happen or neither."""
    with transaction.atomic():
        _lock_project(project_id)
        previous = active_version(project_id=project_id, kind=kind)
        number = (versions_of(project_id=project_id, kind=kind).aggregate(n=Max("version"))["n"] or 0) + 1
        now = timezone.now()
        if activate and previous is not None:
            ModelVersion.objects.filter(pk=previous.pk).update(is_active=False)
        return ModelVersion.objects.create(
            project_id=project_id,
            kind=kind,
            version=number,
            base_model=base_model,
            artifact_path=artifact_path,
            parent=previous,
            metrics=metrics,
            config=config,
            judgment_snapshot_id=judgment_snapshot_id,
            judgment_count=judgment_count,
            judgment_max_id=judgment_max_id,
            status=VersionStatus.READY,
            is_active=activate,
            activated_at=now if activate else None,
        )


def version_activate(*, version: ModelVersion) -> ModelVersion:
    """Make ``version`` the active one of its project and kind (a roll-back or roll-forward). Idempotent."""
    with transaction.atomic():
        _lock_project(version.project_id)
        version = ModelVersion.objects.get(pk=version.pk)
        if version.status != VersionStatus.READY:
            raise VersionNotActivatable(f"Version {version.version} is {version.status}; only ready versions.")
        if not artifact_location(version).is_dir():
            raise VersionNotActivatable(
                f"The artifact of version {version.version} is missing at {version.artifact_path}."
            )
        if version.is_active:
            return version
        # Deactivate first: the one-active index is checked per statement, not at commit.
        ModelVersion.objects.filter(project_id=version.project_id, kind=version.kind, is_active=True).update(
            is_active=False
        )
        version.is_active, version.activated_at = True, timezone.now()
        version.save(update_fields=["is_active", "activated_at"])
        return version


def _lock_project(project_id: int) -> None:
    # Postgres: a row lock that serialises activations of one project. SQLite ignores FOR UPDATE, but its
    # writers are already serialised (BEGIN IMMEDIATE, see config.settings).
    list(Project.objects.select_for_update().filter(pk=project_id).values_list("pk", flat=True))


def should_activate(config, eval_metrics: dict | None, previous_eval: dict | None, *, key: str) -> bool:
    """Whether a round's new version replaces the active one. ``key``: the held-out metric that must not drop
    under ``require_no_regression`` (accuracy; F1 for spans).

    A version with no held-out metrics never replaces one that was evaluated: nothing says it is not worse.
    """
    if not config.auto_activate:
        return False
    if previous_eval and not eval_metrics:
        return False
    if config.require_no_regression and eval_metrics and previous_eval:
        now, before = eval_metrics.get(key), previous_eval.get(key)
        if now is not None and before is not None and now < before:
            return False
    return True


def code_version() -> str:
    """The git commit of the running code, for the manifest beside the checkpoint (no subprocess)."""
    if os.environ.get("TANDEM_CODE_VERSION"):
        return os.environ["TANDEM_CODE_VERSION"]
    git = Path(settings.BASE_DIR) / ".git"
    try:
        head = (git / "HEAD").read_text().strip()
        if head.startswith("ref: "):
            ref = head[5:]
            ref_file = git / ref
            if ref_file.exists():
                return ref_file.read_text().strip()
            for line in (git / "packed-refs").read_text().splitlines():
                if line.endswith(" " + ref):
                    return line.split()[0]
            return "unknown"
        return head
    except OSError:
        return "unknown"
