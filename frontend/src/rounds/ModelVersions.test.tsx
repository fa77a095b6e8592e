import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { render, screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import type { ReactNode } from "react";
import { ModelVersions } from "./ModelVersions";
import type { ModelVersion } from "./types";

const wrapper = ({ children }: { children: ReactNode }) => <QueryClientProvider client={new QueryClient()}>{children}</QueryClientProvider>;
const version = (id: number, kind: string, n: number, over: Partial<ModelVersion> = {}) =>
  ({ id, kind, version: n, status: "ready", is_active: false, judgment_count: 10, metrics: {}, ...over }) as ModelVersion;

const versions = [
  version(1, "reward", 1, { metrics: { eval: { accuracy: 0.6, member_accuracy: 0.59, ece: 0.05 } } }),
  version(2, "reward", 2, { is_active: true, metrics: { eval: { accuracy: 0.7, member_accuracy: 0.69, ece: 0.04 } } }),
  version(3, "policy", 1),
  version(4, "policy", 2, { is_active: true }),
  version(5, "policy", 3, { status: "failed" }),
];

test("versions are grouped by kind with their metrics side by side; admins activate or roll back", async () => {
  const onActivate = vi.fn();
  render(<ModelVersions versions={versions} isAdmin={true} onActivate={onActivate} onSample={vi.fn()} />, { wrapper });
  const reward = screen.getByRole("region", { name: "reward model versions" });
  expect(within(reward).getByRole("img", { name: "Held-out metrics by model version" }).querySelectorAll("circle")).toHaveLength(6);
  const table = within(reward).getByRole("table", { name: "reward versions and their metrics" });
  expect(within(table).getAllByRole("columnheader").map((h) => h.textContent)).toEqual(["Version", "Status", "Judgments", "accuracy", "member accuracy", "ece", ""]);
  expect(within(table).getAllByTestId(/^version-/).map((r) => [...r.children].slice(0, 6).map((c) => c.textContent))).toEqual([
    ["reward v2", "ready, active", "10", "0.700", "0.690", "0.040"],
    ["reward v1", "ready", "10", "0.600", "0.590", "0.050"],
  ]);
  const policies = screen.getByRole("region", { name: "policy model versions" });
  expect(within(policies).getAllByRole("rowheader").map((h) => h.textContent)).toEqual(["policy v3", "policy v2", "policy v1"]);
  expect(within(policies).getAllByRole("button", { name: /Activate|Roll back/ }).map((b) => b.textContent)).toEqual(["Roll back to policy v1"]);
  await userEvent.click(screen.getByRole("button", { name: "Roll back to policy v1" }));
  expect(onActivate).toHaveBeenCalledWith(3);
  expect(screen.getByRole("button", { name: "Roll back to reward v1" })).toBeInTheDocument();
});

test("a version with no held-out metrics says why", () => {
  const reason = "none of the 4 judged prompts is marked 'eval'";
  render(
    <ModelVersions versions={[version(7, "reward", 1, { metrics: { eval: null, eval_missing: reason } })]} isAdmin={false} onActivate={vi.fn()} onSample={vi.fn()} />,
    { wrapper },
  );
  expect(screen.getByTestId("version-7")).toHaveTextContent(`No held-out metrics: ${reason}`);
});

test("ready policies offer their weights and a sampler; researchers get no activate button", () => {
  render(<ModelVersions versions={versions} isAdmin={false} onActivate={vi.fn()} onSample={vi.fn()} />, { wrapper });
  expect(screen.queryByRole("button", { name: /Activate/ })).toBeNull();
  const merged = screen.getByRole("link", { name: "Download policy v2 (merged)" });
  expect(merged).toHaveAttribute("href", "/api/v1/model-versions/4/download/?part=merged");
  expect(merged).toHaveAttribute("download");
  expect(screen.getByRole("link", { name: "Download policy v2 (adapter)" })).toHaveAttribute("href", "/api/v1/model-versions/4/download/?part=adapter");
  expect(screen.queryByRole("link", { name: /policy v3/ })).toBeNull(); // failed: nothing to download
  expect(screen.getByText("Try policy v1")).toBeInTheDocument();
});

test("no versions yet", () => {
  render(<ModelVersions versions={[]} isAdmin={true} onActivate={vi.fn()} onSample={vi.fn()} />, { wrapper });
  expect(screen.getByText("No model versions yet.")).toBeInTheDocument();
});

test("a reward model that does not beat preferring the shorter answer is flagged beside its interval", () => {
  const evaluated = (id: number, n: number, accuracy: number, ci: [number, number]) =>
    version(id, "reward", n, {
      metrics: {
        eval: {
          accuracy,
          accuracy_ci: ci,
          n_decided: 115,
          baselines: { length: { rule: "shorter", accuracy: 0.617, model_accuracy: accuracy, n: 115 }, position: null },
          beats_baselines: accuracy > 0.617,
        },
      },
    });
  render(
    <ModelVersions versions={[evaluated(1, 1, 0.574, [0.483, 0.66]), evaluated(2, 2, 0.7, [0.61, 0.77])]} isAdmin={false} onActivate={vi.fn()} onSample={vi.fn()} />,
    { wrapper },
  );
  const weak = screen.getByRole("generic", { name: "reward v1 held-out evaluation" });
  expect(weak).toHaveTextContent("Held-out accuracy 0.574 (95 % interval 0.483–0.660) on 115 pairs · length-only (shorter) 0.617");
  expect(within(weak).getByRole("alert")).toHaveTextContent("Does not beat length-only (prefer the shorter: 0.617 vs 0.574)");
  const strong = screen.getByRole("generic", { name: "reward v2 held-out evaluation" });
  expect(within(strong).queryByRole("alert")).toBeNull();
});

test("a span model shows never/always flagging beside its F1, per-category support, and a flag when below them", () => {
  const span = version(7, "span", 1, {
    metrics: {
      eval: {
        n: 1000,
        f1: 0.107,
        accuracy: 0.921,
        baselines: { never_flag: { f1: 0, accuracy: 0.931 }, always_flag: { f1: 0.129, accuracy: 0.069 } },
        beats_baselines: false,
        per_category: { irrelevant: { f1: 0.2, support: 40 }, incorrect: { f1: null, support: 0 } },
      },
    },
  });
  render(<ModelVersions versions={[span]} isAdmin={false} onActivate={vi.fn()} onSample={vi.fn()} />, { wrapper });
  const held = screen.getByRole("generic", { name: "span v1 held-out evaluation" });
  expect(held).toHaveTextContent("Held-out F1 0.107, accuracy 0.921 on 1000 decisions · never flag: F1 0.000, accuracy 0.931 · always flag: F1 0.129");
  expect(within(held).getByRole("alert")).toHaveTextContent("Does not beat never or always flagging on F1");
  expect(within(held).getAllByRole("row").map((r) => r.textContent)).toEqual(["categoryF1support", "irrelevant0.20040", "incorrectn/a0"]);
});
