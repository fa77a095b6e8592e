/** Reading a version's held-out evaluation (metrics.eval) beside the trivial baselines the server measured on the
 * same held-out data, so the dashboard can say when a model does not beat them. */

export type RewardBaseline = { name: string; rule: string; accuracy: number; modelAccuracy: number; n: number; beaten: boolean };
export type RewardEvaluation = { accuracy: number; ci: [number, number] | null; n: number; baselines: RewardBaseline[]; unbeaten: RewardBaseline[] };
export type SpanBaseline = { name: string; f1: number | null; accuracy: number | null };
export type SpanCategory = { key: string; f1: number | null; support: number };
export type SpanEvaluation = {
  f1: number | null;
  accuracy: number | null;
  n: number;
  baselines: SpanBaseline[];
  beats: boolean | null;
  categories: SpanCategory[];
};

type Dict = Record<string, unknown>;
const isDict = (x: unknown): x is Dict => typeof x === "object" && x !== null && !Array.isArray(x);
const num = (x: unknown): number | null => (typeof x === "number" && Number.isFinite(x) ? x : null);

function heldOut(metrics: unknown): Dict | null {
  return isDict(metrics) && isDict(metrics.eval) ? metrics.eval : null;
}

export function rewardEvaluation(metrics: unknown): RewardEvaluation | null {
  const evaluation = heldOut(metrics);
  const accuracy = num(evaluation?.accuracy);
  if (!evaluation || accuracy === null) return null;
  const ci = Array.isArray(evaluation.accuracy_ci) && evaluation.accuracy_ci.length === 2 ? evaluation.accuracy_ci.map(num) : null;
  const baselines: RewardBaseline[] = [];
  for (const [name, raw] of Object.entries(isDict(evaluation.baselines) ? evaluation.baselines : {})) {
    if (!isDict(raw)) continue;
    const base = num(raw.accuracy);
    const model = num(raw.model_accuracy);
    if (base === null || model === null) continue;
    baselines.push({ name, rule: String(raw.rule ?? ""), accuracy: base, modelAccuracy: model, n: num(raw.n) ?? 0, beaten: model > base });
  }
  return {
    accuracy,
    ci: ci && ci[0] !== null && ci[1] !== null ? [ci[0], ci[1]] : null,
    n: num(evaluation.n_decided) ?? num(evaluation.n_pairs) ?? 0,
    baselines,
    unbeaten: baselines.filter((b) => !b.beaten),
  };
}

export function spanEvaluation(metrics: unknown): SpanEvaluation | null {
  const evaluation = heldOut(metrics);
  if (!evaluation) return null;
  const baselines = Object.entries(isDict(evaluation.baselines) ? evaluation.baselines : {})
    .filter((entry): entry is [string, Dict] => isDict(entry[1]))
    .map(([name, raw]) => ({ name, f1: num(raw.f1), accuracy: num(raw.accuracy) }));
  const categories = Object.entries(isDict(evaluation.per_category) ? evaluation.per_category : {})
    .filter((entry): entry is [string, Dict] => isDict(entry[1]))
    .map(([key, raw]) => ({ key, f1: num(raw.f1), support: num(raw.support) ?? 0 }));
  const beats = typeof evaluation.beats_baselines === "boolean" ? evaluation.beats_baselines : null;
  return { f1: num(evaluation.f1), accuracy: num(evaluation.accuracy), n: num(evaluation.n) ?? 0, baselines, beats, categories };
}

export const BASELINE_LABELS: Record<string, string> = {
  length: "length-only",
  position: "position-only",
  never_flag: "never flag",
  always_flag: "always flag",
};

export function fmt(x: number | null): string {
  return x === null ? "n/a" : x.toFixed(3);
}
