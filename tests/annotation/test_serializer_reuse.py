"""The submit body's serializer reuses its bound fields per thread (a hot-path saving); reuse must never
change what a request is told or carry anything from one request into the next."""

import threading

from annotation.api.serializers import JudgmentCreateSerializer

BAD_BODIES = [
    {"winner": "left"},
    {"ranking": ["first"], "spans": [{"candidate": 1, "category": "incorrect", "start": "a"}]},
    {"strength": 101},
    {"ratings": {"1": {"helpful": "many"}}},
    {"spans": [{"candidate": 1}]},
    {"spans": [{"candidate": 1, "category": "incorrect", "box": [1, 2]}]},
    {"time_spent_ms": -1, "shown_order": "ab"},
    {"rationale": "x" * 20001},
]
FULL = {
    "winner": 7,
    "strength": 2,
    "ratings": {"7": {"helpful": 4}},
    "spans": [{"candidate": 7, "category": "incorrect", "start": 0, "end": 3, "note": "n"}],
    "rationale": "because",
    "shown_order": [8, 7],
    "time_spent_ms": 1200,
}


def _outcome(body):
    serializer = JudgmentCreateSerializer(data=body)
    if serializer.is_valid():
        return "valid", serializer.to_answer()
    return "invalid", serializer.errors


def _in_new_thread(body):
    """What a thread that has never validated a body says (its serializer builds the fields afresh)."""
    out = []
    thread = threading.Thread(target=lambda: out.append(_outcome(body)))
    thread.start()
    thread.join()
    return out[0]


def test_reused_fields_give_every_body_the_answer_fresh_fields_give():
    for body in [*BAD_BODIES, FULL, {"tie": True}]:
        _outcome(FULL)  # this thread's fields have validated other bodies
        _outcome(BAD_BODIES[1])
        assert _outcome(body) == _in_new_thread(body)
    for body in BAD_BODIES:
        kind, errors = _outcome(body)
        assert kind == "invalid" and errors


def test_nothing_carries_from_one_body_into_the_next():
    _outcome(FULL)
    kind, answer = _outcome({"winner": 3})
    assert kind == "valid"
    assert (answer.winner, answer.spans, answer.ratings, answer.rationale, answer.strength) == (3, [], {}, "", None)


def test_fields_are_built_once_per_thread_and_never_shared_across_threads():
    first, second = JudgmentCreateSerializer(data={}), JudgmentCreateSerializer(data={})
    assert first.fields is second.fields
    other = []
    thread = threading.Thread(target=lambda: other.append(JudgmentCreateSerializer(data={}).fields))
    thread.start()
    thread.join()
    assert other[0] is not first.fields
