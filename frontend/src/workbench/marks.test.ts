import { contextSize, describeMark, spanLabel, truncate } from "./marks";

test("a span is labelled by its category, its candidate and its text, cut to a glance", () => {
  const text = "Pluto 🪐 is a dwarf planet; that claim is right, and here the sentence goes on and on past any glance.";
  const start = [...text.slice(0, text.indexOf("that"))].length; // code points, as the server counts
  expect(spanLabel({ start, end: start + 10, box: null }, text, "Incorrect", "A")).toBe("Incorrect · candidate A: “that claim”");
  const long = spanLabel({ start: 0, end: [...text].length, box: null }, text, "Irrelevant", "B");
  expect(long.startsWith("Irrelevant · candidate B: “Pluto 🪐 is a dwarf planet")).toBe(true);
  expect(long.endsWith("…”")).toBe(true);
  expect(long).not.toMatch(/\[\d/); // no offsets
});

test("media marks read as times or where the box is", () => {
  expect(describeMark({ start: 1.5, end: 3, box: null }, "")).toBe("0:01.5–0:03.0");
  expect(describeMark({ start: null, end: null, box: [0.1, 0.25, 0.5, 0.5] }, "")).toBe("a box at 10% across, 25% down");
});

test("truncate counts code points and folds whitespace", () => {
  expect(truncate("a\n\n  b", 10)).toBe("a b");
  expect(truncate("🪐🪐🪐🪐", 3)).toBe("🪐🪐…");
});

test("the context says how long it is", () => {
  expect(contextSize([{ role: "system", content: "x".repeat(4213) }]).label).toBe("1 earlier turn, 4,213 characters");
  expect(contextSize([{ role: "user", content: "hi" }, { role: "assistant", content: "yo" }])).toEqual({ label: "2 earlier turns, 4 characters", characters: 4 });
});
