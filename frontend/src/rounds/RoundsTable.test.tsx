import { render, screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { RoundsTable } from "./RoundsTable";
import type { Round } from "./types";

const round = (id: number, over: Partial<Round>) =>
  ({ id, kind: "reward", status: "succeeded", step: "", steps: [], progress: 1, metrics: {}, error: "", human_win_rate: null, cancel_requested: false, ...over }) as Round;

test("a live round shows its phase, steps and progress; admins can cancel it", async () => {
  const onCancel = vi.fn();
  render(
    <RoundsTable
      isAdmin={true}
      onCancel={onCancel}
      rounds={[
        round(12, {
          kind: "policy",
          status: "running",
          step: "generating",
          progress: 0.3,
          steps: [
            { name: "reward", status: "succeeded", seconds: 4 },
            { name: "generate", status: "running" },
            { name: "score", status: "pending" },
          ],
        }),
        round(11, { metrics: { eval: { accuracy: 0.712 } } }),
      ]}
    />,
  );
  const live = screen.getByRole("row", { name: /#12/ });
  expect(within(live).getByTestId("round-phase-12")).toHaveTextContent("generating");
  expect(within(live).getByRole("list", { name: "Steps of round 12" })).toBeInTheDocument();
  expect(within(live).getByRole("progressbar", { name: "Round 12" })).toHaveAttribute("value", "0.3");
  // Not evaluated yet: no results row.
  expect(screen.queryByRole("row", { name: "Results of policy round 12" })).toBeNull();
  await userEvent.click(within(live).getByRole("button", { name: "Cancel round 12" }));
  expect(onCancel).toHaveBeenCalledWith(12);
  const done = screen.getByRole("row", { name: /#11/ });
  expect(done).toHaveTextContent("0.712");
  expect(within(done).queryByRole("button")).toBeNull();
});

test("a finished policy round gets a results row; researchers get no cancel button", () => {
  render(
    <RoundsTable
      isAdmin={false}
      onCancel={vi.fn()}
      rounds={[
        round(13, { kind: "policy", status: "running", steps: [{ name: "reward", status: "running" }] }),
        round(12, { kind: "policy", metrics: { policy: { win_rate: 0.6 } } }),
      ]}
    />,
  );
  expect(screen.queryByRole("button", { name: /Cancel/ })).toBeNull();
  const results = screen.getByRole("row", { name: "Results of policy round 12" });
  expect(within(results).getByTestId("human-win-rate-12")).toHaveTextContent("no human votes yet");
  expect(screen.getAllByRole("row", { name: /#12/ })).toHaveLength(1);
});

test("a failed round names its error on the failed step", () => {
  render(
    <RoundsTable
      isAdmin={true}
      onCancel={vi.fn()}
      rounds={[round(9, { kind: "policy", status: "failed", error: "out of memory", steps: [{ name: "optimise", status: "failed", seconds: 2 }] })]}
    />,
  );
  const row = screen.getByRole("row", { name: /#9/ });
  expect(within(row).getByRole("listitem")).toHaveTextContent("optimise failed 2 s — out of memory");
  expect(row.textContent?.match(/out of memory/g)).toHaveLength(1);
});

test("a round that held out nothing says why in its accuracy cell", () => {
  const reason = "none of the 12 judged prompts is marked 'eval'";
  render(<RoundsTable isAdmin={false} onCancel={vi.fn()} rounds={[round(13, { metrics: { eval: null, eval_missing: reason } })]} />);
  expect(screen.getByRole("row", { name: /#13/ })).toHaveTextContent(`No held-out pairs: ${reason}`);
});

test("a round's reward accuracy shows its interval and says when preferring the shorter answer does as well", () => {
  const baselines = (model: number) => ({ length: { rule: "shorter", accuracy: 0.617, model_accuracy: model, n: 115 }, position: null });
  render(
    <RoundsTable
      isAdmin={false}
      onCancel={vi.fn()}
      rounds={[
        round(21, { metrics: { eval: { accuracy: 0.574, accuracy_ci: [0.483, 0.66], baselines: baselines(0.574) } } }),
        round(22, { metrics: { eval: { accuracy: 0.7, accuracy_ci: [0.61, 0.77], baselines: baselines(0.7) } } }),
      ]}
    />,
  );
  expect(screen.getByRole("row", { name: /#21/ })).toHaveTextContent("0.574 [0.483–0.660]not above length-only (shorter) 0.617");
  const good = screen.getByRole("row", { name: /#22/ });
  expect(good).toHaveTextContent("0.700 [0.610–0.770]");
  expect(good).not.toHaveTextContent("not above");
});

test("a round says which annotator weighting its reward model used", () => {
  render(<RoundsTable isAdmin={false} onCancel={vi.fn()} rounds={[round(5, { metrics: { eval: { accuracy: 0.7 }, weighting: { summary: "uniform + exclusions: excluded lefty" } } })]} />);
  expect(screen.getByTestId("round-weighting-5")).toHaveTextContent("excluded lefty");
});
