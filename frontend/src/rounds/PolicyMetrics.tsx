/** What a policy round found: the reward model's view of the new policy against the previous one, people's
 * verdict on the pushed head-to-head, and a few generations to read (as plain text: untrusted model output). */
import { formatEstimate, formatMetric, numbersOf, policyMetricRows, policySamples } from "./policyMetrics";
import type { Round } from "./types";

export function PolicyMetrics({ round }: { round: Pick<Round, "id" | "metrics" | "human_win_rate"> }) {
  const rows = policyMetricRows(round.metrics);
  const push = numbersOf(round.metrics, "push");
  const generation = numbersOf(round.metrics, "generation");
  return (
    <div className="policy-metrics">
      <HumanWinRate round={round} />
      {rows.length > 0 && (
        <table aria-label={`Reward model's evaluation of round ${round.id}'s policy`}>
          <tbody>
            {rows.map((row) => (
              <tr key={row.key}>
                <th scope="row">{row.label}</th>
                <td data-testid={`policy-metric-${row.key}`}>
                  {row.format === "percent" ? formatEstimate({ rate: row.value, low: row.low, high: row.high }) : formatMetric(row.value, row.format)}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {generation.length > 0 && <p className="hint">Generation: {generation.map(([k, v]) => `${k} ${formatMetric(v, "number")}`).join(", ")}</p>}
      {push.length > 0 && <p className="hint">Pushed for people to judge: {push.map(([k, v]) => `${k} ${v}`).join(", ")}</p>}
      <PolicySamples round={round} />
    </div>
  );
}

function HumanWinRate({ round }: { round: Pick<Round, "id" | "human_win_rate"> }) {
  const rate = round.human_win_rate;
  if (!rate) return <p data-testid={`human-win-rate-${round.id}`}>Human win rate: no human votes yet.</p>;
  return (
    <p data-testid={`human-win-rate-${round.id}`}>
      Human win rate, new vs previous: <strong>{formatEstimate(rate)}</strong>, n = {rate.n} ({rate.wins} wins, {rate.losses} losses,{" "}
      {rate.ties} ties)
    </p>
  );
}

/** <details> rather than a custom toggle: keyboard and screen-reader support come with the element. */
function PolicySamples({ round }: { round: Pick<Round, "id" | "metrics"> }) {
  const samples = policySamples(round.metrics);
  if (!samples.length) return null;
  return (
    <details className="samples">
      <summary>
        Sample generations of round {round.id} ({samples.length})
      </summary>
      {samples.map((sample, i) => (
        <article key={i} className="sample" aria-label={`Sample ${i + 1}`}>
          <h4>Prompt</h4>
          <p className="plain">{sample.prompt}</p>
          <div className="sample-pair">
            <section aria-label="New policy">
              <h4>New policy</h4>
              <p className="plain">{sample.new}</p>
            </section>
            <section aria-label="Previous policy">
              <h4>Previous policy</h4>
              <p className="plain">{sample.previous}</p>
            </section>
          </div>
        </article>
      ))}
    </details>
  );
}
