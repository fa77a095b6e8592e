/** Local drafts: a half-written judgment survives a reload (and keeps its shown
 * order and idempotency key, so a retried submission is recognised as the same one). */
import type { Draft } from "./judgment";

const PREFIX = "tandem:draft:";

function keyFor(user: number, comparison: number): string {
  return `${PREFIX}${user}:${comparison}`;
}

/** The draft of this task, if it was written for the same candidates in the same order: the server serves a task
 * in the same order every time, except a position check, which comes reversed and must start afresh (with a new
 * idempotency key). */
export function draftLoad(user: number, comparison: number, candidateIds: number[]): Draft | null {
  try {
    const raw = localStorage.getItem(keyFor(user, comparison));
    if (!raw) return null;
    const draft = JSON.parse(raw) as Draft;
    return draft.comparison === comparison && draft.shownOrder.join() === candidateIds.join() ? draft : null;
  } catch {
    return null; // unreadable or storage disabled: start afresh
  }
}

export function draftSave(user: number, draft: Draft): void {
  try {
    localStorage.setItem(keyFor(user, draft.comparison), JSON.stringify(draft));
  } catch {
    // Storage full or disabled: the draft lives in memory only.
  }
}

export function draftDrop(user: number, comparison: number): void {
  try {
    localStorage.removeItem(keyFor(user, comparison));
  } catch {
    // ignore
  }
}

/** Forget drafts older than `maxAgeMs` (tasks that were never submitted and went to others). */
export function draftsPrune(maxAgeMs: number = 7 * 24 * 3600 * 1000, now: number = Date.now()): void {
  try {
    for (const key of Object.keys(localStorage)) {
      if (!key.startsWith(PREFIX)) continue;
      const startedAt = (JSON.parse(localStorage.getItem(key) ?? "{}") as Partial<Draft>).startedAt ?? 0;
      if (now - startedAt > maxAgeMs) localStorage.removeItem(key);
    }
  } catch {
    // ignore: storage unreadable
  }
}
