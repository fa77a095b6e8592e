import { render, screen, within } from "@testing-library/react";
import { AgreementHeatmap, AgreementOverTime, HEATMAP_LABEL, kappaColour, OVER_TIME_LABEL, weekRows } from "./Agreement";

const weeks = [
  { week: "2026-03-02", judgments: 10, comparisons: 5, pairable_comparisons: 5, krippendorff_alpha: 0.7805 },
  { week: "2026-03-09", judgments: 0, comparisons: 0, pairable_comparisons: 0, krippendorff_alpha: null },
  { week: "2026-03-16", judgments: 5, comparisons: 3, pairable_comparisons: 2, krippendorff_alpha: null },
];

test("weeks with too little overlap are gaps in the line, not zeros", () => {
  expect(weekRows(weeks).map((r) => r.alpha)).toEqual([0.7805, null, null]);
  render(<AgreementOverTime weeks={weeks} minComparisons={5} />);
  expect(screen.getByRole("img", { name: OVER_TIME_LABEL })).toHaveTextContent("fewer than 5 comparisons judged more than once has no alpha");
  const rows = within(screen.getByRole("table", { name: "Agreement per week" })).getAllByRole("row");
  expect(rows.slice(1).map((r) => r.textContent)).toEqual(["2026-03-020.780510", "2026-03-09too few00", "2026-03-16too few25"]);
});

test("no weeks yet: no chart", () => {
  render(<AgreementOverTime weeks={[]} minComparisons={5} />);
  expect(screen.getByText("No judgments yet.")).toBeInTheDocument();
});

const annotators = [
  { annotator_id: 1, username: "ann" },
  { annotator_id: 2, username: "<img src=x onerror=alert(1)>" },
  { annotator_id: 3, username: "cat" },
];

test("the heat map colours each pair by kappa, says kappa and n on hover, and leaves sparse pairs blank", () => {
  const pairs = [
    { first: 1, second: 2, kappa: 0.7619, shared: 5, agreement: 0.8 },
    { first: 1, second: 3, kappa: null, shared: 2, agreement: 1 },
  ];
  render(<AgreementHeatmap annotators={annotators} pairs={pairs} minShared={5} />);
  const grid = screen.getByRole("table", { name: HEATMAP_LABEL });
  expect(grid.querySelector("img")).toBeNull(); // names are text
  const [, first, second] = within(grid).getAllByRole("row");
  expect(within(first).getByRole("rowheader")).toHaveTextContent("ann");
  const cells = within(first).getAllByRole("cell");
  expect(cells.map((c) => c.textContent)).toEqual(["", "0.76", ""]);
  expect(cells[1]).toHaveAttribute("title", "ann × <img src=x onerror=alert(1)>: kappa 0.76 over 5 shared comparisons");
  expect(cells[1]).toHaveStyle({ background: kappaColour(0.7619) });
  expect(cells[2]).toHaveAttribute("title", "ann × cat: 2 shared comparisons, too few for kappa (5 needed)");
  // Symmetric, and a pair that shares nothing is blank too.
  expect(within(second).getAllByRole("cell")[0]).toHaveTextContent("0.76");
  expect(within(second).getAllByRole("cell")[2]).toHaveAttribute("title", "<img src=x onerror=alert(1)> × cat: 0 shared comparisons, too few for kappa (5 needed)");
});

test("kappa's colour runs from red below chance through white to blue", () => {
  expect(kappaColour(0)).toBe("hsl(212 65% 97%)");
  expect(kappaColour(1)).toBe("hsl(212 65% 50%)");
  expect(kappaColour(-0.5)).toBe("hsl(0 65% 74%)");
});
