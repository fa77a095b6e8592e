/** Small SVG charts: enough for counts over days and metrics over versions, no library. */

export function BarChart({ data, label }: { data: { x: string; y: number }[]; label: string }) {
  const width = 480;
  const height = 120;
  const max = Math.max(1, ...data.map((d) => d.y));
  const barWidth = data.length ? width / data.length : width;
  return (
    <figure className="chart">
      <svg viewBox={`0 0 ${width} ${height + 16}`} role="img" aria-label={label}>
        {data.map((d, i) => {
          const h = (d.y / max) * height;
          return (
            <g key={d.x}>
              <rect x={i * barWidth + 2} y={height - h} width={Math.max(1, barWidth - 4)} height={h} fill="#3b6ea5">
                <title>
                  {d.x}: {d.y}
                </title>
              </rect>
            </g>
          );
        })}
        <text x={0} y={height + 14} fontSize="11">
          {data[0]?.x ?? ""}
        </text>
        <text x={width} y={height + 14} fontSize="11" textAnchor="end">
          {data[data.length - 1]?.x ?? ""}
        </text>
      </svg>
      <figcaption>
        {label} (max {max})
      </figcaption>
    </figure>
  );
}

export function LineChart({ series, label }: { series: { name: string; points: { x: number; y: number }[] }[]; label: string }) {
  const width = 480;
  const height = 140;
  const all = series.flatMap((s) => s.points);
  if (!all.length) return <p>No metrics yet.</p>;
  const [minX, maxX] = [Math.min(...all.map((p) => p.x)), Math.max(...all.map((p) => p.x))];
  const [minY, maxY] = [Math.min(0, ...all.map((p) => p.y)), Math.max(1, ...all.map((p) => p.y))];
  const sx = (x: number) => (maxX === minX ? width / 2 : ((x - minX) / (maxX - minX)) * (width - 20) + 10);
  const sy = (y: number) => height - ((y - minY) / (maxY - minY || 1)) * (height - 10) - 5;
  const colours = ["#3b6ea5", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"];
  return (
    <figure className="chart">
      <svg viewBox={`0 0 ${width} ${height}`} role="img" aria-label={label}>
        {series.map((s, i) => (
          <g key={s.name}>
            <polyline fill="none" stroke={colours[i % colours.length]} strokeWidth={2} points={s.points.map((p) => `${sx(p.x)},${sy(p.y)}`).join(" ")} />
            {s.points.map((p) => (
              <circle key={p.x} cx={sx(p.x)} cy={sy(p.y)} r={3} fill={colours[i % colours.length]}>
                <title>
                  {s.name} v{p.x}: {p.y.toFixed(3)}
                </title>
              </circle>
            ))}
          </g>
        ))}
      </svg>
      <figcaption>
        {label}:{" "}
        {series.map((s, i) => (
          <span key={s.name} style={{ color: colours[i % colours.length] }}>
            ■ {s.name}{" "}
          </span>
        ))}
      </figcaption>
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
