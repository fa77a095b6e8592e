import { render, screen } from "@testing-library/react";
import { segmentsOf, SpanText } from "./SpanText";
import type { Span } from "./judgment";

const categories = [
  { key: "wrong", label: "Wrong", color: "#d62728" },
  { key: "vague", label: "Vague", color: "#1f77b4" },
];
const span = (id: string, start: number, end: number, category = "wrong"): Span => ({ id, candidate: 1, category, start, end, box: null, note: "" });

/** Select [from, to) (UTF-16 offsets into the text) inside the rendered candidate, as a user would with the mouse. */
function selectText(container: HTMLElement, from: number, to: number) {
  const walker = document.createTreeWalker(container, NodeFilter.SHOW_TEXT);
  const points: [Node, number][] = [];
  let seen = 0;
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const length = node.textContent!.length;
    if (points.length === 0 && from <= seen + length) points.push([node, from - seen]);
    if (points.length === 1 && to <= seen + length) {
      points.push([node, to - seen]);
      break;
    }
    seen += length;
  }
  const range = document.createRange();
  range.setStart(...points[0]);
  range.setEnd(...points[1]);
  const selection = window.getSelection()!;
  selection.removeAllRanges();
  selection.addRange(range);
}

test("selecting text after emoji and CJK reports code-point offsets", () => {
  const text = "日本😀 is wrong here";
  const onSelect = vi.fn();
  render(<SpanText text={text} spans={[]} categories={categories} label="A" onSelect={onSelect} />);
  const box = screen.getByTestId("candidate-text");
  const from = text.indexOf("wrong");
  selectText(box, from, from + 5);
  box.dispatchEvent(new MouseEvent("mouseup", { bubbles: true }));
  // UTF-16 index of "wrong" is 8; in code points it is 7 (the emoji counts once).
  expect(from).toBe(8);
  expect(onSelect).toHaveBeenCalledWith({ start: 7, end: 12 });
});

test("a selection across existing highlights still maps to the right offsets", () => {
  const text = "a👍🏽 b c d e";
  const onSelect = vi.fn();
  render(<SpanText text={text} spans={[span("x", 2, 5)]} categories={categories} label="A" onSelect={onSelect} />);
  const box = screen.getByTestId("candidate-text");
  selectText(box, 1, text.length);
  box.dispatchEvent(new MouseEvent("mouseup", { bubbles: true }));
  expect(onSelect).toHaveBeenCalledWith({ start: 1, end: [...text].length });
});

test("overlapping spans split the text; each piece names every span over it", () => {
  const text = "0123456789";
  const segments = segmentsOf(text, [span("a", 2, 6), span("b", 4, 8, "vague")]);
  expect(segments.map((s) => [text.slice(s.from, s.to), s.spans.map((x) => x.id).join("+")])).toEqual([
    ["01", ""],
    ["23", "a"],
    ["45", "a+b"],
    ["67", "b"],
    ["89", ""],
  ]);
  render(<SpanText text={text} spans={[span("a", 2, 6), span("b", 4, 8, "vague")]} categories={categories} label="A" />);
  const both = screen.getByTitle("Wrong + Vague");
  expect(both).toHaveTextContent("45");
  expect(both.getAttribute("style")).toContain("inset"); // the second span's underline
});

test("candidate text is shown as text, never parsed as HTML", () => {
  const text = '<img src=x onerror="window.hacked=1"><script>window.hacked=1</script>';
  render(<SpanText text={text} spans={[]} categories={categories} label="A" />);
  const box = screen.getByTestId("candidate-text");
  expect(box.textContent).toBe(text);
  expect(box.querySelector("img, script")).toBeNull();
});
