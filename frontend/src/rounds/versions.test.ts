import type { ModelVersion } from "./types";
import { activateLabel, canActivate, downloadUrl, evalMissing, metricColumns, versionMetrics, versionsByKind } from "./versions";

const v = (id: number, kind: string, version: number) => ({ id, kind, version, status: "ready", is_active: false }) as ModelVersion;

test("versions group by kind in a fixed order, oldest first, unknown kinds last", () => {
  const groups = versionsByKind([v(1, "policy", 2), v(2, "reward", 1), v(3, "policy", 1), v(4, "value", 1)]);
  expect(groups.map((g) => [g.kind, g.versions.map((x) => x.id)])).toEqual([
    ["reward", [2]],
    ["policy", [3, 1]],
    ["value", [4]],
  ]);
  expect(versionsByKind([])).toEqual([]);
});

test("only a ready, inactive version can be activated", () => {
  expect(canActivate({ status: "ready", is_active: false })).toBe(true);
  expect(canActivate({ status: "ready", is_active: true })).toBe(false);
  expect(canActivate({ status: "failed", is_active: false })).toBe(false);
  expect(downloadUrl(7, "adapter")).toBe("/api/v1/model-versions/7/download/?part=adapter");
});

test("metric columns put the usual held-out metrics first; a policy's come from its evaluation", () => {
  const reward = (eval_: unknown) => ({ kind: "reward", metrics: { eval: eval_ } }) as unknown as ModelVersion;
  expect(metricColumns([reward({ n_pairs: 10, ece: 0.1, accuracy: 0.7, extra: 1, note: "x" }), reward(null)])).toEqual([
    "accuracy",
    "ece",
    "n_pairs",
    "extra",
  ]);
  const policy = { kind: "policy", metrics: { policy: { win_rate: 0.6 }, eval: { accuracy: 1 } } } as unknown as ModelVersion;
  expect(versionMetrics(policy)).toEqual({ win_rate: 0.6 });
  expect(evalMissing({ metrics: { eval: null, eval_missing: "no eval prompts" } } as unknown as ModelVersion)).toBe("no eval prompts");
});

test("activating an older version than the active one is called a roll back", () => {
  expect(activateLabel({ kind: "reward", version: 1 }, { version: 2 })).toBe("Roll back to reward v1");
  expect(activateLabel({ kind: "reward", version: 3 }, { version: 2 })).toBe("Activate reward v3");
  expect(activateLabel({ kind: "reward", version: 1 }, undefined)).toBe("Activate reward v1");
});
