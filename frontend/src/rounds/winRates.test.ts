import type { Round } from "./types";
import { winRateHistory } from "./winRates";

const round = (id: number, over: Partial<Round>) => ({ id, kind: "policy", metrics: {}, human_win_rate: null, ...over }) as Round;

test("policy rounds with a rate, oldest first, people next to the reward model", () => {
  const history = winRateHistory([
    round(9, { human_win_rate: { wins: 6, losses: 3, ties: 1, n: 10, rate: 0.65, low: 0.35, high: 0.85 } }),
    round(8, { kind: "reward", metrics: { policy: { win_rate: 0.9 } } }),
    round(7, { metrics: { policy: { win_rate: 0.7, win_rate_low: 0.6, win_rate_high: 0.8 } } }),
    round(5, {}),
  ]);
  expect(history).toEqual([
    { round: 7, human: null, rm: { rate: 0.7, low: 0.6, high: 0.8 } },
    { round: 9, human: { rate: 0.65, low: 0.35, high: 0.85, n: 10 }, rm: null },
  ]);
});
