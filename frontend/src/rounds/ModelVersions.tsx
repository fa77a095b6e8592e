/** The project's model versions by kind, one table each with their metrics side by side (held-out accuracy,
 * calibration… for reward and span models, with the held-out
 * figures beside the trivial baselines, flagged when not beaten; the reward model's verdict on a policy), the active one marked. Admins
 * activate any other ready version: an older one is a roll back. Ready policies offer their weights and a "Try it"
 * sampler; reward models also chart their held-out metrics over versions. */
import { Fragment } from "react";
import { LineChart } from "../components/Charts";
import { RewardHeldOut, SpanHeldOut } from "./HeldOutSummary";
import { rewardEvaluation, spanEvaluation } from "./heldOut";
import { PolicySampler } from "./PolicySampler";
import type { ModelVersion, PolicySample, PolicySampleRequest } from "./types";
import { activateLabel, canActivate, downloadUrl, evalMissing, metricColumns, versionMetrics, versionsByKind } from "./versions";

const HELD_OUT_METRICS = ["accuracy", "member_accuracy", "ece"];

export function ModelVersions({
  versions,
  isAdmin,
  onActivate,
  onSample,
  activating,
}: {
  versions: ModelVersion[];
  isAdmin: boolean;
  onActivate: (versionId: number) => void;
  onSample: (versionId: number, body: PolicySampleRequest) => Promise<PolicySample>;
  activating?: number | null;
}) {
  const groups = versionsByKind(versions);
  if (!groups.length) return <p>No model versions yet.</p>;
  return (
    <>
      {groups.map(({ kind, versions: group }) => {
        const columns = metricColumns(group);
        const active = group.find((v) => v.is_active);
        return (
          <section key={kind} aria-label={`${kind} model versions`} className="versions">
            <h3>{kind === "policy" ? "Policies" : `${kind[0].toUpperCase()}${kind.slice(1)} models`}</h3>
            {kind === "reward" && <LineChart series={heldOutSeries(group)} label="Held-out metrics by model version" />}
            <table aria-label={`${kind} versions and their metrics`}>
              <thead>
                <tr>
                  <th scope="col">Version</th>
                  <th scope="col">Status</th>
                  <th scope="col">Judgments</th>
                  {columns.map((c) => (
                    <th scope="col" key={c}>
                      {c.replaceAll("_", " ")}
                    </th>
                  ))}
                  <th scope="col" aria-label="Actions" />
                </tr>
              </thead>
              <tbody>
                {[...group].reverse().map((v) => {
                  const values = versionMetrics(v);
                  const missing = kind !== "policy" && !Object.keys(values).length ? evalMissing(v) : null;
                  const heldOut = heldOutSummary(kind, v);
                  return (
                    <Fragment key={v.id}>
                    <tr data-testid={`version-${v.id}`} className={v.is_active ? "active" : undefined}>
                      <th scope="row">
                        {kind} v{v.version}
                      </th>
                      <td>
                        {v.status}
                        {v.is_active ? ", active" : ""}
                      </td>
                      <td>{v.judgment_count}</td>
                      {missing ? (
                        <td colSpan={Math.max(1, columns.length)} className="hint">
                          No held-out metrics: {missing}
                        </td>
                      ) : (
                        columns.map((c) => <td key={c}>{c in values ? formatMetric(c, values[c]) : "—"}</td>)
                      )}
                      <td>
                        {isAdmin && canActivate(v) && (
                          <button type="button" onClick={() => onActivate(v.id)} disabled={activating === v.id}>
                            {activateLabel(v, active)}
                          </button>
                        )}
                        {kind === "policy" && v.status === "ready" && (
                          <Fragment>
                            {" "}
                            <a href={downloadUrl(v.id, "merged")} download>
                              Download policy v{v.version} (merged)
                            </a>{" "}
                            <a href={downloadUrl(v.id, "adapter")} download>
                              Download policy v{v.version} (adapter)
                            </a>
                            <details className="try-it">
                              <summary>Try policy v{v.version}</summary>
                              <PolicySampler version={v} onSample={onSample} />
                            </details>
                          </Fragment>
                        )}
                      </td>
                    </tr>
                    {heldOut && (
                      <tr className="held-out-row">
                        <td colSpan={columns.length + 4}>{heldOut}</td>
                      </tr>
                    )}
                    </Fragment>
                  );
                })}
              </tbody>
            </table>
          </section>
        );
      })}
    </>
  );
}

/** Counts (``n_pairs``…) as they are, every other metric to three decimals (an accuracy of 1 reads 1.000). */
function formatMetric(name: string, value: number): string {
  return name.startsWith("n_") ? String(value) : value.toFixed(3);
}

function heldOutSeries(versions: ModelVersion[]) {
  return HELD_OUT_METRICS.map((name) => ({
    name,
    points: versions
      .map((v) => ({ x: v.version, y: ((v.metrics as { eval?: Record<string, unknown> } | null)?.eval ?? {})[name] }))
      .filter((p): p is { x: number; y: number } => typeof p.y === "number"),
  }));
}

/** The held-out figures against the baselines, for reward and span versions that were evaluated. */
function heldOutSummary(kind: string, v: ModelVersion) {
  if (kind === "reward" && rewardEvaluation(v.metrics)) return <RewardHeldOut metrics={v.metrics} label={`reward v${v.version}`} />;
  if (kind === "span" && spanEvaluation(v.metrics)) return <SpanHeldOut metrics={v.metrics} label={`span v${v.version}`} />;
  return null;
}
