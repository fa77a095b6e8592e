import { render, screen, within } from "@testing-library/react";
import type { Round } from "./types";
import { WIN_RATE_CHART_LABEL, WinRateChart } from "./WinRateChart";

const round = (id: number, over: Partial<Round>) => ({ id, kind: "policy", metrics: {}, human_win_rate: null, ...over }) as Round;

test("people's and the reward model's win rates over rounds, as a chart and as a table", () => {
  render(
    <WinRateChart
      rounds={[
        round(4, {
          metrics: { policy: { win_rate: 0.7, win_rate_low: 0.6, win_rate_high: 0.8 } },
          human_win_rate: { wins: 6, losses: 3, ties: 1, n: 10, rate: 0.65, low: 0.354, high: 0.848 },
        }),
        round(2, { metrics: { policy: { win_rate: 0.55 } } }),
        round(1, { kind: "reward", metrics: { eval: { accuracy: 0.7 } } }),
      ]}
    />,
  );
  const chart = screen.getByRole("img", { name: WIN_RATE_CHART_LABEL });
  expect(chart.querySelectorAll("circle")).toHaveLength(3);
  const rows = within(screen.getByRole("table", { name: "Win rates by policy round" })).getAllByRole("row");
  expect(rows.slice(1).map((r) => r.textContent)).toEqual([
    "Round 2no human votes yet055.0 %",
    "Round 465.0 % (95 % CI 35.4–84.8 %)1070.0 % (95 % CI 60.0–80.0 %)",
  ]);
});

test("no policy round with a rate: no chart", () => {
  const { container } = render(<WinRateChart rounds={[round(1, { kind: "reward" })]} />);
  expect(container).toBeEmptyDOMElement();
});
