"""Storing media candidates (images today): checked by their content, limited in size, stored by content hash.

Every way media enters Tandem goes through here: an import's zip or multipart upload (annotation.importers) and a
training round's generated images (annotation.candidates). Two steps, so a caller can check everything before it
stores anything:

- :func:`media_check` reads the bytes: the type is **sniffed from the content** (the name is only used in messages),
  and only PNG, JPEG, WebP and GIF are taken; the image is decoded in full with Pillow (every frame of an
  animation), so a truncated or corrupt file, an SVG or HTML page renamed ``.png``, an executable, or a small file
  that decodes to a huge image (a decompression bomb) is refused with a message that names the file.
- :func:`media_store` writes the checked bytes into the candidates' storage (the ``Candidate.media`` field's: the
  local folder or S3) under a name made of their SHA-256: storing the same bytes twice is one file, and no part of
  a stored name comes from the uploader (DESIGN §9: served from storage, never from user-chosen paths). The
  extension comes from the sniffed type, so the server and S3 serve the file as that image type, never as HTML.

Limits (``config/settings.py``): ``MEDIA_MAX_BYTES`` a file, ``MEDIA_MAX_PIXELS`` an image (width x height summed
over its frames), checked from the header before any pixel is decoded.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.core.files.base import ContentFile
from PIL import Image, ImageSequence, UnidentifiedImageError

from .models import Candidate, Modality


class MediaInvalid(ValueError):
    """The bytes cannot be a candidate's media; the message names the file and says why, for a person."""


# Pillow format name → (MIME type, stored extension).
_IMAGE_TYPES = {
    "PNG": ("image/png", "png"),
    "JPEG": ("image/jpeg", "jpg"),
    "WEBP": ("image/webp", "webp"),
    "GIF": ("image/gif", "gif"),
}
IMAGE_MIME_TYPES = tuple(mime for mime, _ in _IMAGE_TYPES.values())


@dataclass(frozen=True)
class MediaInfo:
    """What :func:`media_check` found: the sniffed type, the image's size, and the bytes' hash."""

    mime_type: str
    width: int
    height: int
    size: int  # bytes
    sha256: str

    @property
    def storage_name(self) -> str:
        """Where these bytes are stored: derived from the content alone."""
        extension = next(ext for mime, ext in _IMAGE_TYPES.values() if mime == self.mime_type)
        return f"candidates/sha256/{self.sha256[:2]}/{self.sha256}.{extension}"


@dataclass(frozen=True)
class StoredMedia:
    """What a :class:`~annotation.models.Candidate` needs: ``media`` (the storage name), its type and size."""

    name: str
    mime_type: str
    width: int
    height: int
    created: bool  # False: the same bytes were stored already


def media_check(data: bytes, *, modality: str, name: str) -> MediaInfo:
    """Check ``data`` as a candidate's media in a project of ``modality``; raise :class:`MediaInvalid` (whose
    message starts with ``name``) if it is not a whole PNG, JPEG, WebP or GIF image within the limits."""
    if modality == Modality.TEXT:
        raise MediaInvalid(f"{name}: this is a text project; its candidates are texts, not media files.")
    if modality != Modality.IMAGE:
        raise MediaInvalid(f"{name}: {modality} media cannot be stored yet; only images (PNG, JPEG, WebP, GIF).")
    if len(data) > settings.MEDIA_MAX_BYTES:
        raise MediaInvalid(
            f"{name}: the file has {len(data):,} bytes, more than the limit of {settings.MEDIA_MAX_BYTES:,} "
            "(MEDIA_MAX_BYTES)."
        )
    image_format = _image_format_sniff(data)
    if image_format is None:
        raise MediaInvalid(f"{name}: {_looks_like(data)}, not a PNG, JPEG, WebP or GIF image (read from its content).")
    width, height = _image_decode_check(data, image_format, name)
    return MediaInfo(
        mime_type=_IMAGE_TYPES[image_format][0],
        width=width,
        height=height,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )


def media_store(data: bytes, *, modality: str, name: str, checked: MediaInfo | None = None) -> StoredMedia:
    """Store ``data`` (checked here, unless ``checked`` is :func:`media_check`'s answer for these very bytes) in the
    candidates' storage under its content hash; storing the same bytes again writes nothing."""
    if checked is None or checked.size != len(data) or checked.sha256 != hashlib.sha256(data).hexdigest():
        checked = media_check(data, modality=modality, name=name)
    storage = _storage()
    path = checked.storage_name
    created = False
    if storage.exists(path) and storage.size(path) != checked.size:
        # Only a write cut short (a crash mid-upload) leaves a file of another size under a hash name.
        storage.delete(path)
    if not storage.exists(path):
        saved = storage.save(path, ContentFile(data))
        if saved != path:
            # Another writer stored the same bytes between our check and our save, so the local storage picked a
            # new name for ours: theirs holds the same content, keep it.
            storage.delete(saved)
        else:
            created = True
    return StoredMedia(
        name=path, mime_type=checked.mime_type, width=checked.width, height=checked.height, created=created
    )


def media_discard(names: Iterable[str]) -> None:
    """Delete stored files that no candidate refers to: those a write that was rolled back had stored.

    A file is content-addressed and may be shared, so one that any candidate names is kept. (A concurrent import
    of the same bytes that has not committed yet cannot be seen here; its candidate would then lack its file.
    Both imports would have to store the same new bytes at the same moment and one of them fail.)
    """
    names = set(names)
    if not names:
        return
    used = set(Candidate.objects.filter(media__in=names).values_list("media", flat=True))
    storage = _storage()
    for path in names - used:
        storage.delete(path)


def _storage():
    # The field's storage follows settings.STORAGES["default"]: the local folder or S3.
    return Candidate._meta.get_field("media").storage


def _image_format_sniff(data: bytes) -> str | None:
    """The image format that the first bytes announce (magic numbers), or None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def _looks_like(data: bytes) -> str:
    """What refused content seems to be, for the message."""
    head = data[:1024].lstrip().lower()
    if not data:
        return "the file is empty"
    if data.startswith(b"\x7fELF"):
        return "it is an executable (ELF)"
    if data.startswith(b"MZ"):
        return "it is an executable (Windows PE)"
    if b"<svg" in head:
        return "it is an SVG document (which may carry script)"
    if head.startswith((b"<!doctype html", b"<html", b"<script", b"<head", b"<body")) or b"<html" in head:
        return "it is an HTML page"
    if head.startswith(b"<"):
        return "it is XML or HTML markup"
    if data.startswith(b"%PDF"):
        return "it is a PDF document"
    return "its content is of an unknown type"


def _image_decode_check(data: bytes, image_format: str, name: str) -> tuple[int, int]:
    """Decode the whole image (every frame), after checking its pixel count from the header; ``(width, height)``."""
    limit = settings.MEDIA_MAX_PIXELS
    too_large = f"{name}: the image has more than {limit:,} pixels (MEDIA_MAX_PIXELS), counting every frame."
    # Pillow's own bomb guard warns, then refuses, from about 89 M pixels: a warning here is a refusal too.
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data), formats=[image_format]) as image:
                width, height = image.size
                frames = getattr(image, "n_frames", 1)
                if width * height * frames > limit:
                    raise MediaInvalid(too_large)
                image.verify()  # structure and checksums (PNG chunks' CRCs)
            # verify() leaves the image unusable: open it again to decode every pixel of every frame, which finds
            # a truncated or corrupt file that the structure check let pass.
            with Image.open(io.BytesIO(data), formats=[image_format]) as image:
                for frame in ImageSequence.Iterator(image):
                    frame.load()
        except MediaInvalid:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise MediaInvalid(too_large) from exc
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, IndexError) as exc:
            kind = image_format.replace("WEBP", "WebP")
            raise MediaInvalid(f"{name}: a truncated or corrupt {kind} image ({exc}).") from exc
    if width < 1 or height < 1:
        raise MediaInvalid(f"{name}: the image has no pixels.")
    return width, height
