/** The training-settings editor's rules, without React: which section a setting belongs to, what its input shows,
 * and how the edited inputs become the settings the server validates (training.config.RoundConfig). */
import type { Schemas } from "../api/client";

export type SettingField = Schemas["TrainingSettingField"];
/** What each input holds, by setting name: "" means "not set, the default applies". */
export type SettingInputs = Record<string, string>;

const SCHEDULE = new Set(["schedule", "min_new_judgments", "schedule_every_hours"]);

/** Settings in the order the server lists them, in three sections: the reward model, the policy loop (from
 * ``policy`` on, as RoundConfig lays them out) and the scheduler. */
export function settingSections(fields: SettingField[]): { title: string; fields: SettingField[] }[] {
  const policyAt = fields.findIndex((f) => f.name === "policy");
  const policy = (i: number) => policyAt >= 0 && i >= policyAt;
  return [
    { title: "Reward model", fields: fields.filter((f, i) => !policy(i) && !SCHEDULE.has(f.name)) },
    { title: "Policy loop", fields: fields.filter((f, i) => policy(i) && !SCHEDULE.has(f.name)) },
    { title: "Schedule", fields: fields.filter((f) => SCHEDULE.has(f.name)) },
  ].filter((section) => section.fields.length > 0);
}

/** The inputs for stored settings: each set value as text ("null" for an explicit null); unset ones empty. */
export function inputsFromSettings(settings: Record<string, unknown>): SettingInputs {
  return Object.fromEntries(Object.entries(settings).map(([name, value]) => [name, value === null ? "null" : String(value)]));
}

/** The settings to send: empty inputs are left out (the default applies); numbers and booleans are parsed, and
 * what does not parse is sent as typed so that the server names the field and says what it wants. */
export function settingsFromInputs(fields: SettingField[], inputs: SettingInputs): Record<string, unknown> {
  const settings: Record<string, unknown> = {};
  for (const field of fields) {
    const raw = (inputs[field.name] ?? "").trim();
    if (raw === "") continue;
    if (raw === "null") settings[field.name] = null;
    else if (field.type === "boolean") settings[field.name] = raw === "true" ? true : raw === "false" ? false : raw;
    else if (field.type === "integer" || field.type === "number") settings[field.name] = Number.isFinite(Number(raw)) ? Number(raw) : raw;
    else settings[field.name] = raw;
  }
  return settings;
}

/** A default as the page shows it: "none" for null. */
export function defaultText(value: unknown): string {
  return value === null || value === undefined ? "none" : String(value);
}

/** The server's field errors by setting name ("settings.epochs" → "epochs"). */
export function errorsBySetting(errors: Record<string, string[]> | undefined): Record<string, string[]> {
  return Object.fromEntries(Object.entries(errors ?? {}).map(([key, messages]) => [key.replace(/^settings\./, ""), messages]));
}
