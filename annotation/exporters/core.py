"""Run one export: judgments → rows of a shape → a file format, plus the dataset card and media.

:func:`export_request_parse` checks what was asked (HTTP 400 on a bad value); :class:`Export` does the work,
yielding after each batch so a streamed response can send what was written and a job can report progress.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import math
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.utils import timezone

from ..models import Project
from ..quality.selectors import annotator_quality_for_export, project_quality_summary
from .card import CardStats, _Bitmap, card_markdown
from .filters import ExportFilter, ExportInvalid
from .formats import FORMATS, WRITERS, Drain, FolderTarget, Piece, Target, Writer, ZipTarget, piece_dump, piece_load
from .parallel import Send, Workers
from .shapes import PAIR_FORMS, SHAPES, TIE_POLICIES, RowBuilder, ShapeOptions, schema_for
from .source import CHUNK_ROWS, EVERY_COMPARISON, CandidateRow, ComparisonRange, comparison_groups, comparison_ranges

logger = logging.getLogger(__name__)

BATCH_ROWS = 10_000
"""Rows per write: one Parquet row group, one Arrow record batch."""
STREAM_BATCH_ROWS = 1000
"""Rows per write of a streamed text download (JSON Lines, CSV): one chunk of the response. What a batch holds
(rows, their encoded parts, the zip entry's bytes, the chunk) is alive at once in a web worker, and a web worker
keeps the high-water mark of its heap: small chunks keep it flat."""
ENCODE_ROWS = 1000
"""Rows built and encoded at a time (a batch is joined from these parts; see :meth:`Export._range_pieces`)."""
PARALLEL_MIN_JUDGMENTS = 50_000
"""Exports of fewer judgments run in one process (see :class:`Export`)."""
RANGE_JUDGMENTS = 10_000
"""Judgments per range of a parallel export, at most: many small ranges, handed out in order, keep every worker
busy to the end and bound what the parent buffers (a few ranges' encoded rows, ~10 MB each at the widest
shape)."""
RANGES_PER_PROCESS = 8
"""A parallel export smaller than ``RANGE_JUDGMENTS`` × this × processes is cut into smaller ranges, this many
per process: with only a few ranges a process, the last one leaves the others idle (100,000 judgments as
Parquet or JSON Lines: 45–61k rows/s in 11 ranges over 2 processes, 53–71k in 17)."""
MEDIA_MODES = ("urls", "pack")


@dataclass(frozen=True)
class ExportRequest:
    shape: str
    file_format: str
    filters: ExportFilter = field(default_factory=ExportFilter)
    options: ShapeOptions = field(default_factory=ShapeOptions)
    media: str = "urls"

    def as_dict(self) -> dict:
        return {
            "shape": self.shape,
            "file_format": self.file_format,
            "filters": self.filters.as_dict(),
            "options": dict(self.options.__dict__),
            "media": self.media,
        }


OPTION_NAMES = ("form", "ties", "margin_scale", "spreadsheet_safe", "quality")


def export_request_parse(*, shape, file_format, filters=None, options=None, media=None) -> ExportRequest:
    """Check an export's arguments; raise :class:`ExportInvalid` naming each bad one."""
    errors: dict[str, list[str]] = {}
    if shape not in SHAPES:
        errors["shape"] = [f"Must be one of {', '.join(SHAPES)}."]
    if file_format not in FORMATS:
        errors["file_format"] = [f"Must be one of {', '.join(FORMATS)}."]
    media = media or "urls"
    if media not in MEDIA_MODES:
        errors["media"] = [f"Must be one of {', '.join(MEDIA_MODES)}."]
    if not isinstance(options or {}, dict):
        errors["options"] = ["Must be an object."]
        options = {}
    options = dict(options or {})
    unknown = sorted(set(options) - set(OPTION_NAMES))
    if unknown:
        errors["options"] = [f"Unknown option(s): {', '.join(unknown)}. Known: {', '.join(OPTION_NAMES)}."]
    if not isinstance(options.get("quality", False), bool):
        errors["options.quality"] = ["Must be true or false."]
    if options.get("form", "standard") not in PAIR_FORMS:
        errors["options.form"] = [f"Must be one of {', '.join(PAIR_FORMS)}."]
    if options.get("ties", "drop") not in TIE_POLICIES:
        errors["options.ties"] = [f"Must be one of {', '.join(TIE_POLICIES)}."]
    try:
        options["margin_scale"] = float(options.get("margin_scale", 1.0))
        if not math.isfinite(options["margin_scale"]) or options["margin_scale"] < 0:
            raise ValueError
    except (TypeError, ValueError):
        errors["options.margin_scale"] = ["Must be a finite number, 0 or more."]
    safe = options.get("spreadsheet_safe", False)
    safe = (
        {"true": True, "1": True, "false": False, "0": False}.get(safe.lower(), safe) if isinstance(safe, str) else safe
    )
    if not isinstance(safe, bool):
        errors["options.spreadsheet_safe"] = ["Must be true or false."]
    elif safe and file_format != "csv":
        errors["options.spreadsheet_safe"] = ["Only CSV files are opened as spreadsheets: use it with file_format csv."]
    options["spreadsheet_safe"] = safe is True
    try:
        parsed_filters = ExportFilter.parse(filters)
    except ExportInvalid as exc:
        errors.update(exc.errors)
    if errors:
        raise ExportInvalid(errors)
    return ExportRequest(
        shape=shape,
        file_format=file_format,
        filters=parsed_filters,
        options=ShapeOptions(**{k: options[k] for k in OPTION_NAMES if k in options}),
        media=media,
    )


@contextlib.contextmanager
def _collector_relaxed():
    """Run the export with Python's cyclic garbage collector triggered far less often.

    An export allocates millions of short-lived, acyclic objects (rows, dicts, lists) that reference counting
    frees at once; the cyclic collector, triggered every 700 allocations by default, only re-walks them and
    every long-lived object. Measured: 75 % of the time spent turning database rows into judgments went to it.
    Objects alive before the export are frozen out of its walks, and gen-0 collections happen every 100,000
    allocations instead (cycles, if any, are still collected).
    """
    threshold = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(100_000, threshold[1], threshold[2])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


class _MediaRefs:
    """How rows refer to a media candidate: by URL (the storage's, made absolute with ``base_url``) or, when
    packed, as ``media/<name>``; the packed ones are remembered (id → name, first seen first) until :meth:`take`."""

    def __init__(self, mode: str, base_url: str):
        self.mode, self.base_url = mode, base_url
        self.packed: dict[int, str] = {}

    def __call__(self, candidate: CandidateRow) -> str | None:
        if not candidate.media:
            return None
        if self.mode == "urls":
            return urljoin(self.base_url, default_storage.url(candidate.media))
        self.packed.setdefault(candidate.id, candidate.media)
        return f"media/{candidate.media}"

    def take(self) -> dict[int, str]:
        packed, self.packed = self.packed, {}
        return packed


class _MediaPack:
    """The media files copied beside the data once it is written: each once, in the order the rows first
    refer to them. Their names wait in a temporary file (an export may pack millions)."""

    def __init__(self):
        self.seen = _Bitmap()
        self.names = tempfile.TemporaryFile("w+", encoding="utf-8")

    def add(self, packed: dict[int, str]) -> None:
        for candidate_id, name in packed.items():
            if candidate_id not in self.seen:
                self.seen.add(candidate_id)
                self.names.write(name + "\n")

    def copy_into(self, target: Target) -> None:
        self.names.seek(0)
        for line in self.names:
            name = line.rstrip("\n")
            with default_storage.open(name, "rb") as src, target.open(f"media/{name}") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
        self.names.close()


class Export:
    """One export of ``project`` into ``target``; iterate :meth:`run` to do it (it yields judgments done).

    The work — judgments → rows → encoded batches, counted for the card — is :meth:`_range_pieces`, over a
    range of comparisons. A serial export runs it once, over all of them. A parallel one (``processes`` > 1,
    on Postgres, from ``PARALLEL_MIN_JUDGMENTS`` judgments) cuts the comparisons into ranges of about
    ``RANGE_JUDGMENTS`` judgments (fewer in a smaller export, see :meth:`_parallel_range`) and hands them to
    worker processes that all read one snapshot of the database; this process writes their batches and adds up
    their counts in range order, so the files and the card are the ones a serial export writes.
    """

    def __init__(
        self,
        project: Project,
        request: ExportRequest,
        target: Target,
        *,
        base_url: str = "",
        processes: int | None = None,
        batch_rows: int = BATCH_ROWS,
    ):
        self.project, self.request, self.target = project, request, target
        self.processes = settings.EXPORT_PROCESSES if processes is None else processes
        self.batch_rows = batch_rows
        self.schema = schema_for(request.shape, request.options)
        self.writer_class = WRITERS[request.file_format]
        self.stats = CardStats()
        self.base_url = base_url
        self.media_pack = _MediaPack() if request.media == "pack" else None
        self.card = ""
        # Read once here: forked workers inherit it, and every row of the export uses the same figures.
        self.annotator_quality = annotator_quality_for_export(project_id=project.pk) if request.options.quality else {}

    def _encoder(self):
        return self.writer_class.encoder(self.schema, spreadsheet_safe=self.request.options.spreadsheet_safe)

    def run(self) -> Iterator[int]:
        with _collector_relaxed():
            yield from self._run()

    def _run(self) -> Iterator[int]:
        request = self.request
        extra = {"description": f"Tandem export of {self.project.name} ({request.shape})"}
        writer = self.writer_class(self.target, self.schema, **(extra if request.file_format == "hf" else {}))
        try:
            range_judgments = self._parallel_range()
            yield from self._in_parallel(writer, range_judgments) if range_judgments else self._in_process(writer)
            if self.stats.rows == 0:
                writer.write(self._encoder()([]))  # an empty export still has its columns
        except BaseException:
            # Closed now, while the sink is open: else pyarrow and zipfile close them when they are collected,
            # writing into a file the caller has closed by then.
            with contextlib.suppress(Exception):
                writer.close()
                self.target.close()
            raise
        writer.close()
        if self.media_pack:
            self.media_pack.copy_into(self.target)
        self.card = card_markdown(
            project=self.project,
            shape=request.shape,
            file_format=request.file_format,
            filters=request.filters.as_dict(),
            options=request.options,
            media=request.media,
            schema=self.schema,
            stats=self.stats,
            created_at=timezone.now().isoformat(timespec="seconds"),
            label_quality=project_quality_summary(project_id=self.project.pk),
        )
        with self.target.open("README.md") as f:
            f.write(self.card.encode())
        self.target.close()
        yield self.stats.judgments

    def _range_pieces(self, comparisons: ComparisonRange, stats: CardStats, media: _MediaRefs) -> Iterator[Piece]:
        """The rows of a range of comparisons, a batch at a time, encoded for the file; counted into ``stats``.

        Rows are built, counted and encoded ``ENCODE_ROWS`` at a time, and a batch's encoded parts joined: a whole
        batch of rows held at once outgrows the CPU's caches, and that cost more than encoding them."""
        builder = RowBuilder(self.request.shape, self.request.options, media, self.annotator_quality)
        encode = self._encoder()
        combine = self.writer_class.combine
        rows: list[dict] = []
        parts: list[Piece] = []
        done = 0  # rows of this batch already encoded (in parts)
        # Never read more judgments at once than a batch writes (a streamed download's batches are small).
        chunk_rows = min(CHUNK_ROWS, self.batch_rows)
        for group in comparison_groups(self.project, self.request.filters, comparisons, chunk_rows=chunk_rows):
            stats.add_group(group)
            rows.extend(builder.rows(group))
            if len(rows) >= ENCODE_ROWS or done + len(rows) >= self.batch_rows:
                stats.add_rows(rows)
                parts.append(encode(rows))
                done += len(rows)
                rows = []
                if done >= self.batch_rows:
                    yield combine(parts)
                    parts, done = [], 0
        if rows:
            stats.add_rows(rows)
            parts.append(encode(rows))
        if parts:
            yield combine(parts)

    def _in_process(self, writer: Writer) -> Iterator[int]:
        media = _MediaRefs(self.request.media, self.base_url)
        for piece in self._range_pieces(EVERY_COMPARISON, self.stats, media):
            writer.write(piece)
            if self.media_pack:
                self.media_pack.add(media.take())
            yield self.stats.judgments

    def _parallel_range(self) -> int | None:
        """Judgments per range when this export runs in worker processes; None when it runs in this one."""
        # Inside a transaction the workers would not see its uncommitted rows; SQLite has one writer and no
        # exported snapshots; a small export is over before worker processes would have started.
        if self.processes < 2 or connection.vendor != "postgresql" or connection.in_atomic_block:
            return None
        ranges = RANGES_PER_PROCESS * self.processes
        judgments = self.request.filters.judgments(self.project)[: RANGE_JUDGMENTS * ranges].count()  # bounded
        if judgments < PARALLEL_MIN_JUDGMENTS:
            return None
        return min(RANGE_JUDGMENTS, -(-judgments // ranges))  # rounded up: at most `ranges` full ranges

    def _in_parallel(self, writer: Writer, range_judgments: int) -> Iterator[int]:
        connections.close_all()  # before forking: a worker opens its own connection, never shares this one
        workers = Workers(self.processes, session=_snapshot_imported, work=self._range_in_worker)
        with workers, _snapshot_exported() as (cursor, snapshot):
            ranges = comparison_ranges(cursor, self.project, self.request.filters, range_judgments)
            logger.info("export of project %s: %d ranges in %d processes", self.project.pk, len(ranges), len(workers))
            for kind, output in workers.results(snapshot, ranges):
                if kind == "piece":
                    writer.write(piece_load(output, writer))
                    continue
                stats, packed = output
                self.stats.merge(stats)
                if self.media_pack:
                    self.media_pack.add(packed)
                yield self.stats.judgments

    def _range_in_worker(self, comparisons: ComparisonRange, send: Send) -> tuple[CardStats, dict[int, str]]:
        # A range's own counts, every source included: the parent's merge applies the sources limit.
        stats, media = CardStats(all_sources=True), _MediaRefs(self.request.media, self.base_url)
        for piece in self._range_pieces(comparisons, stats, media):
            send(piece_dump(piece))
        return stats, media.take()


@contextlib.contextmanager
def _snapshot_exported():
    """A repeatable-read transaction on a connection of its own, and the id of its snapshot: the workers read
    that same snapshot (``SET TRANSACTION SNAPSHOT``), so the ranges cut here cover exactly what they read. It
    stays open until the export ends (a snapshot can be imported only while its transaction is open); the
    export's own connection stays free for progress reports."""
    db = connections.create_connection(DEFAULT_DB_ALIAS)
    try:
        db.set_autocommit(False)
        with db.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cursor.execute("SELECT pg_export_snapshot()")
            yield cursor, cursor.fetchone()[0]
    finally:
        db.close()


@contextlib.contextmanager
def _snapshot_imported(snapshot: str):
    """In a worker: one repeatable-read transaction in the parent's snapshot for all the ranges it exports."""
    if not _SNAPSHOT_ID.fullmatch(snapshot):
        raise ValueError(f"not a snapshot id: {snapshot!r}")
    try:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                cursor.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")  # a utility statement takes no parameters
            yield
    finally:
        connection.close()


_SNAPSHOT_ID = re.compile(r"[0-9A-F]+-[0-9A-F]+(-[0-9]+)?")


def export_to_folder(
    project: Project, request: ExportRequest, path: Path, *, progress: Callable[[int], None] | None = None
) -> Export:
    """Write an export's files into a folder (data file(s), ``README.md``, ``media/``)."""
    export = Export(project, request, FolderTarget(path))
    for done in export.run():
        if progress:
            progress(done)
    return export


def export_stream(project: Project, request: ExportRequest, *, base_url: str = "") -> Iterator[bytes]:
    """A zip archive of the export, produced as it is written (for a streamed HTTP response)."""
    drain = Drain()
    # Arrow formats keep their row groups (their buffers go back to Arrow's pool, not the worker's heap).
    batch_rows = BATCH_ROWS if WRITERS[request.file_format].arrow else STREAM_BATCH_ROWS
    # Serial: a web process serves other requests from its threads, and forking it is unsafe (a thread may hold
    # a lock the workers would need). Large exports are jobs.
    export = Export(project, request, ZipTarget(drain), base_url=base_url, processes=1, batch_rows=batch_rows)
    for _ in export.run():
        if data := drain.take():
            yield data
    if data := drain.take():
        yield data
