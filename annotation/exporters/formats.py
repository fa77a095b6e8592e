"""Writers for the four file formats, and where they write (a folder, or a zip archive streamed out).

Every writer takes rows a batch at a time, encoded (:class:`Writer`), and keeps none of them: JSON Lines and
CSV write each batch out; Parquet writes each batch as one row group (``pyarrow.parquet.ParquetWriter``); the
Hugging Face format is what ``datasets.Dataset.save_to_disk`` writes — an Arrow stream file,
``dataset_info.json`` and ``state.json`` — written with pyarrow a record batch at a time, so
``datasets.load_from_disk`` opens it (memory-mapped) and the web image needs no ``datasets`` package.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

FORMATS = ("jsonl", "csv", "parquet", "hf")
DATA_FILE = {"jsonl": "data.jsonl", "csv": "data.csv", "parquet": "data.parquet", "hf": "data-00000-of-00001.arrow"}


class Target:
    """Where an export's files go: ``open(name)`` gives a binary file to write, one at a time."""

    def open(self, name: str) -> BinaryIO:
        raise NotImplementedError

    def close(self) -> None:
        pass


class FolderTarget(Target):
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)

    def open(self, name: str) -> BinaryIO:
        path = self.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return open(path, "wb")


class ZipTarget(Target):
    """A zip archive written front to back into ``sink`` (which need not be seekable: an HTTP response).

    Entries are stored, not deflated: Parquet and Arrow are compressed already, and deflating text costs
    more CPU than the rest of the export."""

    def __init__(self, sink: BinaryIO, *, prefix: str = ""):
        self.zip = zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True)
        self.prefix = prefix

    def open(self, name: str) -> BinaryIO:
        return _Positioned(self.zip.open(self.prefix + name, "w", force_zip64=True))

    def close(self) -> None:
        self.zip.close()


class _Positioned(io.RawIOBase):
    """A write-only file that knows its position (pyarrow asks; a zip entry being written cannot say)."""

    def __init__(self, raw):
        self.raw, self.position = raw, 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        n = self.raw.write(data)
        self.position += n
        return n

    def tell(self) -> int:
        return self.position

    def close(self) -> None:
        if not self.closed:
            self.raw.close()
        super().close()


class Drain(io.RawIOBase):
    """An in-memory sink emptied by the streaming response after every batch (never holds more than one).

    It keeps the bytes it is given rather than copying them into a buffer: a batch is joined once, when taken
    (not at all when it came in one write), so the worker holds one copy of it fewer."""

    def __init__(self):
        self.parts: list[bytes] = []
        self.position = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        # Only bytes are immutable: a writer may reuse any other buffer once this returns.
        data = data if type(data) is bytes else bytes(data)
        self.parts.append(data)
        self.position += len(data)
        return len(data)

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        parts, self.parts = self.parts, []
        return parts[0] if len(parts) == 1 else b"".join(parts)


Piece = bytes | pa.RecordBatch


class Writer:
    """A data file written a piece at a time. A piece is one batch of rows already encoded by the format's
    :meth:`encoder` — bytes, or an Arrow record batch — so the encoding can happen in another process (a
    parallel export's workers encode, the parent only writes; :func:`piece_dump` / :func:`piece_load` carry a
    piece between them)."""

    arrow = False  # pieces are Arrow record batches (else bytes)

    def __init__(self, target: Target, schema: pa.Schema):
        self.target, self.schema = target, schema

    @staticmethod
    def encoder(schema: pa.Schema, *, spreadsheet_safe: bool = False) -> Callable[[list[dict]], Piece]:
        """``spreadsheet_safe``: CSV only (see :func:`spreadsheet_safe_cell`); other formats hold no formulas."""
        raise NotImplementedError

    @staticmethod
    def combine(parts: list[Piece]) -> Piece:
        """One piece of several encoded one after the other."""
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def write(self, piece: Piece) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


def piece_dump(piece: Piece):
    """A piece as bytes for a pipe (a record batch as one Arrow IPC message, without its schema)."""
    return piece.serialize() if isinstance(piece, pa.RecordBatch) else piece


def piece_load(data: bytes, writer: Writer) -> Piece:
    return pa.ipc.read_record_batch(pa.py_buffer(data), writer.schema) if writer.arrow else data


def _jsonl(rows: list[dict]) -> bytes:
    # Each line is copied out and dropped at once: orjson gives every result a fresh large buffer, and keeping
    # a batch of them alive to join (the obvious way) cost 3.5x as much as the encoding itself.
    dumps, newline = orjson.dumps, orjson.OPT_APPEND_NEWLINE
    out = io.BytesIO()
    write = out.write
    for row in rows:
        write(dumps(row, option=newline))
    return out.getvalue()


class JsonlWriter(Writer):
    def __init__(self, target, schema):
        super().__init__(target, schema)
        self.file = target.open(DATA_FILE["jsonl"])

    @staticmethod
    def encoder(schema, *, spreadsheet_safe=False):
        return _jsonl

    def write(self, piece):
        self.file.write(piece)

    def close(self):
        self.file.close()


def _csv_cell(value) -> str:
    """One value as a CSV cell, exactly as ``csv.writer`` (the excel dialect, minimal quoting) writes it: a
    missing value as an empty cell, anything else as its ``str``, quoted when it holds a comma, a quote or a
    line break (quotes doubled)."""
    if value is None:
        return ""
    text = value if type(value) is str else str(value)
    if '"' in text:
        return '"' + text.replace('"', '""') + '"'
    if "," in text or "\n" in text or "\r" in text:
        return '"' + text + '"'
    return text


def _csv_texts(values: list) -> list[str]:
    """Text cells (``str`` or None), a column at a time: a column of short plain values (ids, names, times)
    is checked once, joined; otherwise cell by cell, with the checks inline (no call per cell)."""
    try:
        joined = "".join(values)
    except TypeError:  # a missing value (or not text): cell by cell
        pass
    else:
        if '"' not in joined and "," not in joined and "\n" not in joined and "\r" not in joined:
            return values
    return [
        (
            ('"' + s.replace('"', '""') + '"' if '"' in s else '"' + s + '"')
            if ('"' in s or "," in s or "\n" in s or "\r" in s)
            else s
        )
        if type(s) is str
        else _csv_cell(s)
        for s in values
    ]


# A cell a spreadsheet runs as a formula starts with one of these (OWASP, "CSV injection"); with quotes before it,
# it is one this exporter neutralised (or a text that began so): one more quote keeps the mapping reversible.
_FORMULA_START = re.compile("'*[=+\\-@\t\r]")


def spreadsheet_safe_cell(text: str) -> str:
    """``text`` with a leading ``'`` when it starts like a formula (``=``, ``+``, ``-``, ``@``, TAB, CR), or like
    a cell this function changed (quotes, then one of those): spreadsheets show the text instead of running
    it. :func:`spreadsheet_safe_undo` (the label importer's) gives the text back."""
    return "'" + text if _FORMULA_START.match(text) else text


def spreadsheet_safe_undo(text: str) -> str:
    return text[1:] if text[:1] == "'" and _FORMULA_START.match(text) else text


def _csv_texts_safe(values: list) -> list[str]:
    return _csv_texts([spreadsheet_safe_cell(v) if type(v) is str and v else v for v in values])


def _csv_numbers(values: list) -> list[str]:
    # An int's or float's str never needs quoting; anything else goes the general way.
    return [str(v) if type(v) is int or type(v) is float else _csv_cell(v) for v in values]


def _csv_flags(values: list) -> list[str]:
    return ["" if v is None else "true" if v else "false" for v in values]


def _csv_nested(values: list) -> list[str]:
    # JSON text. Rows of one comparison share their candidates' list (see shapes): encoded once for them.
    out, last, last_cell, dumps = [], None, "", orjson.dumps
    for v in values:
        if v is None:
            out.append("")
        elif v == [] and type(v) is list:  # spans, context, ...: mostly empty
            out.append("[]")
        elif v is last:
            out.append(last_cell)
        else:
            last, last_cell = v, _csv_cell(dumps(v).decode())
            out.append(last_cell)
    return out


class _CsvRows:
    """Rows as CSV lines: lists and objects as JSON text, a missing value as an empty cell, booleans as
    ``true``/``false`` — the lines ``csv.writer`` writes for those cells (``_csv_cell``), built a column at a
    time: the csv module looks at every character in turn, which made it the slowest part of a CSV export."""

    def __init__(self, schema: pa.Schema, *, spreadsheet_safe: bool = False):
        self.names = schema.names
        self.columns = []
        for f in schema:
            if pa.types.is_list(f.type) or pa.types.is_struct(f.type):
                kind = _csv_nested  # JSON text: starts with [ or {, never a formula
            elif pa.types.is_boolean(f.type):
                kind = _csv_flags
            elif pa.types.is_integer(f.type) or pa.types.is_floating(f.type):
                kind = _csv_numbers  # a negative number is a number to a spreadsheet too
            else:
                kind = _csv_texts_safe if spreadsheet_safe else _csv_texts
            self.columns.append((f.name, kind))

    def __call__(self, rows: list[dict]) -> bytes:
        if not rows:
            return b""
        columns = [kind([row[name] for row in rows]) for name, kind in self.columns]
        if len(columns) == 1:  # csv.writer quotes a row's only cell when it is empty
            columns[0] = [cell or '""' for cell in columns[0]]
        return ("\r\n".join(map(",".join, zip(*columns, strict=True))) + "\r\n").encode()

    @staticmethod
    def lines(cells: list[list]) -> bytes:
        text = io.StringIO(newline="")
        csv.writer(text).writerows(cells)
        return text.getvalue().encode()


class CsvWriter(Writer):
    def __init__(self, target, schema):
        super().__init__(target, schema)
        self.file = target.open(DATA_FILE["csv"])
        self.file.write(_CsvRows.lines([schema.names]))

    @staticmethod
    def encoder(schema, *, spreadsheet_safe=False):
        return _CsvRows(schema, spreadsheet_safe=spreadsheet_safe)

    def write(self, piece):
        self.file.write(piece)

    def close(self):
        self.file.close()


def _record_batch_encoder(
    schema: pa.Schema, *, spreadsheet_safe: bool = False
) -> Callable[[list[dict]], pa.RecordBatch]:
    # A column at a time (what ``RecordBatch.from_pylist`` does inside, at a quarter more CPU per row).
    columns = list(zip(schema.names, schema.types, strict=True))

    def encode(rows: list[dict]) -> pa.RecordBatch:
        arrays = [pa.array([row[name] for row in rows], type=kind) for name, kind in columns]
        return pa.RecordBatch.from_arrays(arrays, schema=schema)

    return encode


def _record_batch_combine(parts: list[pa.RecordBatch]) -> pa.RecordBatch:
    return parts[0] if len(parts) == 1 else pa.concat_batches(parts)


class ParquetWriter(Writer):
    arrow = True

    def __init__(self, target, schema):
        super().__init__(target, schema)
        self.file = target.open(DATA_FILE["parquet"])
        self.writer = pq.ParquetWriter(self.file, schema, compression="zstd")

    encoder = staticmethod(_record_batch_encoder)
    combine = staticmethod(_record_batch_combine)

    def write(self, piece):
        self.writer.write_batch(piece)  # one row group per piece

    def close(self):
        self.writer.close()
        self.file.close()


class HuggingFaceWriter(Writer):
    """The layout of ``Dataset.save_to_disk``: one Arrow stream shard plus two JSON files."""

    arrow = True

    def __init__(self, target, schema, *, description: str = "", license: str = ""):
        super().__init__(target, schema)
        self.file = target.open(DATA_FILE["hf"])
        self.stream = pa.ipc.new_stream(self.file, schema)
        self.description, self.license = description, license
        self.rows = 0

    encoder = staticmethod(_record_batch_encoder)
    combine = staticmethod(_record_batch_combine)

    def write(self, piece):
        self.stream.write_batch(piece)
        self.rows += piece.num_rows

    def close(self):
        self.stream.close()
        self.file.close()
        # Features are left to datasets: it reads them from the Arrow schema. The fingerprint (a cache key for
        # datasets' transforms) depends on the data, not on how the rows were cut into record batches.
        fingerprint = hashlib.sha256(f"{self.schema}\n{self.rows}".encode()).hexdigest()[:16]
        info = {"description": self.description, "citation": "", "homepage": "", "license": self.license}
        state = {
            "_data_files": [{"filename": DATA_FILE["hf"]}],
            "_fingerprint": fingerprint,
            "_format_columns": None,
            "_format_kwargs": {},
            "_format_type": None,
            "_output_all_columns": False,
            "_split": None,
        }
        for name, content in (("dataset_info.json", info), ("state.json", state)):
            with self.target.open(name) as f:
                f.write(json.dumps(content, indent=2).encode())


WRITERS = {"jsonl": JsonlWriter, "csv": CsvWriter, "parquet": ParquetWriter, "hf": HuggingFaceWriter}
