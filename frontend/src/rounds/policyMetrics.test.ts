import { formatEstimate, formatMetric, numbersOf, policyMetricRows, policySamples, rmWinRate } from "./policyMetrics";

test("known policy metrics come first, in order, with the win rate's interval", () => {
  const rows = policyMetricRows({
    policy: { kl_to_reference: 0.12, win_rate: 0.6, win_rate_low: 0.45, win_rate_high: 0.73, reward_new: 1.5, reward_previous: 1.1 },
  });
  expect(rows.map((r) => r.key)).toEqual(["reward_new", "reward_previous", "win_rate", "kl_to_reference"]);
  expect(rows[2]).toMatchObject({ value: 0.6, low: 0.45, high: 0.73, format: "percent" });
});

test("unknown numeric keys are shown under their own name; text, null, NaN and nested values are skipped", () => {
  const rows = policyMetricRows({
    policy: { reward_new: 1, reward_delta: 0.4, prompts: 32, note: "x", kl_to_reference: null, bad: Number.NaN, samples: [], eval_split: true },
  });
  expect(rows.map((r) => [r.key, r.label])).toEqual([
    ["reward_new", "Mean reward, new policy"],
    ["reward_delta", "reward_delta"],
  ]);
});

test("metrics without a policy section, or not an object at all, give nothing", () => {
  for (const metrics of [null, undefined, 3, "x", [], {}, { policy: [1, 2] }, { policy: "x" }]) {
    expect(policyMetricRows(metrics)).toEqual([]);
    expect(policySamples(metrics)).toEqual([]);
    expect(rmWinRate(metrics)).toBeNull();
  }
});

test("the RM win rate may come without an interval", () => {
  expect(rmWinRate({ policy: { win_rate: 0.55 } })).toEqual({ rate: 0.55, low: undefined, high: undefined });
});

test("samples keep only well-formed prompt / new / previous triples", () => {
  const samples = policySamples({
    policy: {
      samples: [{ prompt: "p", new: "<b>n</b>", previous: "o" }, { prompt: "p2", new: 3, previous: "o" }, null, "x"],
    },
  });
  expect(samples).toEqual([{ prompt: "p", new: "<b>n</b>", previous: "o" }]);
});

test("a section's numbers, skipping the rest", () => {
  expect(numbersOf({ push: { policy_vs_previous: 8, active: 20, comparisons_created: 28, batch: "r" } }, "push")).toEqual([
    ["policy_vs_previous", 8],
    ["active", 20],
    ["comparisons_created", 28],
  ]);
  expect(numbersOf({}, "push")).toEqual([]);
});

test("numbers format as percentages or to three places", () => {
  expect(formatMetric(0.6234, "percent")).toBe("62.3 %");
  expect(formatMetric(1.23456, "number")).toBe("1.235");
  expect(formatMetric(412.4, "number")).toBe("412");
  expect(formatMetric(16, "number")).toBe("16");
  expect(formatEstimate({ rate: 0.62, low: 0.481, high: 0.743 })).toBe("62.0 % (95 % CI 48.1–74.3 %)");
  expect(formatEstimate({ rate: 0.5 })).toBe("50.0 %");
});
