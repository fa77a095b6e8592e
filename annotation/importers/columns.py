"""Parsing a batch of bundle rows a column at a time: the common case, fast.

A bundle file is usually plain: every row a prompt with an id and a text, a list
of candidates with ids and texts, and a comparisons mode. For such a batch the
checks of ``rows`` are run over each column of the whole batch at once (the types
of all the ids in one set, the texts joined and encoded once) instead of through
a few function calls per value, which took most of a row's parsing time. The
result is the same :class:`~.rows._Rows` that ``rows._batch_parse`` makes of the
batch, row by row.

Anything else in a batch (a column this path leaves to ``rows``, a value of
another type, a blank text, an id met before) makes :func:`_bundle_batch_plain`
decline the whole batch, so that ``rows`` parses it row by row and names each
error exactly as it always has: this path never reports an error itself.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from ..comparisons import BuildModeInvalid, candidate_groups, comparison_external_id
from ..models import Split
from .rows import (
    _BUNDLE_ONLY,
    MAX_EXTERNAL_ID,
    _CandidateRow,
    _ComparisonRow,
    _Context,
    _PromptRow,
    _Rows,
    _Seen,
    _storable,
)

# The columns a plain row may have; any other (context, priority, a candidate's
# mime_type...) sends the batch row by row. "id" and "text" are required here.
_PLAIN_ROW_KEYS = frozenset(("id", "text", "split", "metadata", "candidates", "comparisons"))
_PLAIN_CANDIDATE_KEYS = frozenset(("id", "text", "metadata", "origin"))
_SPLITS = frozenset(Split.values)
_NO_PRIORITY: frozenset = frozenset()  # the `given` of built comparisons: their priority is not the row's


class _Absent:
    """A column a row leaves out, told apart from an explicit null (which ``rows`` handles)."""


_ABSENT = _Absent()


def _bundle_batch_plain(ctx: _Context, batch: list[tuple[int, dict]], seen: _Seen) -> _Rows | None:
    """The batch's rows, as ``rows._batch_parse`` would parse them, when every row
    is plain; else None, and nothing recorded in ``seen``."""
    lines = [line for line, _ in batch]
    raws = [raw for _, raw in batch]
    # A _BadRow (a line that could not be decoded) is a dict subclass: not plain.
    if set(map(type, raws)) != {dict} or not all(map(_PLAIN_ROW_KEYS.issuperset, raws)):
        return None
    prompt_ids = _column(raws, "id")
    texts = _column(raws, "text")
    splits = [raw.get("split", "train") for raw in raws]
    metadatas = _column(raws, "metadata")
    candidate_lists = _column(raws, "candidates")
    modes = [raw.get("comparisons", ctx.default_comparisons) for raw in raws]
    if not (
        _strings_plain(prompt_ids, MAX_EXTERNAL_ID)
        and _strings_plain(texts)
        and set(map(type, splits)) == {str}
        and _SPLITS.issuperset(splits)
        and _types_within(metadatas, dict)
        and _types_within(candidate_lists, list)
        and _types_within(modes, str, type(None))
    ):
        return None

    candidates_all = list(itertools.chain.from_iterable(c for c in candidate_lists if c is not _ABSENT))
    if candidates_all:
        # The candidates' own checks in rows._candidate_row, here for all of them at once.
        if set(map(type, candidates_all)) != {dict}:
            return None
        if not (
            all(map(_PLAIN_CANDIDATE_KEYS.issuperset, candidates_all))
            and _strings_plain(_column(candidates_all, "id"), MAX_EXTERNAL_ID)
            and _strings_plain(_column(candidates_all, "text"))
            and _types_within(_column(candidates_all, "metadata"), dict)
            and _types_within(_column(candidates_all, "origin"), dict)
        ):
            return None

    rows = _Rows()
    for line, raw, prompt_id, text, split, metadata, candidate_list, mode in zip(
        lines, raws, prompt_ids, texts, splits, metadatas, candidate_lists, modes, strict=True
    ):
        rows.prompts.append(
            _PromptRow(
                line, prompt_id, text, [], split, {} if metadata is _ABSENT else metadata, raw.keys() - _BUNDLE_ONLY
            )
        )
        if candidate_list is _ABSENT:
            candidate_list = []
        rows.candidates.extend(
            _CandidateRow(
                line,
                _path("candidates", i),
                c["id"],
                prompt_id,
                c["text"],
                "text/plain",
                c.get("metadata", {}),
                c.get("origin", {}),
                c.keys(),
            )
            for i, c in enumerate(candidate_list)
        )
        if mode is None:
            continue
        try:
            groups = candidate_groups([c["id"] for c in candidate_list], mode=mode, arity=ctx.arity)
        except BuildModeInvalid:
            return None
        rows.comparisons.extend(
            _ComparisonRow(
                line,
                _path("comparisons", i),
                comparison_external_id(prompt_id, group),
                prompt_id,
                group,
                0,
                None,
                None,
                _NO_PRIORITY,
            )
            for i, group in enumerate(groups)
        )

    # Ids must not repeat in the file; one that does goes row by row, for its message.
    recorded = (
        ("prompt", lines, prompt_ids),
        ("candidate", [c.line for c in rows.candidates], [c.external_id for c in rows.candidates]),
        ("comparison", [m.line for m in rows.comparisons], [m.external_id for m in rows.comparisons]),
    )
    for what, _, ids in recorded:
        if len(set(ids)) != len(ids) or not seen.ids[what].keys().isdisjoint(ids):
            return None
    for what, id_lines, ids in recorded:
        seen.ids[what].update(zip(ids, id_lines, strict=True))
    return rows


def _column(dicts: list[dict], key: str) -> list:
    return [d.get(key, _ABSENT) for d in dicts]


def _types_within(values: Sequence, *types: type) -> bool:
    """Every value present is of one of ``types`` (a column left out passes)."""
    return set(map(type, values)) <= {*types, _Absent}


def _strings_plain(values: Sequence, max_length: int | None = None) -> bool:
    """Every value a string that rows._external_id and rows._text take as it is:
    not empty, not blank, no NUL or lone surrogate, and at most ``max_length``
    characters."""
    if set(map(type, values)) != {str}:
        return False
    if not all(values) or any(map(str.isspace, values)):
        return False
    if max_length is not None and max(map(len, values)) > max_length:
        return False
    # One check of the texts joined (by a character that neither holds nor pairs
    # with a surrogate) instead of one per text.
    return _storable("\n".join(values))


_PATHS: dict[tuple[str, int], str] = {}


def _path(name: str, index: int) -> str:
    """Where in the row an item is, for messages: ``candidates[2].``; the same few
    strings for every row, so made once."""
    path = _PATHS.get((name, index))
    if path is None:
        path = _PATHS[(name, index)] = f"{name}[{index}]."
    return path
