/** The annotator's own gold standing on the labelling page: the server's warning when their gold accuracy is
 * clearly below the project's warn threshold (they can keep working), and their own accuracy where the project
 * shows it. Both come from me/work, which only ever holds the annotator's own figures. */
import type { WorkRow } from "../api/client";

export function GoldBanner({ row }: { row: Pick<WorkRow, "gold_warning" | "gold"> | undefined }) {
  if (!row || (!row.gold_warning && !row.gold)) return null;
  const pct = (value: number) => `${Math.round(value * 100)} %`;
  return (
    <aside className={row.gold_warning ? "gold-banner warning" : "gold-banner"} role="status" aria-label="Your gold accuracy" data-testid="gold-banner">
      {row.gold_warning && (
        <p>
          <strong>Gold checks:</strong> {row.gold_warning} You can keep labelling; the guidelines say what is expected.
        </p>
      )}
      {row.gold && (
        <p className="hint">
          Your gold accuracy: {pct(row.gold.accuracy)} of {row.gold.judged} check{row.gold.judged === 1 ? "" : "s"} (
          {`${pct(row.gold.low)}–${pct(row.gold.high)} at 95 %`})
        </p>
      )}
    </aside>
  );
}
