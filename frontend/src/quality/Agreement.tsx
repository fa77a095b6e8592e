/** Agreement in the quality panel: Krippendorff's alpha of choices per week as a line over the week's judgments,
 * and Cohen's kappa between each two annotators as a heat map. Weeks and pairs with too little overlap are left
 * blank (a gap, an empty cell), never drawn as 0. Annotator names are text. */
import { useQuery } from "@tanstack/react-query";
import { Bar, CartesianGrid, ComposedChart, Legend, Line, Tooltip, XAxis, YAxis } from "recharts";
import { api, type Schemas, unwrap } from "../api/client";

type Week = Schemas["WeekAgreement"];
type Pair = Schemas["AnnotatorPair"];
type Annotator = Schemas["AnnotatorName"];

export const OVER_TIME_LABEL = "Krippendorff's alpha of choices per week, with the week's judgments";
export const HEATMAP_LABEL = "Cohen's kappa between each two annotators";

export function Agreement({ projectId }: { projectId: number }) {
  const agreement = useQuery({
    queryKey: ["agreement", projectId],
    queryFn: async () => unwrap(await api.GET("/api/v1/projects/{id}/quality/agreement/", { params: { path: { id: projectId } } })),
    refetchInterval: 60_000,
  });
  if (agreement.isError)
    return (
      <p role="alert" className="error">
        {agreement.error.message}
      </p>
    );
  if (!agreement.data) return null;
  const data = agreement.data;
  return (
    <section aria-label="Agreement" className="agreement">
      <h3>Agreement over time</h3>
      <AgreementOverTime weeks={data.over_time} minComparisons={data.min_week_comparisons} />
      <h3>Annotator × annotator agreement</h3>
      <AgreementHeatmap annotators={data.annotators} pairs={data.pairs} minShared={data.min_shared} />
    </section>
  );
}

/** recharts rows: alpha stays null where the week has too little overlap, so the line breaks there. */
export function weekRows(weeks: Week[]): { week: string; alpha: number | null; judgments: number }[] {
  return weeks.map((w) => ({ week: w.week, alpha: w.krippendorff_alpha, judgments: w.judgments }));
}

export function AgreementOverTime({ weeks, minComparisons }: { weeks: Week[]; minComparisons: number }) {
  if (!weeks.length) return <p>No judgments yet.</p>;
  const rows = weekRows(weeks);
  const lowest = Math.min(0, ...rows.flatMap((r) => (r.alpha === null ? [] : [r.alpha])));
  return (
    <div className="over-time">
      <figure className="chart" role="img" aria-label={OVER_TIME_LABEL}>
        <ComposedChart width={560} height={240} data={rows} margin={{ top: 8, right: 8, bottom: 8, left: 0 }}>
          <CartesianGrid strokeDasharray="3 3" />
          <XAxis dataKey="week" tick={{ fontSize: 11 }} minTickGap={16} />
          <YAxis yAxisId="alpha" domain={[Math.floor(lowest * 10) / 10, 1]} tick={{ fontSize: 11 }} width={40} />
          <YAxis yAxisId="judgments" orientation="right" allowDecimals={false} tick={{ fontSize: 11 }} width={40} />
          <Tooltip formatter={(value) => (typeof value === "number" && !Number.isInteger(value) ? value.toFixed(3) : String(value ?? "too few"))} />
          <Legend />
          <Bar yAxisId="judgments" dataKey="judgments" name="judgments" fill="#c5cad3" maxBarSize={24} isAnimationActive={false} />
          <Line yAxisId="alpha" dataKey="alpha" name="alpha" stroke="#3b6ea5" strokeWidth={2} connectNulls={false} isAnimationActive={false} />
        </ComposedChart>
        <figcaption>
          {OVER_TIME_LABEL}. Each comparison counts in the week of its latest judgment; a week with fewer than {minComparisons} comparisons judged
          more than once has no alpha (a gap in the line).
        </figcaption>
      </figure>
      <details>
        <summary>Agreement per week as a table</summary>
        <table aria-label="Agreement per week">
          <thead>
            <tr>
              <th scope="col">Week of</th>
              <th scope="col">Alpha</th>
              <th scope="col">Judged more than once</th>
              <th scope="col">Judgments</th>
            </tr>
          </thead>
          <tbody>
            {weeks.map((w) => (
              <tr key={w.week}>
                <td>{w.week}</td>
                <td>{w.krippendorff_alpha === null ? "too few" : w.krippendorff_alpha.toFixed(3)}</td>
                <td>{w.pairable_comparisons}</td>
                <td>{w.judgments}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </details>
    </div>
  );
}

/** A diverging scale: blue for agreement beyond chance, red for less than chance, white at 0. */
export function kappaColour(kappa: number): string {
  const strength = Math.min(1, Math.abs(kappa));
  return `hsl(${kappa >= 0 ? 212 : 0} 65% ${Math.round(97 - 47 * strength)}%)`;
}

export function AgreementHeatmap({ annotators, pairs, minShared }: { annotators: Annotator[]; pairs: Pair[]; minShared: number }) {
  if (annotators.length < 2) return <p>Agreement between annotators needs two who judged the same comparisons.</p>;
  const byPair = new Map<string, Pair>();
  for (const p of pairs) {
    byPair.set(`${p.first}:${p.second}`, p);
    byPair.set(`${p.second}:${p.first}`, p);
  }
  return (
    <figure className="heatmap-figure">
      <div role="table" aria-label={HEATMAP_LABEL} className="heatmap" style={{ gridTemplateColumns: `max-content repeat(${annotators.length}, 3.2rem)` }}>
        <div role="row" className="heatmap-row">
          <span role="columnheader" />
          {annotators.map((a) => (
            <span role="columnheader" key={a.annotator_id} className="heatmap-name" title={a.username}>
              {a.username}
            </span>
          ))}
        </div>
        {annotators.map((row) => (
          <div role="row" className="heatmap-row" key={row.annotator_id}>
            <span role="rowheader" className="heatmap-name" title={row.username}>
              {row.username}
            </span>
            {annotators.map((col) => {
              const pair = row.annotator_id === col.annotator_id ? undefined : byPair.get(`${row.annotator_id}:${col.annotator_id}`);
              return <HeatCell key={col.annotator_id} row={row} col={col} pair={pair} minShared={minShared} />;
            })}
          </div>
        ))}
      </div>
      <figcaption>
        {HEATMAP_LABEL} over the comparisons both judged (hover a cell for kappa and their number); blank below {minShared} shared comparisons.
        Blue: agreement beyond chance; red: less than chance.
      </figcaption>
    </figure>
  );
}

function HeatCell({ row, col, pair, minShared }: { row: Annotator; col: Annotator; pair: Pair | undefined; minShared: number }) {
  const who = `${row.username} × ${col.username}`;
  if (row.annotator_id === col.annotator_id) return <span role="cell" className="heat-cell self" aria-label={`${who}: the same annotator`} />;
  if (!pair || pair.kappa === null) {
    const shared = pair?.shared ?? 0;
    const title = `${who}: ${shared} shared comparison${shared === 1 ? "" : "s"}, too few for kappa (${minShared} needed)`;
    return <span role="cell" className="heat-cell blank" title={title} aria-label={title} />;
  }
  const title = `${who}: kappa ${pair.kappa.toFixed(2)} over ${pair.shared} shared comparisons`;
  return (
    <span role="cell" className="heat-cell" title={title} aria-label={title} style={{ background: kappaColour(pair.kappa), color: Math.abs(pair.kappa) > 0.6 ? "#fff" : "#1d2330" }}>
      {pair.kappa.toFixed(2)}
    </span>
  );
}
