import { codePointLength, selectionToCodePoints, sliceCodePoints, snapToGraphemes, toCodePoints, toUtf16 } from "./offsets";

// Python's len() and slicing are the reference: these strings' code-point
// lengths are what the server's validation uses.
const EMOJI = "a😀b"; // 😀 is one code point, two UTF-16 units
const FAMILY = "x👨‍👩‍👧y"; // 5 code points joined by ZWJ into one grapheme
const COMBINING = "cafe\u0301!"; // e + combining acute: two code points, one grapheme
const CJK = "日本語のテキスト";

test("code-point length matches Python's len()", () => {
  expect(codePointLength(EMOJI)).toBe(3);
  expect(codePointLength(FAMILY)).toBe(7);
  expect(codePointLength(COMBINING)).toBe(6);
  expect(codePointLength(CJK)).toBe(8);
  expect(codePointLength("𝒳𝒴")).toBe(2); // astral letters
});

test("UTF-16 and code-point offsets round-trip at every boundary", () => {
  for (const text of [EMOJI, FAMILY, COMBINING, CJK, "plain"]) {
    for (let cp = 0; cp <= codePointLength(text); cp++) expect(toCodePoints(text, toUtf16(text, cp))).toBe(cp);
  }
  expect(toUtf16(EMOJI, 2)).toBe(3);
  expect(toCodePoints(EMOJI, 3)).toBe(2);
});

test("a selection after an emoji gets code-point offsets, not UTF-16 ones", () => {
  // Selecting "b" in "a😀b": UTF-16 [3, 4), code points [2, 3).
  expect(selectionToCodePoints(EMOJI, 3, 4)).toEqual({ start: 2, end: 3 });
  // Backwards selections (focus before anchor) give the same range.
  expect(selectionToCodePoints(EMOJI, 4, 3)).toEqual({ start: 2, end: 3 });
  expect(sliceCodePoints(EMOJI, 2, 3)).toBe("b");
});

test("selections widen to whole graphemes: no half emoji, no orphaned combining mark", () => {
  // Half of the family emoji selected (UTF-16 1..3) → the whole ZWJ sequence.
  const family = selectionToCodePoints(FAMILY, 1, 3)!;
  expect(sliceCodePoints(FAMILY, family.start, family.end)).toBe("👨‍👩‍👧");
  expect(family).toEqual({ start: 1, end: 6 });
  // Selecting just the "e" of "é" takes its combining accent too.
  const accent = selectionToCodePoints(COMBINING, 3, 4)!;
  expect(accent).toEqual({ start: 3, end: 5 });
  expect(snapToGraphemes(COMBINING, 3, 4)).toEqual([3, 5]);
});

test("CJK offsets are per character", () => {
  expect(selectionToCodePoints(CJK, 3, 8)).toEqual({ start: 3, end: 8 });
  expect(sliceCodePoints(CJK, 3, 8)).toBe("のテキスト");
});

test("an empty selection is no span", () => {
  expect(selectionToCodePoints(EMOJI, 2, 2)).toBeNull();
});
