/** The policy rounds' win rates over time, for the chart and its table: people's verdict next to the RM's. */
import { type Estimate, rmWinRate } from "./policyMetrics";
import type { Round } from "./types";

export type WinRatePoint = { round: number; human: (Estimate & { n: number }) | null; rm: Estimate | null };

/** Oldest first; only policy rounds that have at least one of the two rates. */
export function winRateHistory(rounds: Round[]): WinRatePoint[] {
  return rounds
    .filter((r) => r.kind === "policy")
    .map((r) => ({
      round: r.id,
      human: r.human_win_rate ? { rate: r.human_win_rate.rate, low: r.human_win_rate.low, high: r.human_win_rate.high, n: r.human_win_rate.n } : null,
      rm: rmWinRate(r.metrics),
    }))
    .filter((p) => p.human || p.rm)
    .sort((a, b) => a.round - b.round);
}
