"""The pair builder's rules, one test each (see build_preference_pairs' docstring)."""

import pytest

from training.ml.pairs import (
    JudgmentRecord,
    build_preference_pairs,
    conversation_opening,
    prompt_split,
    snapshot_id_for,
)


def judgment(jid, **kw):
    base = dict(
        judgment_id=jid,
        comparison_id=kw.pop("comparison_id", jid),
        prompt_id=kw.pop("prompt_id", jid),
        prompt_text="p",
        candidates={"x": "text x", "y": "text y"},
    )
    return JudgmentRecord(**(base | kw))


def all_pairs(ps):
    return list(ps.train) + list(ps.eval)


def test_pairwise_winner_gives_one_pair_chosen_first():
    ps = build_preference_pairs([judgment(1, winner="y")], eval_fraction=0)
    (pair,) = ps.train
    assert (pair.chosen_id, pair.rejected_id, pair.chosen, pair.rejected) == ("y", "x", "text y", "text x")
    assert pair.label == 1.0 and pair.judgment_ids == (1,)


def test_best_of_k_winner_beats_every_other_candidate():
    j = judgment(1, candidates={"a": "A", "b": "B", "c": "C"}, winner="b")
    ps = build_preference_pairs([j], eval_fraction=0)
    assert [(p.chosen_id, p.rejected_id) for p in ps.train] == [("b", "a"), ("b", "c")]


def test_ranking_of_k_gives_all_k_choose_2_ordered_pairs():
    cands = {c: c.upper() for c in "abcd"}
    ps = build_preference_pairs([judgment(1, candidates=cands, ranking=["c", "a", "d", "b"])], eval_fraction=0)
    got = [(p.chosen_id, p.rejected_id) for p in ps.train]
    assert got == [("c", "a"), ("c", "d"), ("c", "b"), ("a", "d"), ("a", "b"), ("d", "b")]
    assert len(got) == 4 * 3 // 2
    assert all(p.margin == 0.0 for p in ps.train)


def test_ranking_must_order_every_candidate_once():
    with pytest.raises(ValueError, match="ranking"):
        build_preference_pairs([judgment(1, candidates={"a": "", "b": "", "c": ""}, ranking=["a", "b"])])


def test_ties_are_dropped_by_default():
    ps = build_preference_pairs([judgment(1, tie=True), judgment(2, winner="x")], eval_fraction=0)
    assert [p.judgment_ids for p in ps.train] == [(2,)]
    assert ps.stats["tie_pairs_dropped"] == 1


def test_ties_kept_as_soft_labels_with_no_margin():
    ps = build_preference_pairs([judgment(1, tie=True, strength=3)], tie_policy="soft", eval_fraction=0)
    (pair,) = ps.train
    assert pair.label == 0.5 and pair.margin == 0.0


def test_strength_becomes_a_scaled_margin_whatever_its_sign():
    js = [judgment(1, winner="x", strength=-2), judgment(2, winner="y", strength=3)]
    ps = build_preference_pairs(js, margin_scale=0.5, eval_fraction=0)
    assert [p.margin for p in ps.train] == [1.0, 1.5]
    off = build_preference_pairs(js, use_strength_margin=False, eval_fraction=0)
    assert [p.margin for p in off.train] == [0.0, 0.0]


def test_gold_judgments_are_excluded_and_not_in_the_snapshot():
    ps = build_preference_pairs([judgment(1, winner="x", is_gold=True), judgment(2, winner="x")], eval_fraction=0)
    assert [p.judgment_ids for p in all_pairs(ps)] == [(2,)]
    assert ps.judgment_ids == ("2",) and ps.stats["gold_excluded"] == 1
    kept = build_preference_pairs([judgment(1, winner="x", is_gold=True)], exclude_gold=False, eval_fraction=0)
    assert len(kept.train) == 1


def test_eval_split_is_by_prompt_and_deterministic():
    # 200 prompts, three judgments each (two comparisons on the same prompt).
    js = [
        judgment(10 * p + k, prompt_id=p, prompt_text=f"prompt {p}", comparison_id=(p, k), winner="x")
        for p in range(200)
        for k in range(3)
    ]
    ps = build_preference_pairs(js, eval_fraction=0.25, seed=7)
    train_prompts, eval_prompts = {p.prompt_id for p in ps.train}, {p.prompt_id for p in ps.eval}
    assert not train_prompts & eval_prompts
    assert 25 <= len(eval_prompts) <= 75  # ~50 expected
    assert all(prompt_split(f"prompt {p}", eval_fraction=0.25, seed=7) == "eval" for p in eval_prompts)
    again = build_preference_pairs(list(reversed(js)), eval_fraction=0.25, seed=7)
    assert {p.prompt_id for p in again.eval} == eval_prompts
    other_seed = build_preference_pairs(js, eval_fraction=0.25, seed=8)
    assert {p.prompt_id for p in other_seed.eval} != eval_prompts


def test_dialogues_that_open_the_same_way_never_straddle_the_split():
    # 100 dialogues in 20 families: each family shares its first human turn (spelt with other spaces and case)
    # and differs later, as hh-rlhf's near-duplicates do. Each dialogue is its own prompt record.
    js = [
        judgment(
            5 * f + k,
            prompt_id=5 * f + k,
            prompt_text=f"\n\nHuman: {' How' if k % 2 else 'how'}  do I fix {f}?\n\nAssistant: ok {k}\n\nHuman: {k}",
            winner="x",
        )
        for f in range(20)
        for k in range(5)
    ]
    ps = build_preference_pairs(js, eval_fraction=0.5, seed=3)
    family = {5 * f + k: f for f in range(20) for k in range(5)}
    train, held_out = {family[p.prompt_id] for p in ps.train}, {family[p.prompt_id] for p in ps.eval}
    assert train and held_out and not train & held_out


def test_the_conversation_opening_is_the_first_human_turn_normalised():
    assert conversation_opening("\n\nHuman:  Why   is\nthe sky BLUE?\n\nAssistant: Light.") == "why is the sky blue?"
    assert conversation_opening("system: terse\nuser: Hello\nassistant: hi\nuser: bye") == "hello"
    assert conversation_opening("  Write a Haiku ") == "write a haiku"


def test_train_and_eval_judgment_ids_are_recorded_apart():
    js = [judgment(i, prompt_text=f"prompt {i}", winner="x") for i in range(40)]
    ps = build_preference_pairs(js, eval_fraction=0.3, seed=1)
    assert ps.train and ps.eval
    assert ps.train_judgment_ids == tuple(sorted(str(p.judgment_ids[0]) for p in ps.train))
    assert ps.eval_judgment_ids == tuple(sorted(str(p.judgment_ids[0]) for p in ps.eval))
    assert not set(ps.train_judgment_ids) & set(ps.eval_judgment_ids)


def test_each_pair_knows_whether_its_winner_was_shown_first():
    js = [
        judgment(1, winner="x", shown_order=["y", "x"]),
        judgment(2, winner="x", shown_order=["x", "y"]),
        judgment(3, winner="x"),
    ]
    ps = build_preference_pairs(js, eval_fraction=0)
    assert [p.chosen_shown_first for p in ps.train] == [False, True, None]


def test_an_explicit_prompt_split_is_honoured():
    js = [judgment(i, winner="x", split="eval" if i < 3 else "train") for i in range(10)]
    ps = build_preference_pairs(js, eval_fraction=0.5)
    assert sorted(p.prompt_id for p in ps.eval) == [0, 1, 2]
    with pytest.raises(ValueError, match="both"):
        build_preference_pairs(
            [judgment(1, prompt_id=5, winner="x", split="eval"), judgment(2, prompt_id=5, winner="x", split="train")]
        )


def test_annotator_weights_scale_pairs_and_zero_drops_them():
    js = [
        judgment(1, winner="x", annotator_id="good"),
        judgment(2, winner="x", annotator_id="spam"),
        judgment(3, winner="x", annotator_id="new"),
    ]
    ps = build_preference_pairs(js, annotator_weights={"good": 2.0, "spam": 0.0}, eval_fraction=0)
    assert [(p.annotator_id, p.weight) for p in ps.train] == [("good", 2.0), ("new", 1.0)]


def test_agreement_counts_votes_on_the_same_candidate_pair():
    js = [judgment(i, comparison_id=9, prompt_id=9, winner=w) for i, w in enumerate(["x", "x", "y"])]
    js.append(judgment(5, comparison_id=9, prompt_id=9, tie=True))
    ps = build_preference_pairs(js, tie_policy="soft", eval_fraction=0)
    # votes: x 2 + 0.5, y 1 + 0.5 → x wins 2.5/4
    assert [(p.chosen_id, p.agreement) for p in ps.train] == [("x", 0.625), ("x", 0.625), ("y", 0.375), ("x", 0.625)]
    single = build_preference_pairs([judgment(1, winner="x")], eval_fraction=0)
    assert single.train[0].agreement is None


def test_snapshot_id_depends_only_on_the_set_of_judgment_ids():
    a = build_preference_pairs([judgment(1, winner="x"), judgment(2, winner="y")])
    b = build_preference_pairs([judgment(2, winner="y"), judgment(1, winner="x")], tie_policy="soft")
    c = build_preference_pairs([judgment(1, winner="x"), judgment(3, winner="y")])
    assert a.snapshot_id == b.snapshot_id == snapshot_id_for(["1", "2"]) != c.snapshot_id
    assert a.snapshot_id.startswith("ps-") and a.judgment_ids == ("1", "2")


def test_every_pair_records_its_judgment():
    js = [judgment(i, winner="x") for i in range(20)]
    ps = build_preference_pairs(js, eval_fraction=0.3)
    assert sorted(p.judgment_ids[0] for p in all_pairs(ps)) == list(range(20))


@pytest.mark.parametrize(
    "kw",
    [dict(winner="z"), dict(), dict(winner="x", tie=True), dict(candidates={"x": "only"}, winner="x")],
    ids=["unknown-winner", "no-answer", "two-answers", "one-candidate"],
)
def test_malformed_judgments_are_rejected_with_their_id(kw):
    with pytest.raises(ValueError, match="judgment 4"):
        build_preference_pairs([judgment(4, **kw)])


def test_docstring_example_holds():
    import doctest

    from training.ml import pairs

    assert doctest.testmod(pairs).failed == 0
