import { render, screen } from "@testing-library/react";
import { IntervalChart } from "./Charts";

test("an interval chart draws a point and an error bar per estimate, named for screen readers", () => {
  render(
    <IntervalChart
      label="Win rate by round"
      series={[
        { name: "people", points: [{ x: 3, y: 0.6, low: 0.4, high: 0.8, label: "#3" }] },
        { name: "reward model", points: [{ x: 3, y: 0.7 }, { x: 5, y: 0.55, low: 0.5, high: 0.6, label: "#5" }] },
      ]}
    />,
  );
  const chart = screen.getByRole("img", { name: "Win rate by round" });
  expect(chart.querySelectorAll("circle")).toHaveLength(3);
  expect(chart.querySelectorAll("circle title")[0]).toHaveTextContent("people #3: 60.0% (95% CI 40.0–80.0%)");
  // Two error bars (the point without an interval has none) plus the three grid lines.
  expect(chart.querySelectorAll("line")).toHaveLength(5);
});

test("without points it says so", () => {
  render(<IntervalChart label="Win rate by round" series={[{ name: "people", points: [] }]} />);
  expect(screen.getByText("No win rates yet.")).toBeInTheDocument();
});
