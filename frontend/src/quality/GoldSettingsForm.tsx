/** The project's gold settings in the quality panel: the share of gold checks served, the warn and pause
 * thresholds, how many checks before they apply, whether annotators see their own accuracy, and how many unanimous
 * judgments a comparison needs before it can be promoted to gold. Saved with the project (admins only; the server
 * refuses anyone else); a refused save shows each complaint beside its input and stores nothing. */
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { type FormEvent, useState } from "react";
import { api, HttpError, unwrap } from "../api/client";
import { SaveButtons } from "../components/SaveButtons";
import { type GoldInputs, goldErrors, goldInputs, goldPatch } from "./goldSettings";

const TEXT_FIELDS: { name: Exclude<keyof GoldInputs, "show_own_accuracy">; label: string; help: string }[] = [
  { name: "gold_share", label: "Gold share", help: "Share of served tasks that are gold checks, 0 to 1." },
  { name: "warn_below", label: "Warn below", help: "Gold accuracy (0 to 1) under which an annotator is warned; empty: off." },
  { name: "pause_below", label: "Pause below", help: "Gold accuracy under which an annotator is paused until a researcher resumes them; empty: off." },
  { name: "min_gold", label: "Gold checks first", help: "Gold checks an annotator answers before either threshold applies (default 10)." },
  { name: "promote_min_judgments", label: "Judgments to promote", help: "Unanimous judgments a comparison needs before it can become gold (default 3)." },
];

export function GoldSettingsForm({ projectId }: { projectId: number }) {
  const queryClient = useQueryClient();
  const path = { params: { path: { id: projectId } } };
  const project = useQuery({ queryKey: ["project", projectId], queryFn: async () => unwrap(await api.GET("/api/v1/projects/{id}/", path)) });
  const [edited, setEdited] = useState<GoldInputs | null>(null);
  const save = useMutation({
    mutationFn: async (inputs: GoldInputs) => unwrap(await api.PATCH("/api/v1/projects/{id}/", { ...path, body: goldPatch(inputs) })),
    onSuccess: (data) => {
      queryClient.setQueryData(["project", projectId], data);
      void queryClient.invalidateQueries({ queryKey: ["gold", projectId] });
      setEdited(null);
    },
  });
  if (!project.data) return null;
  const canEdit = project.data.my_role === "admin";
  const inputs = edited ?? goldInputs(project.data);
  const errors = save.error instanceof HttpError ? goldErrors(save.error.body?.errors) : {};
  const onSubmit = (event: FormEvent) => {
    event.preventDefault();
    save.mutate(inputs);
  };
  return (
    <form className="gold-settings" aria-label="Gold settings" onSubmit={onSubmit} noValidate>
      <h3>Gold settings</h3>
      {!canEdit && <p className="hint">Only the project's admins can change these.</p>}
      {TEXT_FIELDS.map((field) => {
        const id = `gold-${field.name}`;
        const fieldErrors = errors[field.name];
        return (
          <div key={field.name} className={`setting${fieldErrors ? " invalid" : ""}`}>
            <label htmlFor={id}>{field.label}</label>
            <input
              id={id}
              value={inputs[field.name]}
              inputMode="decimal"
              disabled={!canEdit}
              aria-invalid={fieldErrors ? true : undefined}
              aria-describedby={`${id}-help${fieldErrors ? ` ${id}-error` : ""}`}
              onChange={(e) => setEdited({ ...inputs, [field.name]: e.target.value })}
            />
            <span className="hint" id={`${id}-help`}>
              {field.help}
            </span>
            {fieldErrors && (
              <span className="error" id={`${id}-error`} role="alert">
                {fieldErrors.join(" ")}
              </span>
            )}
          </div>
        );
      })}
      <div className={`setting${errors.show_own_accuracy ? " invalid" : ""}`}>
        <label htmlFor="gold-show_own_accuracy">Annotators see their own gold accuracy</label>
        <input
          id="gold-show_own_accuracy"
          type="checkbox"
          checked={inputs.show_own_accuracy}
          disabled={!canEdit}
          onChange={(e) => setEdited({ ...inputs, show_own_accuracy: e.target.checked })}
        />
        {errors.show_own_accuracy && (
          <span className="error" role="alert">
            {errors.show_own_accuracy.join(" ")}
          </span>
        )}
      </div>
      {canEdit && (
        <SaveButtons
          label="Save gold settings"
          edited={edited !== null}
          pending={save.isPending}
          onDiscard={() => setEdited(null)}
        />
      )}
      {save.isError && (
        <p role="alert" className="error">
          Not saved: {errors.form ? errors.form.join(" ") : Object.keys(errors).length ? "see the marked fields." : save.error.message}
        </p>
      )}
      {save.isSuccess && edited === null && <p role="status">Gold settings saved.</p>}
    </form>
  );
}
