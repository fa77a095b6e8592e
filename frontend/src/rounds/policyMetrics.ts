/**
 * Reading a policy round's metrics (``Round.metrics.policy``, written by ``training.ml.policy_eval.evaluate_policy``)
 * defensively: every known key lives in POLICY_METRICS, any other number is shown under its raw name, and anything
 * that is not a finite number is skipped.
 */

export type MetricFormat = "percent" | "number";

/** The reward model's evaluation of the new policy against the previous one (``metrics.policy``), in the order
 * shown. ``interval`` names the keys of a 95 % interval around the value, when the server sends one. */
export const POLICY_METRICS: readonly { key: string; label: string; format: MetricFormat; interval?: [string, string] }[] = [
  { key: "reward_new", label: "Mean reward, new policy", format: "number" },
  { key: "reward_previous", label: "Mean reward, previous policy", format: "number" },
  { key: "reward_gain", label: "Reward gain", format: "number" },
  { key: "win_rate", label: "RM win rate, new vs previous", format: "percent", interval: ["win_rate_low", "win_rate_high"] },
  { key: "kl_to_reference", label: "KL to the reference (per answer)", format: "number" },
  { key: "mean_tokens_new", label: "Mean length (tokens)", format: "number" },
  { key: "mean_chars_new", label: "Mean length (characters)", format: "number" },
  { key: "mean_chars_previous", label: "Mean length of the previous policy (characters)", format: "number" },
];

/** Numbers under ``metrics.policy`` that describe the run, not the policy: shown elsewhere or not at all. */
const NOT_A_METRIC = new Set(["prompts", "n", "kl_std_error"]);

export type MetricRow = { key: string; label: string; value: number; format: MetricFormat; low?: number; high?: number };
export type Sample = { prompt: string; new: string; previous: string };
export type Estimate = { rate: number; low?: number; high?: number };

export function asRecord(value: unknown): Record<string, unknown> | null {
  return value !== null && typeof value === "object" && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
}

function finite(value: unknown): number | undefined {
  return typeof value === "number" && Number.isFinite(value) ? value : undefined;
}

/** The known metrics first (those present), then every other finite number under its own name. */
export function policyMetricRows(metrics: unknown): MetricRow[] {
  const policy = asRecord(asRecord(metrics)?.policy);
  if (!policy) return [];
  const rows: MetricRow[] = [];
  const used = new Set<string>(NOT_A_METRIC);
  for (const spec of POLICY_METRICS) {
    used.add(spec.key);
    spec.interval?.forEach((k) => used.add(k));
    const value = finite(policy[spec.key]);
    if (value === undefined) continue;
    const [low, high] = spec.interval ? spec.interval.map((k) => finite(policy[k])) : [];
    rows.push({ key: spec.key, label: spec.label, value, format: spec.format, low, high });
  }
  for (const [key, raw] of Object.entries(policy)) {
    const value = finite(raw);
    if (value !== undefined && !used.has(key)) rows.push({ key, label: key, value, format: "number" });
  }
  return rows;
}

/** The reward model's win rate of the new policy (with its interval when present), or null. */
export function rmWinRate(metrics: unknown): Estimate | null {
  const row = policyMetricRows(metrics).find((r) => r.key === "win_rate");
  return row ? { rate: row.value, low: row.low, high: row.high } : null;
}

/** The sample generations (untrusted model output: callers render them as text only). Malformed entries are
 * dropped rather than shown half-empty. */
export function policySamples(metrics: unknown): Sample[] {
  const samples = asRecord(asRecord(metrics)?.policy)?.samples;
  if (!Array.isArray(samples)) return [];
  return samples.flatMap((item) => {
    const s = asRecord(item);
    return s && typeof s.prompt === "string" && typeof s.new === "string" && typeof s.previous === "string"
      ? [{ prompt: s.prompt, new: s.new, previous: s.previous }]
      : [];
  });
}

/** The finite numbers of one section of the metrics (``generation``, ``push``…), as [key, value] pairs. */
export function numbersOf(metrics: unknown, section: string): [string, number][] {
  const part = asRecord(asRecord(metrics)?.[section]);
  if (!part) return [];
  return Object.entries(part).flatMap(([key, raw]) => {
    const value = finite(raw);
    return value === undefined ? [] : [[key, value] as [string, number]];
  });
}

export function formatMetric(value: number, format: MetricFormat): string {
  if (format === "percent") return `${(value * 100).toFixed(1)} %`;
  // Counts (prompts, tokens) stay whole; measured values get three places, or none once they are large.
  return Number.isInteger(value) ? String(value) : Math.abs(value) >= 100 ? value.toFixed(0) : value.toFixed(3);
}

/** "62.0 % (95 % CI 48.1–74.3 %)", or just the rate when there is no interval. */
export function formatEstimate({ rate, low, high }: Estimate): string {
  const pct = (v: number) => (v * 100).toFixed(1);
  return low !== undefined && high !== undefined ? `${pct(rate)} % (95 % CI ${pct(low)}–${pct(high)} %)` : `${pct(rate)} %`;
}
