/** Model versions grouped by kind, in a fixed order of kinds, each group oldest first. */
import type { ModelVersion } from "./types";

export const VERSION_KINDS = ["reward", "span", "policy"] as const;

export function versionsByKind(versions: ModelVersion[]): { kind: string; versions: ModelVersion[] }[] {
  const kinds = [...VERSION_KINDS, ...new Set(versions.map((v) => v.kind).filter((k) => !(VERSION_KINDS as readonly string[]).includes(k)))];
  return kinds
    .map((kind) => ({ kind, versions: versions.filter((v) => v.kind === kind).sort((a, b) => a.version - b.version) }))
    .filter((group) => group.versions.length > 0);
}

/** Only a ready version that is not already the active one can be activated (a roll back, or forward). */
export function canActivate(version: Pick<ModelVersion, "status" | "is_active">): boolean {
  return version.status === "ready" && !version.is_active;
}

export function downloadUrl(versionId: number, part: "merged" | "adapter"): string {
  return `/api/v1/model-versions/${versionId}/download/?part=${part}`;
}

/** What sits in a version's metric columns: the held-out evaluation (reward and span models) or the reward model's
 * evaluation of a policy; finite numbers only. */
export function versionMetrics(version: Pick<ModelVersion, "kind" | "metrics">): Record<string, number> {
  const metrics = (version.metrics ?? {}) as Record<string, unknown>;
  const source = version.kind === "policy" ? metrics.policy : metrics.eval;
  if (!source || typeof source !== "object") return {};
  return Object.fromEntries(
    Object.entries(source as Record<string, unknown>).filter((e): e is [string, number] => typeof e[1] === "number" && Number.isFinite(e[1])),
  );
}

const FIRST_COLUMNS = ["accuracy", "member_accuracy", "ece", "f1", "n_pairs", "reward_gain", "win_rate", "kl_to_reference"];

/** The metric columns of a group of versions, side by side: the usual ones first, then any other, each once. */
export function metricColumns(versions: Pick<ModelVersion, "kind" | "metrics">[]): string[] {
  const seen = new Set(versions.flatMap((v) => Object.keys(versionMetrics(v))));
  return [...FIRST_COLUMNS.filter((k) => seen.has(k)), ...[...seen].filter((k) => !FIRST_COLUMNS.includes(k)).sort()];
}

/** Why a version has no held-out metrics, when its round said (``metrics.eval_missing``). */
export function evalMissing(version: Pick<ModelVersion, "metrics">): string | null {
  const reason = ((version.metrics ?? {}) as Record<string, unknown>).eval_missing;
  return typeof reason === "string" ? reason : null;
}

/** The button's words: going back to an older version than the active one is a roll back. */
export function activateLabel(version: Pick<ModelVersion, "kind" | "version">, active: Pick<ModelVersion, "version"> | undefined): string {
  const name = `${version.kind} v${version.version}`;
  return active && version.version < active.version ? `Roll back to ${name}` : `Activate ${name}`;
}
