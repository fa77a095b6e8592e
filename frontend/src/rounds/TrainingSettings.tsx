/** Admins edit the project's training settings: one input per setting of training.config.RoundConfig, in sections,
 * each with its default and what it does. The server validates the whole set; a refused save shows each complaint
 * on its own field and nothing is stored. */
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { type FormEvent, useState } from "react";
import { api, HttpError, unwrap } from "../api/client";
import { SaveButtons } from "../components/SaveButtons";
import {
  defaultText,
  errorsBySetting,
  inputsFromSettings,
  type SettingField,
  type SettingInputs,
  settingSections,
  settingsFromInputs,
} from "./trainingSettings";

export function TrainingSettings({ projectId }: { projectId: number }) {
  const queryClient = useQueryClient();
  const path = { params: { path: { id: projectId } } };
  const stored = useQuery({
    queryKey: ["training-settings", projectId],
    queryFn: async () => unwrap(await api.GET("/api/v1/projects/{id}/training-settings/", path)),
  });
  // null until the admin edits: the inputs follow what the server holds.
  const [edited, setEdited] = useState<SettingInputs | null>(null);
  const save = useMutation({
    mutationFn: async (settings: Record<string, unknown>) =>
      unwrap(await api.PUT("/api/v1/projects/{id}/training-settings/", { ...path, body: { settings } })),
    onSuccess: (data) => {
      queryClient.setQueryData(["training-settings", projectId], data);
      setEdited(null);
    },
  });
  if (stored.isError) return <p role="alert">{stored.error.message}</p>;
  if (!stored.data) return <p aria-busy="true">Loading the training settings…</p>;
  const fields = stored.data.fields;
  const inputs = edited ?? inputsFromSettings(stored.data.settings);
  const fieldErrors = save.error instanceof HttpError ? errorsBySetting(save.error.body?.errors) : {};
  const onChange = (name: string, value: string) => setEdited({ ...inputs, [name]: value });
  const onSubmit = (event: FormEvent) => {
    event.preventDefault();
    save.mutate(settingsFromInputs(fields, inputs));
  };
  return (
    <details className="training-settings">
      <summary>Training settings</summary>
      <form onSubmit={onSubmit} aria-label="Training settings" noValidate>
        <p className="hint">An empty field takes its default. Rounds started from now on use these settings.</p>
        {settingSections(fields).map((section) => (
          <fieldset key={section.title}>
            <legend>{section.title}</legend>
            {section.fields.map((field) => (
              <SettingInput
                key={field.name}
                field={field}
                value={inputs[field.name] ?? ""}
                errors={fieldErrors[field.name]}
                onChange={(value) => onChange(field.name, value)}
              />
            ))}
          </fieldset>
        ))}
        <SaveButtons
          label="Save training settings"
          edited={edited !== null}
          pending={save.isPending}
          onDiscard={() => setEdited(null)}
        />
        {save.isError && (
          <p role="alert" className="error">
            {save.error instanceof HttpError ? "Not saved: " : ""}
            {save.error.message}
          </p>
        )}
        {save.isSuccess && edited === null && <p role="status">Training settings saved.</p>}
      </form>
    </details>
  );
}

function SettingInput({ field, value, errors, onChange }: { field: SettingField; value: string; errors?: string[]; onChange: (value: string) => void }) {
  const id = `setting-${field.name}`;
  const described = `${id}-help${errors ? ` ${id}-error` : ""}`;
  const common = { id, "aria-describedby": described, "aria-invalid": errors ? true : undefined } as const;
  const fallback = `default (${defaultText(field.default)})`;
  return (
    <div className={`setting${errors ? " invalid" : ""}`}>
      <label htmlFor={id}>
        <code>{field.name}</code>
      </label>
      {field.type === "boolean" || field.type === "choice" ? (
        <select {...common} value={value} onChange={(e) => onChange(e.target.value)}>
          <option value="">{fallback}</option>
          {(field.type === "boolean" ? ["true", "false"] : field.choices).map((choice) => (
            <option key={choice} value={choice}>
              {choice}
            </option>
          ))}
        </select>
      ) : (
        <input
          {...common}
          value={value}
          inputMode={field.type === "string" ? undefined : "decimal"}
          onChange={(e) => onChange(e.target.value)}
        />
      )}
      <span className="hint" id={`${id}-help`}>
        Default: {defaultText(field.default)}
        {field.nullable ? " (type null for none)" : ""}. {field.help}
      </span>
      {errors && (
        <span className="error" id={`${id}-error`} role="alert">
          {errors.join(" ")}
        </span>
      )}
    </div>
  );
}
