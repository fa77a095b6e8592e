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
  expect(within(table).getAllByRole("row").slice(1).map((r) => [...r.children].slice(0, 6).map((c) => c.textContent))).toEqual([
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
