import { judgmentReducer, type LabelingSchema, missing, newDraft, readSchema, toRequest } from "./judgment";

const schema: LabelingSchema = readSchema({
  arity: 2,
  allow_tie: true,
  strength: { min: 0, max: 3 },
  criteria: [{ key: "helpful", label: "Helpful", min: 1, max: 5 }],
  span_categories: [{ key: "wrong", label: "Wrong", color: "#d62728" }],
  rationale: "required",
});
const reduce = judgmentReducer(schema);

test("choosing by shown position records the candidate id, and a tie clears it", () => {
  let draft = newDraft(7, [10, 11]);
  expect(draft.shownOrder).toEqual([10, 11]);
  draft = reduce(draft, { type: "choose", position: 1 });
  expect(draft.winner).toBe(11);
  draft = reduce(draft, { type: "tie" });
  expect([draft.winner, draft.tie]).toEqual([null, true]);
  draft = reduce(draft, { type: "choose", position: 0 });
  expect([draft.winner, draft.tie]).toEqual([10, false]);
});

test("strength is how much better the chosen candidate is: 0 … max, only once one is chosen", () => {
  let draft = newDraft(7, [10, 11]);
  draft = reduce(draft, { type: "strength", delta: 1 });
  draft = reduce(draft, { type: "setStrength", value: 2 });
  expect(draft.strength).toBeNull(); // nothing chosen: no direction for a strength
  draft = reduce(draft, { type: "choose", position: 1 });
  draft = reduce(draft, { type: "strength", delta: 1 });
  expect(draft.strength).toBe(0);
  for (let i = 0; i < 10; i++) draft = reduce(draft, { type: "strength", delta: 1 });
  expect(draft.strength).toBe(3);
  for (let i = 0; i < 10; i++) draft = reduce(draft, { type: "strength", delta: -1 });
  expect(draft.strength).toBe(0); // never below 0: the sign is the choice, not the strength
  draft = reduce(draft, { type: "setStrength", value: 2 });
  draft = reduce(draft, { type: "choose", position: 0 });
  expect([draft.winner, draft.strength]).toEqual([10, 2]); // changing the choice keeps the strength toward it
  draft = reduce(draft, { type: "tie" });
  expect(draft.strength).toBeNull(); // a tie has none
  expect(toRequest(draft, schema).strength).toBeNull();
});

test("K-way: keys build the ranking best first; the last one ranks itself", () => {
  const kway = judgmentReducer({ ...schema, arity: 4 });
  let draft = newDraft(9, [1, 2, 3, 4]);
  draft = kway(draft, { type: "choose", position: 2 });
  draft = kway(draft, { type: "choose", position: 2 }); // twice: ignored
  draft = kway(draft, { type: "choose", position: 0 });
  expect(draft.ranking).toEqual([3, 1]);
  draft = kway(draft, { type: "choose", position: 3 });
  expect(draft.ranking).toEqual([3, 1, 4, 2]);
  expect(toRequest(draft, { ...schema, arity: 4 }).ranking).toEqual([3, 1, 4, 2]);
  draft = kway(draft, { type: "resetRanking" });
  expect(draft.ranking).toEqual([]);
});

test("a submission needs a choice and, here, a rationale", () => {
  let draft = newDraft(7, [10, 11]);
  expect(missing(draft, schema)).toHaveLength(2);
  draft = reduce(draft, { type: "choose", position: 0 });
  draft = reduce(draft, { type: "rationale", text: "  " });
  expect(missing(draft, schema)).toEqual(["Write a rationale (/)"]);
  draft = reduce(draft, { type: "rationale", text: "A is grounded." });
  expect(missing(draft, schema)).toEqual([]);
});

test("the request carries ratings, spans, the shown order and the time spent", () => {
  let draft = { ...newDraft(7, [10, 11]), startedAt: 1_000 };
  draft = reduce(draft, { type: "choose", position: 1 });
  draft = reduce(draft, { type: "setStrength", value: 2 });
  draft = reduce(draft, { type: "rate", candidate: 10, criterion: "helpful", value: 4 });
  draft = reduce(draft, { type: "rate", candidate: 11, criterion: "helpful", value: 2 });
  draft = reduce(draft, { type: "rate", candidate: 11, criterion: "helpful", value: null });
  draft = reduce(draft, { type: "addSpan", span: { id: "a", candidate: 10, category: "wrong", start: 2, end: 5, box: null, note: "" } });
  draft = reduce(draft, { type: "addSpan", span: { id: "b", candidate: 10, category: "wrong", start: 3, end: 9, box: null, note: "" } });
  draft = reduce(draft, { type: "editSpan", id: "b", note: "overlaps a" });
  draft = reduce(draft, { type: "removeSpan", id: "a" });
  draft = reduce(draft, { type: "rationale", text: "B." });
  expect(toRequest(draft, schema, 4_500)).toEqual({
    winner: 11,
    tie: false,
    ranking: null,
    strength: 2,
    ratings: { "10": { helpful: 4 } },
    spans: [{ candidate: 10, category: "wrong", start: 3, end: 9, box: null, note: "overlaps a" }],
    rationale: "B.",
    shown_order: [10, 11],
    time_spent_ms: 3_500,
  });
});

test("a new draft shows the candidates in the order served, so a position check's swap reaches the screen", () => {
  expect(newDraft(7, [11, 10]).shownOrder).toEqual([11, 10]);
  expect(newDraft(8, [3, 1, 2]).shownOrder).toEqual([3, 1, 2]);
});
