/** People's win rate of each policy round's new policy next to the reward model's, with 95 % intervals; the same
 * figures as a table for those who do not read the chart. */
import { IntervalChart } from "../components/Charts";
import { formatEstimate } from "./policyMetrics";
import type { Round } from "./types";
import { winRateHistory } from "./winRates";

export const WIN_RATE_CHART_LABEL = "Win rate of each policy round's new policy over the previous one";

export function WinRateChart({ rounds }: { rounds: Round[] }) {
  const history = winRateHistory(rounds);
  if (!history.length) return null;
  const label = (round: number) => `#${round}`;
  const series = [
    {
      name: "people",
      points: history.flatMap((p) => (p.human ? [{ x: p.round, y: p.human.rate, low: p.human.low, high: p.human.high, label: label(p.round) }] : [])),
    },
    {
      name: "reward model",
      points: history.flatMap((p) => (p.rm ? [{ x: p.round, y: p.rm.rate, low: p.rm.low, high: p.rm.high, label: label(p.round) }] : [])),
    },
  ];
  return (
    <div className="win-rates">
      <IntervalChart series={series} label={WIN_RATE_CHART_LABEL} />
      <details>
        <summary>Win rates as a table</summary>
        <table aria-label="Win rates by policy round">
          <thead>
            <tr>
              <th scope="col">Policy round</th>
              <th scope="col">People (95 % CI)</th>
              <th scope="col">Votes</th>
              <th scope="col">Reward model (95 % CI)</th>
            </tr>
          </thead>
          <tbody>
            {history.map((p) => (
              <tr key={p.round}>
                {/* "Round 12", not "#12": a search for the rounds table's row "#12" should find that row only. */}
                <td>Round {p.round}</td>
                <td>{p.human ? formatEstimate(p.human) : "no human votes yet"}</td>
                <td>{p.human?.n ?? 0}</td>
                <td>{p.rm ? formatEstimate(p.rm) : "—"}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </details>
    </div>
  );
}
