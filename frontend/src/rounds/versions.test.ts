import type { ModelVersion } from "./types";
import { canActivate, downloadUrl, versionsByKind } from "./versions";

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
