import { newDraft } from "./judgment";
import { draftDrop, draftLoad, draftSave, draftsPrune } from "./persistence";

beforeEach(() => localStorage.clear());

test("a draft comes back for the same user and task, with its order and idempotency key", () => {
  const draft = { ...newDraft(5, [1, 2]), rationale: "half" };
  draftSave(9, draft);
  expect(draftLoad(9, 5, [1, 2])).toEqual(draft);
  expect(draftLoad(8, 5, [1, 2])).toBeNull(); // another user on this browser
  expect(draftLoad(9, 5, [1, 3])).toBeNull(); // the task changed: start afresh
  expect(draftLoad(9, 5, [2, 1])).toBeNull(); // served again swapped (a position check): start afresh
  draftDrop(9, 5);
  expect(draftLoad(9, 5, [1, 2])).toBeNull();
});

test("old drafts are pruned, recent ones kept", () => {
  draftSave(1, { ...newDraft(1, [1, 2]), startedAt: 0 });
  draftSave(1, { ...newDraft(2, [3, 4]), startedAt: 1_000_000 });
  localStorage.setItem("unrelated", "x");
  draftsPrune(500_000, 1_200_000);
  expect(draftLoad(1, 1, [1, 2])).toBeNull();
  expect(draftLoad(1, 2, [3, 4])).not.toBeNull();
  expect(localStorage.getItem("unrelated")).toBe("x");
});
