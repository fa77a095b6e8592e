"""Export judgments as datasets: four shapes (TRL pairs, rankings, raw judgments, consensus) in four formats
(JSON Lines, CSV, Parquet, Hugging Face ``datasets`` on disk), each with a dataset card, at flat memory.

- ``filters``: which judgments (:class:`ExportFilter`).
- ``source``: reading them a chunk at a time, grouped by comparison.
- ``shapes``: the rows of each shape and their column types.
- ``formats``: the file writers, and where they write (a folder, a zip streamed out).
- ``card``: the dataset card and the counts behind it.
- ``core``: one export, start to end; ``jobs``: the background job with progress and a download.
"""

from .card import card_numbers
from .core import (
    BATCH_ROWS,
    MEDIA_MODES,
    OPTION_NAMES,
    Export,
    ExportRequest,
    export_request_parse,
    export_stream,
    export_to_folder,
)
from .filters import ExportFilter, ExportInvalid
from .formats import DATA_FILE, FORMATS
from .jobs import export_download_name, export_job_create, export_job_run
from .shapes import PAIR_FORMS, SHAPES, TIE_POLICIES, ShapeOptions

__all__ = [
    "BATCH_ROWS",
    "DATA_FILE",
    "FORMATS",
    "MEDIA_MODES",
    "OPTION_NAMES",
    "PAIR_FORMS",
    "SHAPES",
    "TIE_POLICIES",
    "Export",
    "ExportFilter",
    "ExportInvalid",
    "ExportRequest",
    "ShapeOptions",
    "card_numbers",
    "export_download_name",
    "export_job_create",
    "export_job_run",
    "export_request_parse",
    "export_stream",
    "export_to_folder",
]
