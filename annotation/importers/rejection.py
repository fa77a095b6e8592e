"""How an import fails: :class:`ImportRejected`, and the capped list of row errors
(:class:`_Errors`) that every check of one import adds to."""

from __future__ import annotations

MAX_ERRORS = 1000  # errors kept on a job; the rest are counted


class ImportRejected(ValueError):
    """The file cannot be imported; nothing was written.

    ``errors`` is a list of ``{"line": int | None, "field": str | None, "message": str}``
    (``line`` None: the whole file), capped at :data:`MAX_ERRORS` with a last entry
    saying how many more there were.
    """

    def __init__(self, errors: list[dict], message: str | None = None):
        self.errors = errors
        self.message = message or (errors[0]["message"] if len(errors) == 1 else f"{len(errors)} errors")
        super().__init__(self.message)


def _rejected(message: str, *, field: str | None = None) -> ImportRejected:
    return ImportRejected([{"line": None, "field": field, "message": message}])


class _Errors:
    def __init__(self):
        self.items: list[dict] = []
        self.count = 0

    @property
    def capped(self) -> bool:
        return self.count > len(self.items)

    def add(self, line: int | None, field: str | None, message: str) -> None:
        self.count += 1
        if len(self.items) < MAX_ERRORS:
            self.items.append({"line": line, "field": field, "message": message})

    def as_list(self) -> list[dict]:
        """The errors by line (file-level ones first); a batch's database checks come
        after its rows' own checks, so they are sorted here."""
        items = sorted(self.items, key=lambda e: -1 if e["line"] is None else e["line"])
        if self.capped:
            more = self.count - len(self.items)
            items.append({"line": None, "field": None, "message": f"... and {more} more error(s) not shown."})
        return items


UNSTORABLE = "Holds a NUL character or a lone surrogate (\\u0000, \\ud800…), which cannot be stored."


def unstorable_field(row: dict) -> str | None:
    """The first column of a row (with its path inside JSON: ``metadata.notes[2]``) whose text, or a key inside
    it, a database cannot store: NUL (Postgres refuses it in text and JSON alike) or an unpaired surrogate.
    Checked whatever the backend, so SQLite refuses what Postgres would."""
    for key, value in row.items():
        path = _unstorable_path(value, str(key)) if _storable_text(str(key)) else str(key)
        if path is not None:
            return path
    return None


def _unstorable_path(value, path: str) -> str | None:
    if isinstance(value, str):
        return None if _storable_text(value) else path
    if isinstance(value, dict):
        for key, item in value.items():
            inner = f"{path}.{key}" if _storable_text(str(key)) else None
            if inner is None:
                return path
            found = _unstorable_path(item, inner)
            if found is not None:
                return found
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            found = _unstorable_path(item, f"{path}[{i}]")
            if found is not None:
                return found
    return None


def _storable_text(text: str) -> bool:
    if "\x00" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True
