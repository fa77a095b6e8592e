import { render, screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { PolicyMetrics } from "./PolicyMetrics";

const metrics = {
  policy: {
    reward_new: 1.42,
    reward_previous: 1.1,
    win_rate: 0.62,
    win_rate_low: 0.48,
    win_rate_high: 0.74,
    kl_to_reference: 0.031,
    mean_tokens_new: 87.5,
    samples: [{ prompt: "Say hi", new: '<img src=x onerror="alert(1)">hello', previous: "<script>alert(2)</script>hi" }],
  },
  push: { policy_vs_previous: 8, active: 20, comparisons_created: 28 },
};

test("the reward model's figures and people's win rate with its interval and n", () => {
  render(
    <PolicyMetrics round={{ id: 7, metrics, human_win_rate: { wins: 6, losses: 3, ties: 1, n: 10, rate: 0.65, low: 0.354, high: 0.848 } }} />,
  );
  const table = screen.getByRole("table", { name: "Reward model's evaluation of round 7's policy" });
  expect(within(table).getByRole("row", { name: /Mean reward, new policy/ })).toHaveTextContent("1.420");
  expect(within(table).getByRole("row", { name: /RM win rate/ })).toHaveTextContent("62.0 % (95 % CI 48.0–74.0 %)");
  expect(within(table).getByRole("row", { name: /KL/ })).toHaveTextContent("0.031");
  expect(within(table).getByRole("row", { name: /Mean length \(tokens\)/ })).toHaveTextContent("87.500");
  expect(screen.getByTestId("human-win-rate-7")).toHaveTextContent("65.0 % (95 % CI 35.4–84.8 %), n = 10 (6 wins, 3 losses, 1 ties)");
  expect(screen.getByText(/Pushed for people to judge/)).toHaveTextContent("comparisons_created 28");
});

test("before anyone votes it says so", () => {
  render(<PolicyMetrics round={{ id: 8, metrics: {}, human_win_rate: null }} />);
  expect(screen.getByTestId("human-win-rate-8")).toHaveTextContent("no human votes yet");
  expect(screen.queryByRole("table")).toBeNull();
});

test("sample generations open and show model output as text, never as HTML", async () => {
  // A native <details>: the browser opens it from the keyboard too (the browser test presses Enter on it).
  const { container } = render(<PolicyMetrics round={{ id: 7, metrics, human_win_rate: null }} />);
  const summary = screen.getByText("Sample generations of round 7 (1)");
  await userEvent.click(summary);
  expect(summary.closest("details")).toHaveAttribute("open");
  const sample = screen.getByRole("article", { name: "Sample 1" });
  expect(within(sample).getByRole("region", { name: "New policy" })).toHaveTextContent('<img src=x onerror="alert(1)">hello');
  expect(within(sample).getByRole("region", { name: "Previous policy" })).toHaveTextContent("<script>alert(2)</script>hi");
  expect(container.querySelector("img, script")).toBeNull();
});
