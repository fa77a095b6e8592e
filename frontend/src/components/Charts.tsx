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
