/** The rounds, newest first: one row each (status, current phase, steps, progress, cancel for admins), and for a
 * policy round that got as far as evaluating, a second row with what it found. */
import { Progress } from "../components/Charts";
import { BASELINE_LABELS, fmt, rewardEvaluation } from "./heldOut";
import { PolicyMetrics } from "./PolicyMetrics";
import { asRecord } from "./policyMetrics";
import { RoundSteps } from "./RoundSteps";
import { isLive } from "./steps";
import type { Round } from "./types";

export function RoundsTable({ rounds, isAdmin, onCancel }: { rounds: Round[]; isAdmin: boolean; onCancel: (roundId: number) => void }) {
  const columns = isAdmin ? 6 : 5;
  return (
    <table className="rounds">
      <thead>
        <tr>
          <th scope="col">Round</th>
          <th scope="col">Status</th>
          <th scope="col">Steps</th>
          <th scope="col">Progress</th>
          <th scope="col">RM accuracy</th>
          {isAdmin && <th scope="col" aria-label="Actions" />}
        </tr>
      </thead>
      <tbody>
        {rounds.flatMap((round) => {
          const evaluation = rewardEvaluation(round.metrics);
          // Why the reward model was not evaluated (training.steps.reward writes it when nothing was held out).
          const evalMissing = asRecord(round.metrics)?.eval_missing;
          const weighting = asRecord(asRecord(round.metrics)?.weighting)?.summary;
          const rows = [
            <tr key={round.id} data-testid={`round-${round.id}`} className={round.status === "running" ? "live" : undefined}>
              <td>
                #{round.id} <span className="hint">{round.kind}</span>
              </td>
              <td>
                {round.status}
                {round.cancel_requested && isLive(round) ? " (cancelling)" : ""}
                {round.status === "failed" && round.error && !round.steps.some((s) => s.status === "failed") && (
                  <span className="error"> — {round.error}</span>
                )}
              </td>
              <td>
                {/* The phase within the current step ("generating with the new policy", "training"…). */}
                {isLive(round) && <div data-testid={`round-phase-${round.id}`}>{round.step || "—"}</div>}
                <RoundSteps round={round} />
                {!isLive(round) && !round.steps.length && (round.step || "—")}
              </td>
              <td>
                <Progress value={round.progress} label={`Round ${round.id}`} />
              </td>
              <td>
                {evaluation ? fmt(evaluation.accuracy) : "—"}
                {evaluation?.ci && <span className="hint"> [{fmt(evaluation.ci[0])}–{fmt(evaluation.ci[1])}]</span>}
                {evaluation?.unbeaten.map((b) => (
                  <div key={b.name} className="flag">
                    not above {BASELINE_LABELS[b.name] ?? b.name} ({b.rule}) {fmt(b.accuracy)}
                  </div>
                ))}
                {typeof evalMissing === "string" && <div className="hint">No held-out pairs: {evalMissing}</div>}
                {/* Which annotator weighting the reward model trained with, and whom it excluded (label quality). */}
                {typeof weighting === "string" && (
                  <div className="hint" data-testid={`round-weighting-${round.id}`}>
                    {weighting}
                  </div>
                )}
              </td>
              {isAdmin && (
                <td>
                  {isLive(round) && (
                    <button type="button" onClick={() => onCancel(round.id)} disabled={round.cancel_requested}>
                      Cancel round {round.id}
                    </button>
                  )}
                </td>
              )}
            </tr>,
          ];
          if (round.kind === "policy" && hasPolicyResults(round)) {
            rows.push(
              // Named by aria-label so that a search for the round's row ("#12") finds only the row above.
              <tr key={`${round.id}-results`} className="round-results" aria-label={`Results of policy round ${round.id}`}>
                <td colSpan={columns}>
                  <PolicyMetrics round={round} />
                </td>
              </tr>,
            );
          }
          return rows;
        })}
      </tbody>
    </table>
  );
}

function hasPolicyResults(round: Round): boolean {
  return round.human_win_rate !== null || asRecord(round.metrics)?.policy !== undefined || round.status === "succeeded";
}
