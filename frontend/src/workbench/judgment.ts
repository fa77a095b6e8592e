/**
 * The judgment being written: a reducer over plain data, so the keyboard, the
 * mouse, the local draft and the tests all drive the same transitions. Candidate
 * positions are positions in the shown order; ids go to the server.
 */
import type { JudgmentRequest } from "../api/client";

export type LabelingSchema = {
  arity: number;
  allow_tie: boolean;
  /** How much better the chosen candidate is, 0 … max (a magnitude: the choice gives the direction). */
  strength: { min: number; max: number } | null;
  criteria: { key: string; label: string; min: number; max: number }[];
  span_categories: { key: string; label: string; color: string }[];
  rationale: "off" | "optional" | "required";
};

export const DEFAULT_SCHEMA: LabelingSchema = {
  arity: 2,
  allow_tie: true,
  strength: null,
  criteria: [],
  span_categories: [],
  rationale: "optional",
};

export function readSchema(raw: unknown): LabelingSchema {
  return { ...DEFAULT_SCHEMA, ...(raw && typeof raw === "object" ? (raw as Partial<LabelingSchema>) : {}) };
}

/** A span: text offsets are code points, end exclusive; media spans are seconds or a box. */
export type Span = {
  id: string;
  candidate: number;
  category: string;
  start: number | null;
  end: number | null;
  box: [number, number, number, number] | null;
  note: string;
};

export type Draft = {
  comparison: number;
  idempotencyKey: string;
  shownOrder: number[];
  winner: number | null;
  tie: boolean;
  ranking: number[];
  strength: number | null;
  ratings: Record<string, Record<string, number>>;
  spans: Span[];
  rationale: string;
  startedAt: number;
};

export type Action =
  | { type: "choose"; position: number }
  | { type: "tie" }
  | { type: "strength"; delta: number }
  | { type: "setStrength"; value: number | null }
  | { type: "resetRanking" }
  | { type: "setRanking"; ranking: number[] }
  | { type: "rate"; candidate: number; criterion: string; value: number | null }
  | { type: "addSpan"; span: Span }
  | { type: "editSpan"; id: string; category?: string; note?: string }
  | { type: "removeSpan"; id: string }
  | { type: "rationale"; text: string };

/** A fresh draft: the candidates are shown in the order the server sent them. The server shuffles each task's
 * candidates, and serves a position check (a task seen before) in the reverse of the order first shown, so
 * reordering here would undo both. */
export function newDraft(comparison: number, candidateIds: number[]): Draft {
  return {
    comparison,
    idempotencyKey: makeKey(),
    shownOrder: [...candidateIds],
    winner: null,
    tie: false,
    ranking: [],
    strength: null,
    ratings: {},
    spans: [],
    rationale: "",
    startedAt: Date.now(),
  };
}

function makeKey(): string {
  return typeof crypto !== "undefined" && "randomUUID" in crypto
    ? crypto.randomUUID()
    : `k-${Date.now()}-${Math.random().toString(36).slice(2)}`;
}

let spanCounter = 0;

/** A fresh local id for a span (the server does not need it; the UI edits by it). */
export function spanId(): string {
  spanCounter += 1;
  return `s${Date.now().toString(36)}-${spanCounter}`;
}

export function judgmentReducer(schema: LabelingSchema) {
  return (draft: Draft, action: Action): Draft => {
    switch (action.type) {
      case "choose": {
        const id = draft.shownOrder[action.position];
        if (id === undefined) return draft;
        if (draft.shownOrder.length === 2) return { ...draft, winner: id, tie: false, ranking: [] }; // the strength carries over to the new choice
        if (draft.ranking.includes(id)) return draft;
        const ranking = [...draft.ranking, id];
        // The last one left needs no key press: K-1 choices make a full ranking.
        const left = draft.shownOrder.filter((c) => !ranking.includes(c));
        return { ...draft, tie: false, winner: null, ranking: left.length === 1 ? [...ranking, left[0]] : ranking };
      }
      case "tie":
        if (!schema.allow_tie) return draft;
        return { ...draft, tie: !draft.tie, winner: null, ranking: [], strength: null }; // a tie has no strength
      case "strength": {
        const scale = schema.strength;
        if (!scale || draft.winner === null) return draft; // strength is toward the chosen candidate
        const start = draft.strength ?? (action.delta > 0 ? scale.min - 1 : scale.min + 1); // the first press lands on min
        return { ...draft, strength: clamp(start + action.delta, scale.min, scale.max) };
      }
      case "setStrength": {
        const scale = schema.strength;
        if (!scale || draft.winner === null) return draft;
        return { ...draft, strength: action.value === null ? null : clamp(action.value, scale.min, scale.max) };
      }
      case "resetRanking":
        return { ...draft, ranking: [] };
      case "setRanking":
        return { ...draft, ranking: action.ranking, tie: false, winner: null };
      case "rate": {
        const forCandidate = { ...(draft.ratings[action.candidate] ?? {}) };
        if (action.value === null) delete forCandidate[action.criterion];
        else forCandidate[action.criterion] = action.value;
        return { ...draft, ratings: { ...draft.ratings, [action.candidate]: forCandidate } };
      }
      case "addSpan":
        return { ...draft, spans: [...draft.spans, action.span] };
      case "editSpan":
        return {
          ...draft,
          spans: draft.spans.map((s) =>
            s.id === action.id
              ? { ...s, category: action.category ?? s.category, note: action.note ?? s.note }
              : s,
          ),
        };
      case "removeSpan":
        return { ...draft, spans: draft.spans.filter((s) => s.id !== action.id) };
      case "rationale":
        return { ...draft, rationale: action.text };
    }
  };
}

function clamp(value: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, value));
}

/** What still stops a submission, in words an annotator understands (empty: ready). */
export function missing(draft: Draft, schema: LabelingSchema): string[] {
  const out: string[] = [];
  const full = draft.shownOrder.length;
  if (full === 2 && draft.winner === null && !draft.tie) out.push("Choose a candidate (1 or 2)" + (schema.allow_tie ? " or a tie (T)" : ""));
  if (full > 2 && !draft.tie && draft.ranking.length !== full) out.push(`Rank all ${full} candidates`);
  if (schema.rationale === "required" && !draft.rationale.trim()) out.push("Write a rationale (/)");
  return out;
}

/** The request body the API expects (JudgmentCreateRequest). */
export function toRequest(draft: Draft, schema: LabelingSchema, now: number = Date.now()): JudgmentRequest {
  const ratings: Record<string, Record<string, number>> = {};
  for (const [candidate, values] of Object.entries(draft.ratings)) {
    if (Object.keys(values).length) ratings[candidate] = values;
  }
  return {
    winner: draft.shownOrder.length === 2 && !draft.tie ? draft.winner : null,
    tie: draft.tie,
    ranking: draft.shownOrder.length > 2 && !draft.tie ? draft.ranking : null,
    strength: schema.strength && draft.winner !== null && !draft.tie ? draft.strength : null,
    ratings,
    spans: draft.spans.map((s) => ({
      candidate: s.candidate,
      category: s.category,
      start: s.start,
      end: s.end,
      box: s.box,
      note: s.note,
    })),
    rationale: schema.rationale === "off" ? "" : draft.rationale,
    shown_order: draft.shownOrder,
    time_spent_ms: Math.max(0, Math.min(86_400_000, Math.round(now - draft.startedAt))),
  };
}
