/**
 * A candidate's text with its spans highlighted. Overlapping spans split the text
 * into segments; a segment shows the colour of its first span as a background and
 * one underline per further span, so every overlap stays visible. The text is
 * rendered as React text nodes only: never as HTML.
 */
import { useMemo, useRef } from "react";
import { selectionToCodePoints, toUtf16 } from "./offsets";
import type { Span } from "./judgment";

type Category = { key: string; label: string; color: string };

type Props = {
  text: string;
  spans: Span[];
  categories: Category[];
  label: string;
  onSelect?: (range: { start: number; end: number } | null) => void;
};

type Segment = { from: number; to: number; spans: Span[] };

export function segmentsOf(text: string, spans: Span[]): Segment[] {
  const marks = spans
    .filter((s) => s.start !== null && s.end !== null)
    .map((s) => ({ span: s, from: toUtf16(text, s.start!), to: toUtf16(text, s.end!) }));
  const cuts = new Set<number>([0, text.length]);
  for (const m of marks) {
    cuts.add(m.from);
    cuts.add(m.to);
  }
  const points = [...cuts].filter((p) => p >= 0 && p <= text.length).sort((a, b) => a - b);
  const segments: Segment[] = [];
  for (let i = 0; i + 1 < points.length; i++) {
    const [from, to] = [points[i], points[i + 1]];
    segments.push({ from, to, spans: marks.filter((m) => m.from <= from && to <= m.to).map((m) => m.span) });
  }
  return segments;
}

/** The UTF-16 offset of a DOM point inside `container`, counting its text only. */
function offsetIn(container: Node, node: Node, offset: number): number {
  const range = document.createRange();
  range.setStart(container, 0);
  range.setEnd(node, offset);
  return range.toString().length;
}

export function SpanText({ text, spans, categories, label, onSelect }: Props) {
  const ref = useRef<HTMLDivElement>(null);
  const colour = useMemo(() => Object.fromEntries(categories.map((c) => [c.key, c.color])), [categories]);
  const names = useMemo(() => Object.fromEntries(categories.map((c) => [c.key, c.label])), [categories]);
  const segments = useMemo(() => segmentsOf(text, spans), [text, spans]);

  function handleSelection() {
    if (!onSelect || !ref.current) return;
    const selection = window.getSelection();
    if (!selection || selection.rangeCount === 0 || selection.isCollapsed) return;
    const container = ref.current;
    if (!container.contains(selection.anchorNode) || !container.contains(selection.focusNode)) return;
    const anchor = offsetIn(container, selection.anchorNode!, selection.anchorOffset);
    const focus = offsetIn(container, selection.focusNode!, selection.focusOffset);
    onSelect(selectionToCodePoints(text, anchor, focus));
  }

  return (
    <div
      ref={ref}
      className="span-text"
      data-testid="candidate-text"
      aria-label={label}
      onMouseUp={handleSelection}
      onKeyUp={handleSelection}
    >
      {segments.map((segment) => {
        const piece = text.slice(segment.from, segment.to);
        if (!segment.spans.length) return <span key={segment.from}>{piece}</span>;
        const [first, ...rest] = segment.spans;
        const style = {
          backgroundColor: `${colour[first.category] ?? "#999999"}40`,
          boxShadow: rest.map((s, i) => `inset 0 -${3 * (i + 1)}px 0 ${colour[s.category] ?? "#999999"}`).join(", ") || undefined,
          paddingBottom: rest.length ? `${3 * rest.length}px` : undefined,
        };
        const title = segment.spans.map((s) => names[s.category] ?? s.category).join(" + ");
        return (
          <mark key={segment.from} style={style} title={title} data-categories={segment.spans.map((s) => s.category).join(" ")}>
            {piece}
          </mark>
        );
      })}
    </div>
  );
}
