/** The gold settings form's plain parts: inputs from the project, the PATCH body from the inputs, the server's
 * complaints per input. The server (annotation.quality.gold.parse_gold_settings) is the one validator: what does
 * not parse as a number is sent as typed, so its 400 names the field. */
import type { Project } from "../api/client";

export type GoldInputs = {
  gold_share: string;
  warn_below: string;
  pause_below: string;
  min_gold: string;
  promote_min_judgments: string;
  show_own_accuracy: boolean;
};

export const GOLD_FIELDS = ["gold_share", "warn_below", "pause_below", "min_gold", "promote_min_judgments", "show_own_accuracy"] as const;

export function goldInputs(project: Pick<Project, "gold_share" | "gold_settings">): GoldInputs {
  const stored = (project.gold_settings ?? {}) as Record<string, unknown>;
  const text = (value: unknown) => (value === null || value === undefined ? "" : String(value));
  return {
    gold_share: text(project.gold_share),
    warn_below: text(stored.warn_below),
    pause_below: text(stored.pause_below),
    min_gold: text(stored.min_gold),
    promote_min_judgments: text(stored.promote_min_judgments),
    show_own_accuracy: stored.show_own_accuracy === true,
  };
}

/** A number where the text is one; "" as null (a threshold off) or left out (a count at its default). */
function value(text: string): number | string {
  const trimmed = text.trim();
  const number = Number(trimmed);
  return trimmed !== "" && Number.isFinite(number) ? number : trimmed;
}

export function goldPatch(inputs: GoldInputs): { gold_share?: number; gold_settings: Record<string, unknown> } {
  const settings: Record<string, unknown> = {
    warn_below: inputs.warn_below.trim() === "" ? null : value(inputs.warn_below),
    pause_below: inputs.pause_below.trim() === "" ? null : value(inputs.pause_below),
    show_own_accuracy: inputs.show_own_accuracy,
  };
  for (const key of ["min_gold", "promote_min_judgments"] as const) {
    if (inputs[key].trim() !== "") settings[key] = value(inputs[key]);
  }
  const body: { gold_share?: number; gold_settings: Record<string, unknown> } = { gold_settings: settings };
  // A share that is not a number goes as typed: the server's 400 names gold_share.
  if (inputs.gold_share.trim() !== "") body.gold_share = value(inputs.gold_share) as number;
  return body;
}

/** {"gold_share": [...], "gold_settings.warn_below": [...], "gold_settings": [...]} → per input, "form" for the rest. */
export function goldErrors(errors: Record<string, string[]> | undefined): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [key, messages] of Object.entries(errors ?? {})) {
    const field = key.replace(/^gold_settings\./, "");
    const name = (GOLD_FIELDS as readonly string[]).includes(field) ? field : "form";
    out[name] = [...(out[name] ?? []), ...messages];
  }
  return out;
}
