/** The per-annotator label-quality table: volume, speed, gold accuracy with its 95 % interval, reliability,
 * agreement, one-sidedness, position-check consistency with its 95 % interval, flags, the researcher's exclude / restore action, and resume for an annotator paused by
 * the project's gold threshold. Presentational: the panel
 * around it owns the server state. */
import type { Schemas } from "../api/client";

export type AnnotatorQuality = Schemas["AnnotatorQuality"];

export function QualityTable({
  rows,
  onExclude,
  onRestore,
  onResume,
  pending,
}: {
  rows: AnnotatorQuality[];
  onExclude: (row: AnnotatorQuality) => void;
  onRestore: (row: AnnotatorQuality) => void;
  onResume: (row: AnnotatorQuality) => void;
  pending: number | null;
}) {
  if (!rows.length) return <p className="hint">No figures yet: they are computed once enough judgments have arrived.</p>;
  return (
    <table className="quality">
      <thead>
        <tr>
          <th scope="col">Annotator</th>
          <th scope="col">Judgments</th>
          <th scope="col">Median time</th>
          <th scope="col">Gold accuracy (95 % interval)</th>
          <th scope="col">Reliability</th>
          <th scope="col">Agreement with consensus</th>
          <th scope="col">Picks left</th>
          <th scope="col" title="Comparisons served again later with the candidates swapped: how often the answer stayed the same">
            Position consistency (95 % interval)
          </th>
          <th scope="col">Flags</th>
          <th scope="col">Labelling</th>
          <th scope="col">Training</th>
        </tr>
      </thead>
      <tbody>
        {rows.map((row) => (
          <tr key={row.annotator_id} data-testid={`quality-${row.username}`} className={row.excluded ? "excluded" : undefined}>
            <th scope="row">{row.username}</th>
            <td>{row.judgments}</td>
            <td>{row.median_time_ms === null ? "—" : `${(row.median_time_ms / 1000).toFixed(1)} s`}</td>
            <td>{goldText(row)}</td>
            <td>{fraction(row.reliability)}</td>
            <td>{percent(row.agreement_with_consensus)}</td>
            <td>{percent(row.left_share)}</td>
            <td>{consistencyText(row)}</td>
            <td>
              {row.flags.length ? (
                <ul aria-label={`Flags of ${row.username}`}>
                  {row.flags.map((flag) => (
                    <li key={flag.code} title={flag.message}>
                      {flag.code.replaceAll("_", " ")}: {flag.message}
                    </li>
                  ))}
                </ul>
              ) : (
                "—"
              )}
            </td>
            <td>
              {row.paused ? (
                <>
                  <span title={row.pause_reason}>paused (low gold accuracy)</span>{" "}
                  <button type="button" onClick={() => onResume(row)} disabled={pending === row.annotator_id}>
                    Resume {row.username}
                  </button>
                </>
              ) : (
                "active"
              )}
            </td>
            <td>
              {row.excluded ? (
                <>
                  <span>excluded{row.excluded_by ? ` by ${row.excluded_by}` : ""}</span>{" "}
                  <button type="button" onClick={() => onRestore(row)} disabled={pending === row.annotator_id}>
                    Restore {row.username}
                  </button>
                </>
              ) : (
                <button type="button" onClick={() => onExclude(row)} disabled={pending === row.annotator_id}>
                  Exclude {row.username}
                </button>
              )}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function goldText(row: Pick<AnnotatorQuality, "gold_judged" | "gold_accuracy" | "gold_accuracy_low" | "gold_accuracy_high">): string {
  return shareText(row.gold_accuracy, row.gold_judged, row.gold_accuracy_low, row.gold_accuracy_high);
}

export function consistencyText(
  row: Pick<AnnotatorQuality, "position_checks" | "position_consistency" | "position_consistency_low" | "position_consistency_high">,
): string {
  return shareText(row.position_consistency, row.position_checks, row.position_consistency_low, row.position_consistency_high);
}

/** "90 % of 10 (60 %–98 %)": a share of n with its interval; a dash without any. */
function shareText(share: number | null, n: number, low: number | null, high: number | null): string {
  if (!n || share === null) return "—";
  const range = low !== null && high !== null ? ` (${percent(low)}–${percent(high)})` : "";
  return `${percent(share)} of ${n}${range}`;
}

function percent(value: number | null): string {
  return value === null ? "—" : `${Math.round(value * 100)} %`;
}

function fraction(value: number | null): string {
  return value === null ? "—" : value.toFixed(2);
}
