/** A version's held-out figures beside the trivial baselines on the same data; a flag when the model does not
 * beat them (a reward model below "prefer the shorter answer", a span model below never or always flagging). */
import { BASELINE_LABELS, fmt, rewardEvaluation, spanEvaluation } from "./heldOut";

export function RewardHeldOut({ metrics, label }: { metrics: unknown; label: string }) {
  const evaluation = rewardEvaluation(metrics);
  if (!evaluation) return <p className="held-out">No held-out evaluation.</p>;
  const { accuracy, ci, n, baselines, unbeaten } = evaluation;
  return (
    <div className="held-out" aria-label={`${label} held-out evaluation`}>
      <p>
        Held-out accuracy {fmt(accuracy)}
        {ci && ` (95 % interval ${fmt(ci[0])}–${fmt(ci[1])})`} on {n} pairs
        {baselines.map((b) => (
          <span key={b.name}>
            {" "}
            · {BASELINE_LABELS[b.name] ?? b.name} ({b.rule}) {fmt(b.accuracy)}
          </span>
        ))}
      </p>
      {unbeaten.length > 0 && (
        <p className="flag" role="alert">
          Does not beat{" "}
          {unbeaten.map((b) => `${BASELINE_LABELS[b.name] ?? b.name} (prefer the ${b.rule}: ${fmt(b.accuracy)} vs ${fmt(b.modelAccuracy)})`).join(" or ")}
        </p>
      )}
    </div>
  );
}

export function SpanHeldOut({ metrics, label }: { metrics: unknown; label: string }) {
  const evaluation = spanEvaluation(metrics);
  if (!evaluation) return <p className="held-out">No held-out evaluation.</p>;
  const { f1, accuracy, n, baselines, beats, categories } = evaluation;
  return (
    <div className="held-out" aria-label={`${label} held-out evaluation`}>
      <p>
        Held-out F1 {fmt(f1)}, accuracy {fmt(accuracy)} on {n} decisions
        {baselines.map((b) => (
          <span key={b.name}>
            {" "}
            · {BASELINE_LABELS[b.name] ?? b.name}: F1 {fmt(b.f1)}, accuracy {fmt(b.accuracy)}
          </span>
        ))}
      </p>
      {beats === false && (
        <p className="flag" role="alert">
          Does not beat never or always flagging on F1: never activated
        </p>
      )}
      {categories.length > 0 && (
        <table>
          <thead>
            <tr>
              <th scope="col">category</th>
              <th scope="col">F1</th>
              <th scope="col">support</th>
            </tr>
          </thead>
          <tbody>
            {categories.map((c) => (
              <tr key={c.key}>
                <td>{c.key}</td>
                <td>{fmt(c.f1)}</td>
                <td>{c.support}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}
