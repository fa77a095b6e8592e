"""Media imports: a zip holding one data file (the manifest: JSON Lines, CSV or Parquet, any import columns) at its
top level and the media files its candidates name (``"media": "img/cat-1.png"``, a path inside the zip).

The zip is checked as a whole before any row is read, and refused with every problem listed when an entry

- has an absolute path or a ``..`` part, or a NUL or backslash in its name (a name that could leave a folder),
- is a symbolic link or any other non-regular file, or is encrypted,
- appears twice;

or when it holds more than ``MEDIA_ZIP_MAX_FILES`` entries or more than ``MEDIA_ZIP_MAX_BYTES`` once unpacked (a zip
bomb). The sizes are the ones the zip declares: Python's zipfile never yields more bytes than an entry declares and
fails on a CRC mismatch, so a lying header cannot unpack more. Nothing is ever extracted under its own name: the
manifest is copied to a temporary file, media files are read into memory (each at most ``MEDIA_MAX_BYTES``).

A candidate's file is checked by annotation.media when its row is parsed (a missing file or a bad image is a row
error: line and name) and stored when its row is written. Files that no row names are ignored, and reported in the
import's result (``media.unused``, the first names in ``media.unused_files``): a zip made for several projects or
with a stray ``.DS_Store`` imports, and the report shows what was left out.

A multipart upload (the manifest as ``file`` plus ``media`` files) is packed into the same kind of zip by
:func:`media_zip_pack` and imported the same way.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath

from django.conf import settings

from ..media import MediaInfo, MediaInvalid, media_check, media_discard, media_store
from .rejection import ImportRejected

DATA_EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
UNUSED_NAMES_SHOWN = 20
_DRIVE = re.compile(r"^[A-Za-z]:")


class _ZipMedia:
    """The media files of an open zip: checked once each on request, stored on request, and what was stored
    discarded again if the import fails."""

    def __init__(self, archive: zipfile.ZipFile, names: set[str], modality: str):
        self.archive = archive
        self.names = names  # media entries (every regular file but the manifest)
        self.modality = modality
        self.checked: dict[str, MediaInfo] = {}
        self.referenced: set[str] = set()  # storage names of the files rows named
        self.created: list[str] = []  # storage names this import wrote

    def _read(self, name: str) -> bytes:
        with self.archive.open(name) as entry:
            # One byte past the limit is enough for media_check to refuse the file as too large.
            return entry.read(settings.MEDIA_MAX_BYTES + 1)

    def check(self, name: str) -> MediaInfo:
        info = self.checked.get(name)
        if info is None:
            if name not in self.names:
                raise MediaInvalid(f"No file {name!r} in the zip (names are paths inside it, such as img/cat-1.png).")
            try:
                info = media_check(self._read(name), modality=self.modality, name=name)
            except zipfile.BadZipFile as exc:
                raise MediaInvalid(f"{name}: the zip entry is damaged ({exc}).") from exc
            self.checked[name] = info
        self.referenced.add(info.storage_name)
        return info

    def store(self, name: str, info: MediaInfo) -> None:
        stored = media_store(self._read(name), modality=self.modality, name=name, checked=info)
        if stored.created:
            self.created.append(stored.name)

    def discard(self) -> None:
        """Delete what this import stored: called when it failed (its rows were rolled back)."""
        media_discard(self.created)
        self.created = []

    def counts(self) -> dict:
        used = {name for name, info in self.checked.items() if info.storage_name in self.referenced}
        unused = sorted(self.names - used)
        return {
            "created": len(self.created),
            "unchanged": len(self.referenced) - len(self.created),
            "unused": len(unused),
            "unused_files": unused[:UNUSED_NAMES_SHOWN],
        }


@contextlib.contextmanager
def zip_opened(path: Path, *, modality: str) -> Iterator[tuple[_ZipMedia, Path, str]]:
    """Open and check an import zip; yield ``(media, manifest path, manifest format)``. Raises
    :class:`ImportRejected` naming every bad entry."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ImportRejected(
            [{"line": None, "field": "file", "message": f"This is not a zip file, or it is damaged: {exc}."}]
        ) from exc
    with archive, tempfile.TemporaryDirectory(prefix="tandem-import-zip-") as folder:
        files = _entries_check(archive)
        manifests = [info for info in files if "/" not in info.filename and _data_format(info.filename)]
        if len(manifests) != 1:
            found = ", ".join(repr(info.filename) for info in manifests)
            raise _zip_rejected(
                [
                    "The zip must hold exactly one data file (.jsonl, .csv or .parquet) at its top level, the "
                    f"manifest whose rows name the media files; it holds {found or 'none'}."
                ]
            )
        manifest = manifests[0]
        # Our own name in our own folder: the entry's name never becomes a path.
        manifest_path = Path(folder) / f"manifest{Path(manifest.filename).suffix.lower()}"
        with archive.open(manifest) as source, open(manifest_path, "wb") as target:
            shutil.copyfileobj(source, target, length=1024 * 1024)
        names = {info.filename for info in files} - {manifest.filename}
        yield _ZipMedia(archive, names, modality), manifest_path, _data_format(manifest.filename)


def _data_format(name: str) -> str | None:
    return DATA_EXTENSIONS.get(PurePosixPath(name).suffix.lower())


def _entries_check(archive: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    """The zip's regular files; every problem with its entries raised at once."""
    infos = archive.infolist()
    if len(infos) > settings.MEDIA_ZIP_MAX_FILES:
        raise _zip_rejected(
            [
                f"The zip holds {len(infos):,} entries, more than the limit of {settings.MEDIA_ZIP_MAX_FILES:,} "
                "(MEDIA_ZIP_MAX_FILES)."
            ]
        )
    problems = []
    seen: set[str] = set()
    files = []
    total = 0
    for info in infos:
        name = info.filename
        problem = _entry_problem(info)
        if problem is None and name in seen:
            problem = "is in the zip twice"
        seen.add(name)
        if problem is not None:
            problems.append(f"{name!r} {problem}.")
            continue
        total += info.file_size
        if not info.is_dir():
            files.append(info)
    if total > settings.MEDIA_ZIP_MAX_BYTES:
        problems.append(
            f"The zip unpacks to {total:,} bytes, more than the limit of {settings.MEDIA_ZIP_MAX_BYTES:,} "
            "(MEDIA_ZIP_MAX_BYTES)."
        )
    if problems:
        raise _zip_rejected(problems)
    return files


def _entry_problem(info: zipfile.ZipInfo) -> str | None:
    name = info.filename
    if "\x00" in name or "\\" in name:
        return "has a NUL or backslash in its name"
    if name.startswith("/") or _DRIVE.match(name):
        return "has an absolute path"
    if ".." in name.split("/"):
        return "has a '..' in its path, which would leave the zip's folder"
    # Unix zips keep the file's mode in the high bits; other makers leave the type bits 0 (a plain file).
    file_type = stat.S_IFMT(info.external_attr >> 16)
    if file_type == stat.S_IFLNK:
        return "is a symbolic link"
    if file_type not in (0, stat.S_IFREG, stat.S_IFDIR):
        return "is not a regular file"
    if info.flag_bits & 0x1:
        return "is encrypted"
    return None


def _zip_rejected(messages: list[str]) -> ImportRejected:
    errors = [{"line": None, "field": "file", "message": m} for m in messages]
    return ImportRejected(errors, f"Nothing was imported: the zip was refused. {' '.join(messages)}")


def media_zip_pack(*, manifest, manifest_name: str, files: Sequence) -> tempfile.SpooledTemporaryFile:
    """A multipart upload (a manifest and its media files) as the zip :func:`zip_opened` reads: the manifest at the
    top level, each file under its upload name (which the manifest's ``media`` names). Stored, not compressed:
    images are compressed already. Raises :class:`ImportRejected` for a bad or repeated name."""
    problems = []
    if _data_format(manifest_name) is None:
        problems.append(f"The manifest {manifest_name!r} must be a .jsonl, .csv or .parquet file.")
    names = [Path(f.name).name for f in files]  # browsers send the base name; anything else is cut off
    repeated = sorted({n for n in names if names.count(n) > 1})
    problems += [f"Two files are named {n!r}; names must differ." for n in repeated]
    if "" in names:
        problems.append("A file has no name.")
    if problems:
        raise _zip_rejected(problems)
    packed = tempfile.SpooledTemporaryFile(max_size=16 * 1024 * 1024, prefix="tandem-media-upload-")
    with zipfile.ZipFile(packed, "w", compression=zipfile.ZIP_STORED) as archive:
        with archive.open("manifest" + Path(manifest_name).suffix.lower(), "w") as target:
            shutil.copyfileobj(manifest, target, length=1024 * 1024)
        for name, upload in zip(names, files, strict=True):
            with archive.open(name, "w") as target:
                shutil.copyfileobj(upload, target, length=1024 * 1024)
    packed.seek(0)
    return packed
