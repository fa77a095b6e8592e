/** "Try it": ask a policy version for an answer to a prompt. The answer is model output, shown as plain text,
 * with the seed that reproduces it; when the server cannot sample (409) its message is shown instead. */
import { useMutation } from "@tanstack/react-query";
import { type FormEvent, useState } from "react";
import type { ModelVersion, PolicySample, PolicySampleRequest } from "./types";

export type SampleForm = { prompt: string; maxNewTokens: string; temperature: string; seed: string };

/** Empty fields are left to the server's defaults; a typed seed reproduces an earlier answer. */
export function sampleRequestBody(form: SampleForm): PolicySampleRequest {
  const body: PolicySampleRequest = { prompt: form.prompt };
  const number = (text: string) => (text.trim() === "" ? undefined : Number(text));
  const maxNewTokens = number(form.maxNewTokens);
  const temperature = number(form.temperature);
  const seed = number(form.seed);
  if (maxNewTokens !== undefined) body.max_new_tokens = maxNewTokens;
  if (temperature !== undefined) body.temperature = temperature;
  if (seed !== undefined) body.seed = seed;
  return body;
}

export function PolicySampler({
  version,
  onSample,
}: {
  version: Pick<ModelVersion, "id" | "version">;
  onSample: (versionId: number, body: PolicySampleRequest) => Promise<PolicySample>;
}) {
  const [form, setForm] = useState<SampleForm>({ prompt: "", maxNewTokens: "128", temperature: "0.8", seed: "" });
  const set = (key: keyof SampleForm) => (e: { target: { value: string } }) => setForm((f) => ({ ...f, [key]: e.target.value }));
  const sample = useMutation({ mutationFn: (body: PolicySampleRequest) => onSample(version.id, body) });
  const onSubmit = (event: FormEvent) => {
    event.preventDefault();
    sample.mutate(sampleRequestBody(form));
  };
  const name = `policy v${version.version}`;
  return (
    <form className="sampler" onSubmit={onSubmit} aria-label={`Try ${name}`}>
      <label className="sampler-prompt">
        Prompt for {name}
        <textarea value={form.prompt} onChange={set("prompt")} rows={3} required />
      </label>
      <div className="row">
        <label>
          Max new tokens
          <input type="number" min={1} max={1024} value={form.maxNewTokens} onChange={set("maxNewTokens")} />
        </label>
        <label>
          Temperature
          <input type="number" min={0.01} max={10} step="any" value={form.temperature} onChange={set("temperature")} />
        </label>
        <label>
          Seed (empty: random)
          <input type="number" min={0} value={form.seed} onChange={set("seed")} />
        </label>
        <button type="submit" disabled={sample.isPending || !form.prompt.trim()}>
          Sample
        </button>
      </div>
      {sample.isPending && <p aria-busy="true">Sampling…</p>}
      {sample.isError && (
        <p role="alert" className="error">
          {sample.error.message}
        </p>
      )}
      {sample.isSuccess && (
        <div role="status" aria-label={`Answer of ${name}`} className="sample-answer">
          <p className="plain" data-testid="sample-text">
            {sample.data.text}
          </p>
          <p className="hint">
            seed {sample.data.seed} · {sample.data.tokens} tokens · finished: {sample.data.finish_reason === "length" ? "length (hit max new tokens)" : sample.data.finish_reason}
          </p>
        </div>
      )}
    </form>
  );
}
