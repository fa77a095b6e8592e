import { render, screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { type AnnotatorQuality, consistencyText, goldText, QualityTable } from "./QualityTable";

const row = (over: Partial<AnnotatorQuality>): AnnotatorQuality => ({
  annotator_id: 1,
  username: "anna",
  judgments: 40,
  median_time_ms: 6200,
  gold_judged: 10,
  gold_accuracy: 0.9,
  gold_accuracy_low: 0.596,
  gold_accuracy_high: 0.982,
  reliability: 0.91,
  weight: 0.82,
  agreement_with_consensus: 0.88,
  agreement_with_others: 0.8,
  left_share: 0.52,
  longer_share: 0.5,
  position_checks: 12,
  position_consistency: 0.75,
  position_consistency_low: 0.468,
  position_consistency_high: 0.911,
  flags: [],
  excluded: false,
  excluded_at: null,
  excluded_by: null,
  exclusion_reason: "",
  paused: false,
  paused_at: null,
  pause_reason: "",
  ...over,
});

test("each annotator's figures, flags and the exclude or restore action", async () => {
  const onExclude = vi.fn();
  const onRestore = vi.fn();
  const flagged = row({ annotator_id: 2, username: "lefty", left_share: 1, flags: [{ code: "always_left", message: "picks the left answer 100% of 30 times" }] });
  const excluded = row({ annotator_id: 3, username: "gone", excluded: true, excluded_by: "rita" });
  render(<QualityTable rows={[row({}), flagged, excluded]} onExclude={onExclude} onRestore={onRestore} onResume={vi.fn()} pending={null} />);

  const anna = screen.getByTestId("quality-anna");
  expect(anna).toHaveTextContent("6.2 s");
  expect(anna).toHaveTextContent("90 % of 10 (60 %–98 %)");
  expect(within(screen.getByTestId("quality-lefty")).getByRole("list", { name: "Flags of lefty" })).toHaveTextContent("always left");
  await userEvent.click(screen.getByRole("button", { name: "Exclude lefty" }));
  expect(onExclude).toHaveBeenCalledWith(flagged);
  expect(screen.getByTestId("quality-gone")).toHaveTextContent("excluded by rita");
  await userEvent.click(screen.getByRole("button", { name: "Restore gone" }));
  expect(onRestore).toHaveBeenCalledWith(excluded);
});

test("the button of the annotator being changed waits for the server", () => {
  render(<QualityTable rows={[row({})]} onExclude={vi.fn()} onRestore={vi.fn()} onResume={vi.fn()} pending={1} />);
  expect(screen.getByRole("button", { name: "Exclude anna" })).toBeDisabled();
});

test("gold accuracy reads as a dash without gold checks", () => {
  expect(goldText(row({ gold_judged: 0, gold_accuracy: null, gold_accuracy_low: null, gold_accuracy_high: null }))).toBe("—");
});

test("an annotator paused by the gold threshold shows why and can be resumed", async () => {
  const onResume = vi.fn();
  const paused = row({ annotator_id: 4, username: "pat", paused: true, pause_reason: "Your answers on gold checks are right 40% of the time" });
  render(<QualityTable rows={[row({}), paused]} onExclude={vi.fn()} onRestore={vi.fn()} onResume={onResume} pending={null} />);
  expect(screen.getByTestId("quality-anna")).toHaveTextContent("active");
  expect(screen.queryByRole("button", { name: "Resume anna" })).toBeNull();
  expect(within(screen.getByTestId("quality-pat")).getByTitle(/right 40% of the time/)).toHaveTextContent("paused");
  await userEvent.click(screen.getByRole("button", { name: "Resume pat" }));
  expect(onResume).toHaveBeenCalledWith(paused);
});

test("position consistency shows in its column with its interval, and a dash without checks", () => {
  const swapped = row({ annotator_id: 5, username: "sam", position_checks: 0, position_consistency: null, position_consistency_low: null, position_consistency_high: null });
  render(<QualityTable rows={[row({}), swapped]} onExclude={vi.fn()} onRestore={vi.fn()} onResume={vi.fn()} pending={null} />);
  const column = screen.getAllByRole("columnheader").findIndex((th) => th.textContent?.startsWith("Position consistency"));
  expect(column).toBeGreaterThan(0);
  const cell = (name: string) => screen.getByTestId(`quality-${name}`).children[column];
  expect(cell("anna")).toHaveTextContent("75 % of 12 (47 %–91 %)");
  expect(cell("sam")).toHaveTextContent("—");
  expect(consistencyText(swapped)).toBe("—");
});
