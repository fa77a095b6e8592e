/** A round's steps as the page shows them: live or not, and how long each took or has been running. */
import type { Round, RoundStep } from "./types";

export function isLive(round: Pick<Round, "status">): boolean {
  return round.status === "queued" || round.status === "running";
}

/** "42 s", "3 min 05 s", "1 h 02 min": short enough for a step list. */
export function formatSeconds(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")} min`;
}

/** How long a step took (once it ended), or has been running so far; null when neither is known. */
export function stepSeconds(step: RoundStep, now: number): number | null {
  if (typeof step.seconds === "number") return step.seconds;
  if (step.status === "running" && step.started_at) {
    const started = Date.parse(step.started_at);
    // A browser clock behind the worker's would show a negative time: clamp to zero.
    return Number.isNaN(started) ? null : Math.max(0, (now - started) / 1000);
  }
  return null;
}

const MARKS: Record<string, string> = { pending: "○", running: "●", succeeded: "✓", failed: "✗", cancelled: "–" };

/** A glyph for a step's status; the status word is always shown beside it (no meaning carried by glyph alone). */
export function stepMark(status: string): string {
  return MARKS[status] ?? "?";
}
