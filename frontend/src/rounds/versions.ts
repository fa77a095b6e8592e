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
