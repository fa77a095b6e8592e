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
from .rejection import _storable_text, unstorable_field
from .rows import (
    _BUNDLE_ONLY,
    MAX_EXTERNAL_ID,
    _CandidateRow,
    _ComparisonRow,
    _Context,
    _PromptRow,
    _Rows,
    _Seen,
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
    candidate_lists = [raw.get("candidates", []) for raw in raws]
    modes = [raw.get("comparisons", ctx.default_comparisons) for raw in raws]
    if not (
        _strings_plain(prompt_ids, MAX_EXTERNAL_ID)
        and _strings_plain(texts)
        and set(map(type, splits)) == {str}
        and _SPLITS.issuperset(splits)
        and _types_within(metadatas, dict)
        and _objects_storable(metadatas)
        and _types_within(candidate_lists, list)
        and _modes_plain(ctx, modes)
    ):
        return None

    # The candidates' own checks in rows._candidate_row, here for all of them at once.
    candidates = list(itertools.chain.from_iterable(candidate_lists))
    if not _types_within(candidates, dict) or not all(map(_PLAIN_CANDIDATE_KEYS.issuperset, candidates)):
        return None
    candidate_ids = _column(candidates, "id")
    candidate_texts = _column(candidates, "text")
    candidate_metadatas = _column(candidates, "metadata")
    candidate_origins = _column(candidates, "origin")
    if candidates and not (
        _strings_plain(candidate_ids, MAX_EXTERNAL_ID)
        and _strings_plain(candidate_texts)
        and _types_within(candidate_metadatas, dict)
        and _types_within(candidate_origins, dict)
        and _objects_storable(candidate_metadatas)
        and _objects_storable(candidate_origins)
    ):
        return None

    # Each row's comparisons, by annotation.comparisons as row by row.
    candidate_counts = list(map(len, candidate_lists))
    row_candidate_ids = _split(candidate_ids, candidate_counts)
    groups_by_row = [
        [] if mode is None else candidate_groups(ids, mode=mode, arity=ctx.arity)
        for mode, ids in zip(modes, row_candidate_ids, strict=True)
    ]
    comparison_counts = list(map(len, groups_by_row))
    groups = list(itertools.chain.from_iterable(groups_by_row))
    comparison_prompt_ids = _repeated(prompt_ids, comparison_counts)
    comparison_ids = list(map(comparison_external_id, comparison_prompt_ids, groups))

    # Ids must not repeat in the file; one that does goes row by row, for its message.
    candidate_lines = _repeated(lines, candidate_counts)
    comparison_lines = _repeated(lines, comparison_counts)
    recorded = (
        ("prompt", prompt_ids, lines),
        ("candidate", candidate_ids, candidate_lines),
        ("comparison", comparison_ids, comparison_lines),
    )
    for what, ids, _ in recorded:
        if len(set(ids)) != len(ids) or not seen.ids[what].keys().isdisjoint(ids):
            return None
    for what, ids, id_lines in recorded:
        seen.ids[what].update(zip(ids, id_lines, strict=True))

    # The rows, a column at a time: map() calls each row class without a Python loop.
    return _Rows(
        prompts=list(
            map(
                _PromptRow,
                lines,
                prompt_ids,
                texts,
                [[] for _ in raws],  # context
                splits,
                _objects(metadatas),
                [raw.keys() - _BUNDLE_ONLY for raw in raws],  # given: the prompt's own columns
            )
        ),
        candidates=list(
            map(
                _CandidateRow,
                candidate_lines,
                _paths("candidates", candidate_counts),
                candidate_ids,
                _repeated(prompt_ids, candidate_counts),
                candidate_texts,
                itertools.repeat("text/plain"),
                _objects(candidate_metadatas),
                _objects(candidate_origins),
                map(dict.keys, candidates),  # given
            )
        ),
        comparisons=list(
            map(
                _ComparisonRow,
                comparison_lines,
                _paths("comparisons", comparison_counts),
                comparison_ids,
                comparison_prompt_ids,
                groups,
                itertools.repeat(0),  # priority
                itertools.repeat(None),  # wanted
                itertools.repeat(None),  # gold
                itertools.repeat(_NO_PRIORITY),  # given
            )
        ),
    )


def _modes_plain(ctx: _Context, modes: list) -> bool:
    """Every row's ``comparisons`` None or a mode name that candidate_groups takes
    for this project (a list of comparisons goes row by row)."""
    if not _types_within(modes, str, type(None)):
        return False
    try:
        for mode in set(modes) - {None}:
            candidate_groups([], mode=mode, arity=ctx.arity)
    except BuildModeInvalid:
        return False
    return True


def _repeated(values: list, counts: list[int]) -> list:
    """Each value as many times as its count: ``(["a", "b"], [2, 1])`` → ``["a", "a", "b"]``."""
    return list(itertools.chain.from_iterable(map(itertools.repeat, values, counts)))


def _split(values: list, counts: list[int]) -> list[list]:
    """``values`` cut into consecutive lists of the given lengths."""
    ends = list(itertools.accumulate(counts))
    return [values[end - count : end] for end, count in zip(ends, counts, strict=True)]


def _objects(values: list) -> list:
    """A JSON-object column with its left-out values as ``{}`` (a new one each, as row by row)."""
    return [{} if value is _ABSENT else value for value in values]


def _objects_storable(values: Sequence) -> bool:
    """No JSON object of the column holds a NUL or a lone surrogate (rows names the row's field that does)."""
    return not any(unstorable_field(value) for value in values if value is not _ABSENT and value)


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
    return _storable_text("\n".join(values))


_PATHS: dict[str, list[str]] = {"candidates": [], "comparisons": []}


def _paths(name: str, counts: list[int]) -> itertools.chain:
    """Where in its row each item is, for messages (``candidates[0].``,
    ``candidates[1].``, ...), for rows of ``counts`` items: the same few strings
    for every row, so made once."""
    made = _PATHS[name]
    for index in range(len(made), max(counts, default=0)):
        made.append(f"{name}[{index}].")
    return itertools.chain.from_iterable(map(made.__getitem__, map(slice, counts)))
