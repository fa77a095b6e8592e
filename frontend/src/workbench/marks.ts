/**
 * Marks (spans) and the prompt in words an annotator reads: quoted text cut to a
 * glance, the category's name, the candidate's letter. Never offsets.
 */
import { formatSeconds } from "./Media";
import { sliceCodePoints } from "./offsets";

type Located = { start: number | null; end: number | null; box: [number, number, number, number] | null };

/** `text` cut to `max` code points (an ellipsis marks the cut), whitespace runs shown as one space. */
export function truncate(text: string, max: number): string {
  const flat = text.replace(/\s+/g, " ").trim();
  const points = [...flat];
  return points.length <= max ? flat : `${points.slice(0, max - 1).join("").trimEnd()}…`;
}

/** What a mark covers: the quoted text, the time range, or where the box is. */
export function describeMark(mark: Located, text: string, max = 60): string {
  if (mark.box) return `a box at ${Math.round(mark.box[0] * 100)}% across, ${Math.round(mark.box[1] * 100)}% down`;
  if (mark.start === null || mark.end === null) return "?";
  if (text) return `“${truncate(sliceCodePoints(text, mark.start, mark.end), max)}”`;
  return `${formatSeconds(mark.start)}–${formatSeconds(mark.end)}`;
}

/** A span as the list shows it: "Incorrect · candidate A: “the quoted words…”". */
export function spanLabel(mark: Located, text: string, category: string, letter: string): string {
  return `${category} · candidate ${letter}: ${describeMark(mark, text)}`;
}

export type Turn = { role?: string; content?: string };

/** How long the earlier context is, in words a reader can weigh: "1 earlier turn, 4,213 characters". */
export function contextSize(turns: Turn[]): { label: string; characters: number } {
  const characters = turns.reduce((n, t) => n + [...turnText(t)].length, 0);
  const count = `${turns.length} earlier ${turns.length === 1 ? "turn" : "turns"}`;
  return { label: `${count}, ${characters.toLocaleString("en")} characters`, characters };
}

export function turnText(turn: Turn): string {
  return typeof turn.content === "string" ? turn.content : JSON.stringify(turn);
}
