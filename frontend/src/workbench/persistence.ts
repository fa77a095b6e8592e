/** Local drafts: a half-written judgment survives a reload (and keeps its shown
 * order and idempotency key, so a retried submission is recognised as the same one). */
import type { Draft } from "./judgment";

const PREFIX = "tandem:draft:";

function keyFor(user: number, comparison: number): string {
  return `${PREFIX}${user}:${comparison}`;
}

export function draftLoad(user: number, comparison: number, candidateIds: number[]): Draft | null {
  try {
    const raw = localStorage.getItem(keyFor(user, comparison));
    if (!raw) return null;
    const draft = JSON.parse(raw) as Draft;
    const same = [...draft.shownOrder].sort((a, b) => a - b).join() === [...candidateIds].sort((a, b) => a - b).join();
    return draft.comparison === comparison && same ? draft : null;
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
