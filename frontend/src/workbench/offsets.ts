/**
 * Text offsets. The server counts Unicode code points, end exclusive (Python's
 * str indices); JavaScript strings and DOM selections count UTF-16 code units.
 * Every offset sent or shown goes through here. Selections are widened to whole
 * grapheme clusters, so a span never splits an emoji sequence or a letter from its
 * combining marks.
 */

/** UTF-16 index → code-point index in `text`. An index inside a surrogate pair counts the pair. */
export function toCodePoints(text: string, utf16Index: number): number {
  let points = 0;
  for (let i = 0; i < utf16Index && i < text.length; i++) {
    const unit = text.charCodeAt(i);
    const isLowSurrogate = unit >= 0xdc00 && unit <= 0xdfff;
    const followsHigh = i > 0 && text.charCodeAt(i - 1) >= 0xd800 && text.charCodeAt(i - 1) <= 0xdbff;
    if (!(isLowSurrogate && followsHigh)) points++;
  }
  return points;
}

/** Code-point index → UTF-16 index in `text` (clamped to the text's length). */
export function toUtf16(text: string, codePointIndex: number): number {
  let i = 0;
  for (let points = 0; points < codePointIndex && i < text.length; points++) {
    const unit = text.charCodeAt(i);
    i += unit >= 0xd800 && unit <= 0xdbff && i + 1 < text.length ? 2 : 1;
  }
  return i;
}

export function codePointLength(text: string): number {
  return toCodePoints(text, text.length);
}

const segmenter = typeof Intl !== "undefined" && "Segmenter" in Intl ? new Intl.Segmenter(undefined, { granularity: "grapheme" }) : null;

/** Widen a UTF-16 range [start, end) to grapheme-cluster boundaries. */
export function snapToGraphemes(text: string, start: number, end: number): [number, number] {
  if (!segmenter) return [start, end];
  let snappedStart = start;
  let snappedEnd = end;
  for (const { index, segment } of segmenter.segment(text)) {
    const segmentEnd = index + segment.length;
    if (index < start && start < segmentEnd) snappedStart = index;
    if (index < end && end < segmentEnd) snappedEnd = segmentEnd;
    if (index >= end) break;
  }
  return [snappedStart, snappedEnd];
}

/** A selection (UTF-16, either direction) → the server's code-point range, or null when empty. */
export function selectionToCodePoints(text: string, anchor: number, focus: number): { start: number; end: number } | null {
  if (anchor === focus) return null;
  const [from, to] = snapToGraphemes(text, Math.min(anchor, focus), Math.max(anchor, focus));
  if (from === to) return null;
  return { start: toCodePoints(text, from), end: toCodePoints(text, to) };
}

/** The code-point range [start, end) of `text` as a JavaScript string. */
export function sliceCodePoints(text: string, start: number, end: number): string {
  return text.slice(toUtf16(text, start), toUtf16(text, end));
}
