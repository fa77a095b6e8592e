/** The project's model versions by kind: reward and span models with their held-out metrics beside the trivial
 * baselines (flagged when not beaten) and over versions; policies with
 * a "Try it" sampler and their weights to download; admins activate any other ready version (roll back). */
import { LineChart } from "../components/Charts";
import { RewardHeldOut, SpanHeldOut } from "./HeldOutSummary";
import { PolicySampler } from "./PolicySampler";
import type { ModelVersion, PolicySample, PolicySampleRequest } from "./types";
import { canActivate, downloadUrl, versionsByKind } from "./versions";

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
      {groups.map(({ kind, versions: group }) => (
        <section key={kind} aria-label={`${kind} model versions`} className="versions">
          <h3>{kind === "policy" ? "Policies" : `${kind[0].toUpperCase()}${kind.slice(1)} models`}</h3>
          {kind === "reward" && <LineChart series={heldOutSeries(group)} label="Held-out metrics by model version" />}
          <ul>
            {[...group].reverse().map((v) => (
              <li key={v.id} data-testid={`version-${v.id}`}>
                <span>
                  {kind} v{v.version} — {v.status}
                  {v.is_active ? ", active" : ""} — {v.judgment_count} judgments
                </span>{" "}
                {kind === "reward" && <RewardHeldOut metrics={v.metrics} label={`reward v${v.version}`} />}
                {kind === "span" && <SpanHeldOut metrics={v.metrics} label={`span v${v.version}`} />}
                {isAdmin && canActivate(v) && (
                  <button type="button" onClick={() => onActivate(v.id)} disabled={activating === v.id}>
                    Activate {kind} v{v.version}
                  </button>
                )}
                {kind === "policy" && v.status === "ready" && (
                  <>
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
                  </>
                )}
              </li>
            ))}
          </ul>
        </section>
      ))}
    </>
  );
}

function heldOutSeries(versions: ModelVersion[]) {
  return HELD_OUT_METRICS.map((name) => ({
    name,
    points: versions
      .map((v) => ({ x: v.version, y: ((v.metrics as { eval?: Record<string, unknown> } | null)?.eval ?? {})[name] }))
      .filter((p): p is { x: number; y: number } => typeof p.y === "number"),
  }));
}
