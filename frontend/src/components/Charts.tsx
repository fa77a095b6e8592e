/** The dashboard's charts. Counts over days and metrics over versions are recharts charts (axes, grid, tooltips,
 * legend); the win-rate chart with its 95 % error bars stays hand-drawn SVG. Charts have a fixed size: recharts'
 * ResponsiveContainer measures its parent, which is 0 wide in jsdom. */
import {
  Bar,
  CartesianGrid,
  Legend,
  Line,
  BarChart as RechartsBarChart,
  LineChart as RechartsLineChart,
  Tooltip,
  XAxis,
  YAxis,
} from "recharts";

const COLOURS = ["#3b6ea5", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"];

/** Counts per category (e.g. judgments per day): bars over labelled x and y axes, the count on hover. */
export function BarChart({ data, label, valueName = "count" }: { data: { x: string; y: number }[]; label: string; valueName?: string }) {
  if (!data.length) return <p>No {valueName} yet.</p>;
  return (
    <figure className="chart" role="img" aria-label={label}>
      <RechartsBarChart width={560} height={220} data={data} margin={{ top: 8, right: 16, bottom: 8, left: 0 }}>
        <CartesianGrid strokeDasharray="3 3" vertical={false} />
        <XAxis dataKey="x" tick={{ fontSize: 11 }} minTickGap={16} />
        <YAxis allowDecimals={false} tick={{ fontSize: 11 }} width={40} />
        <Tooltip />
        <Bar dataKey="y" name={valueName} fill={COLOURS[0]} maxBarSize={40} isAnimationActive={false} />
      </RechartsBarChart>
      <figcaption>{label}</figcaption>
    </figure>
  );
}

/** Metrics over model versions: one line per metric, versions on the x axis ("v1", "v2"…), values on hover. */
export function LineChart({ series, label }: { series: { name: string; points: { x: number; y: number }[] }[]; label: string }) {
  const xs = [...new Set(series.flatMap((s) => s.points.map((p) => p.x)))].sort((a, b) => a - b);
  if (!xs.length) return <p>No metrics yet.</p>;
  // recharts wants one row per x with a column per series.
  const rows = xs.map((x) => ({ x, ...Object.fromEntries(series.map((s) => [s.name, s.points.find((p) => p.x === x)?.y])) }));
  return (
    <figure className="chart" role="img" aria-label={label}>
      <RechartsLineChart width={560} height={220} data={rows} margin={{ top: 8, right: 16, bottom: 8, left: 0 }}>
        <CartesianGrid strokeDasharray="3 3" />
        <XAxis dataKey="x" tickFormatter={(x: number) => `v${x}`} tick={{ fontSize: 11 }} />
        <YAxis tick={{ fontSize: 11 }} width={40} domain={[0, "auto"]} />
        <Tooltip labelFormatter={(x) => `version ${String(x)}`} formatter={(value) => (typeof value === "number" ? value.toFixed(3) : String(value))} />
        <Legend />
        {series.map((s, i) => (
          <Line key={s.name} dataKey={s.name} stroke={COLOURS[i % COLOURS.length]} strokeWidth={2} connectNulls isAnimationActive={false} />
        ))}
      </RechartsLineChart>
      <figcaption>{label}</figcaption>
    </figure>
  );
}

export function Progress({ value, label }: { value: number; label: string }) {
  return (
    <span className="progress">
      <progress value={Math.max(0, Math.min(1, value))} max={1} aria-label={label} /> {Math.round(value * 100)}%
    </span>
  );
}

export type IntervalPoint = { x: number; y: number; low?: number; high?: number; label?: string };

/** Estimates with 95 % intervals as points with error bars, on a 0..1 scale with a dashed line at ``reference``
 * (e.g. 0.5: no better than before). Series sit side by side at each x so their bars do not hide each other. */
export function IntervalChart({
  series,
  label,
  reference = 0.5,
}: {
  series: { name: string; points: IntervalPoint[] }[];
  label: string;
  reference?: number;
}) {
  const width = 480;
  const height = 160;
  const xs = [...new Set(series.flatMap((s) => s.points.map((p) => p.x)))].sort((a, b) => a - b);
  if (!xs.length) return <p>No win rates yet.</p>;
  const slot = (width - 50) / xs.length;
  const sx = (x: number, i: number) => 40 + xs.indexOf(x) * slot + slot / 2 + (i - (series.length - 1) / 2) * 10;
  const sy = (y: number) => height - 20 - Math.max(0, Math.min(1, y)) * (height - 30);
  const colours = ["#d62728", "#3b6ea5", "#2ca02c", "#9467bd"];
  return (
    <figure className="chart">
      <svg viewBox={`0 0 ${width} ${height}`} role="img" aria-label={label}>
        <title>{label}</title>
        {[0, reference, 1].map((y) => (
          <g key={y}>
            <line x1={38} x2={width} y1={sy(y)} y2={sy(y)} stroke="#c5cad3" strokeDasharray={y === reference ? "4 3" : undefined} />
            <text x={34} y={sy(y) + 4} fontSize="10" textAnchor="end">
              {Math.round(y * 100)}%
            </text>
          </g>
        ))}
        {xs.map((x) => (
          <text key={x} x={sx(x, (series.length - 1) / 2)} y={height - 4} fontSize="10" textAnchor="middle">
            {series.flatMap((s) => s.points).find((p) => p.x === x)?.label ?? x}
          </text>
        ))}
        {series.map((s, i) => (
          <g key={s.name} fill={colours[i % colours.length]} stroke={colours[i % colours.length]}>
            {s.points.map((p) => (
              <g key={p.x}>
                {p.low !== undefined && p.high !== undefined && (
                  <line x1={sx(p.x, i)} x2={sx(p.x, i)} y1={sy(p.low)} y2={sy(p.high)} strokeWidth={2} />
                )}
                <circle cx={sx(p.x, i)} cy={sy(p.y)} r={4}>
                  <title>
                    {s.name} {p.label ?? p.x}: {(p.y * 100).toFixed(1)}%
                    {p.low !== undefined && p.high !== undefined ? ` (95% CI ${(p.low * 100).toFixed(1)}–${(p.high * 100).toFixed(1)}%)` : ""}
                  </title>
                </circle>
              </g>
            ))}
          </g>
        ))}
      </svg>
      <figcaption>
        {label}:{" "}
        {series.map((s, i) => (
          <span key={s.name} style={{ color: colours[i % colours.length] }}>
            ● {s.name}{" "}
          </span>
        ))}
        (bars: 95% intervals; dashed line: {Math.round(reference * 100)}%)
      </figcaption>
    </figure>
  );
}
