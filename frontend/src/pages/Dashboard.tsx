/**
 * A project's page for researchers and admins: counts, throughput, queue depth,
 * imports and exports, members, rounds and model versions. The server refuses
 * annotators (403); this page says so instead of showing empty panels.
 */
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { type FormEvent, useState } from "react";
import { api, HttpError, type Schemas, unwrap } from "../api/client";
import { BarChart, Progress } from "../components/Charts";
import { JobActions } from "../jobs/JobActions";
import { useJobActions } from "../jobs/useJobActions";
import { QualityPanel } from "../quality/QualityPanel";
import { RoundsPanel } from "../rounds/RoundsPanel";
import { Link } from "../router";
import { ExportOptions } from "./ExportOptions";
import { EMPTY_EXPORT_FORM, type ExportForm, exportRequestBody, isLive } from "./exportRequest";

type PerAnnotator = { annotator_id: number; annotator__username: string; judgments: number; gold_judgments: number };
type PerDay = { day: string; judgments: number };

export function Dashboard({ projectId }: { projectId: number }) {
  const path = { params: { path: { id: projectId } } };
  const project = useQuery({ queryKey: ["project", projectId], queryFn: async () => unwrap(await api.GET("/api/v1/projects/{id}/", path)) });
  const stats = useQuery({
    queryKey: ["stats", projectId],
    queryFn: async () => unwrap(await api.GET("/api/v1/projects/{id}/stats/", path)),
    refetchInterval: 10_000,
    retry: false,
  });
  if (project.isError) return <p role="alert">{project.error.message}</p>;
  if (stats.isError) {
    const refused = stats.error instanceof HttpError && stats.error.status === 403;
    return (
      <section data-testid={refused ? "not-allowed" : undefined}>
        <h1>{refused ? "Not allowed" : "Error"}</h1>
        <p role="alert">
          {refused ? "This page is for the project's researchers and admins. " : ""}
          {stats.error.message}
        </p>
        <Link to="/">Back to your projects</Link>
      </section>
    );
  }
  if (!project.data || !stats.data) return <p aria-busy="true">Loading…</p>;
  const isAdmin = project.data.my_role === "admin";
  const judgments = stats.data.judgments as { total: number; per_annotator: PerAnnotator[]; per_day: PerDay[] };

  return (
    <div className="dashboard">
      <header className="bar">
        <Link to="/">← Projects</Link>
        <h1>{project.data.name}</h1>
        <Link to={`/projects/${projectId}/label`} className="button">
          Label
        </Link>
      </header>
      <section aria-label="Counts" className="cards">
        <Card label="Comparisons" value={stats.data.comparisons.total} testid="count-comparisons" />
        <Card label="Open" value={stats.data.comparisons.open} />
        <Card label="Done" value={stats.data.comparisons.done} />
        <Card label="Judgments" value={judgments.total} testid="count-judgments" />
        <Card label="Judgments still wanted" value={stats.data.queue.judgments_remaining} testid="queue-depth" />
        <Card label="Live leases" value={stats.data.queue.live_leases} />
        <Card label="Prompts" value={stats.data.prompts} />
        <Card label="Candidates" value={stats.data.candidates} />
      </section>
      <section aria-label="Throughput">
        <h2>Judgments per day (last 30 days)</h2>
        <BarChart data={everyDay(judgments.per_day)} label="Judgments per day" valueName="judgments" />
      </section>
      <section aria-label="Per annotator">
        <h2>Per annotator</h2>
        <table>
          <thead>
            <tr>
              <th scope="col">Annotator</th>
              <th scope="col">Judgments</th>
              <th scope="col">Gold checks</th>
            </tr>
          </thead>
          <tbody>
            {judgments.per_annotator.map((row) => (
              <tr key={row.annotator_id} data-testid={`annotator-${row.annotator__username}`}>
                <td>{row.annotator__username}</td>
                <td>{row.judgments}</td>
                <td>{row.gold_judgments}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </section>
      <QualityPanel projectId={projectId} />
      <Imports projectId={projectId} modality={project.data.modality ?? "text"} />
      <Exports projectId={projectId} />
      <Members projectId={projectId} isAdmin={isAdmin} />
      <RoundsPanel projectId={projectId} isAdmin={isAdmin} />
    </div>
  );
}

/** The server lists only days with judgments; a chart over time needs the empty days too. */
export function everyDay(perDay: PerDay[], today: Date = new Date()): { x: string; y: number }[] {
  if (!perDay.length) return [];
  const counts = new Map(perDay.map((d) => [d.day, d.judgments]));
  const out = [];
  const last = today.toISOString().slice(0, 10);
  for (let day = new Date(`${perDay[0].day}T00:00:00Z`); ; day.setUTCDate(day.getUTCDate() + 1)) {
    const key = day.toISOString().slice(0, 10);
    out.push({ x: key, y: counts.get(key) ?? 0 });
    if (key >= last || out.length > 366) break;
  }
  return out;
}

function Card({ label, value, testid }: { label: string; value: number | undefined; testid?: string }) {
  return (
    <div className="card">
      <div className="value" data-testid={testid}>
        {value ?? 0}
      </div>
      <div className="label">{label}</div>
    </div>
  );
}

/** What the import form takes: image projects also take a .zip of a manifest and the images it names. */
export function importFileTypes(modality: string): { accept: string; label: string; help: string | null } {
  if (modality !== "image") return { accept: ".jsonl,.csv,.parquet", label: "File (.jsonl, .csv, .parquet)", help: null };
  return {
    accept: ".jsonl,.csv,.parquet,.zip",
    label: "File (.jsonl, .csv, .parquet, or .zip with images)",
    help: 'A .zip holds one .jsonl, .csv or .parquet file at its top level whose candidates name their image: "media": "img/cat-1.png". Kind: bundle or candidates.',
  };
}

function Imports({ projectId, modality }: { projectId: number; modality: string }) {
  const types = importFileTypes(modality);
  const queryClient = useQueryClient();
  const [file, setFile] = useState<File | null>(null);
  const [kind, setKind] = useState("bundle");
  const [upload, setUpload] = useState<number | null>(null);
  const [message, setMessage] = useState<string | null>(null);
  const actions = useJobActions("imports", projectId);
  const jobs = useQuery({
    queryKey: ["imports", projectId],
    queryFn: async () => unwrap(await api.GET("/api/v1/projects/{id}/imports/", { params: { path: { id: projectId } } })),
    refetchInterval: (query) => ((query.state.data ?? []).some((j) => j.status === "queued" || j.status === "running") ? 1000 : false),
  });
  const onSubmit = (event: FormEvent) => {
    event.preventDefault();
    if (!file) return;
    // XMLHttpRequest, not fetch: only it reports upload progress.
    const form = new FormData();
    form.append("file", file);
    form.append("kind", kind);
    const request = new XMLHttpRequest();
    request.open("POST", `/api/v1/projects/${projectId}/imports/`);
    request.setRequestHeader("X-CSRFToken", document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/)?.[1] ?? "");
    request.upload.onprogress = (e) => e.lengthComputable && setUpload(e.loaded / e.total);
    request.onload = () => {
      setUpload(null);
      const body = JSON.parse(request.responseText || "{}");
      setMessage(request.status < 300 ? `Import ${body.id}: ${body.status}` : `${body.message ?? "Import failed"} ${Object.values(body.errors ?? {}).flat().join("; ")}`);
      void queryClient.invalidateQueries({ queryKey: ["imports", projectId] });
      void queryClient.invalidateQueries({ queryKey: ["stats", projectId] });
    };
    request.onerror = () => {
      setUpload(null);
      setMessage("The upload failed on the network; try again.");
    };
    request.send(form);
  };
  return (
    <section aria-label="Imports">
      <h2>Import</h2>
      <form onSubmit={onSubmit} className="row">
        <label>
          Kind
          <select value={kind} onChange={(e) => setKind(e.target.value)}>
            <option value="bundle">bundle</option>
            <option value="prompts">prompts</option>
            <option value="candidates">candidates</option>
            <option value="comparisons">comparisons</option>
          </select>
        </label>
        <label>
          {types.label}
          <input type="file" accept={types.accept} onChange={(e) => setFile(e.target.files?.[0] ?? null)} />
        </label>
        <button type="submit" disabled={!file || upload !== null}>
          Import
        </button>
        {upload !== null && <Progress value={upload} label="Upload" />}
      </form>
      {types.help && <p className="hint">{types.help}</p>}
      {message && <p role="status">{message}</p>}
      {actions.error && (
        <p role="alert" className="error">
          {actions.error.message}
        </p>
      )}
      <ul>
        {(jobs.data ?? []).slice(0, 5).map((job: Schemas["ImportJob"]) => (
          <li key={job.id} data-testid={`import-${job.id}`}>
            {job.original_name} ({job.kind}) — {job.status}
            {job.phase ? `, ${job.phase}` : ""}
            {(job.status === "failed" || job.status === "cancelled") && job.message ? `: ${job.message}` : ""}{" "}
            {job.rows_total ? <Progress value={(job.rows_done ?? 0) / job.rows_total} label={`Import ${job.id}`} /> : null}{" "}
            <JobActions noun="import" job={job} busy={actions.busyId === job.id} onCancel={actions.cancel} onRetry={actions.retry} />
          </li>
        ))}
      </ul>
    </section>
  );
}

function Exports({ projectId }: { projectId: number }) {
  const queryClient = useQueryClient();
  const path = { params: { path: { id: projectId } } };
  const [form, setForm] = useState<ExportForm>(EMPTY_EXPORT_FORM);
  const set = <K extends keyof ExportForm>(key: K) => (value: ExportForm[K]) => setForm((f) => ({ ...f, [key]: value }));
  const actions = useJobActions("exports", projectId);
  const jobs = useQuery({
    queryKey: ["exports", projectId],
    queryFn: async () => unwrap(await api.GET("/api/v1/projects/{id}/exports/", path)),
    // Poll only while a job is working: that is what moves the progress bars.
    refetchInterval: (query) => ((query.state.data ?? []).some(isLive) ? 1000 : false),
  });
  const start = useMutation({
    mutationFn: async () => unwrap(await api.POST("/api/v1/projects/{id}/exports/", { ...path, body: exportRequestBody(form) })),
    onSuccess: () => queryClient.invalidateQueries({ queryKey: ["exports", projectId] }),
  });
  const onSubmit = (event: FormEvent) => {
    event.preventDefault();
    start.mutate();
  };
  return (
    <section aria-label="Exports">
      <h2>Export</h2>
      <form onSubmit={onSubmit} className="export-form" noValidate aria-label="Export options">
        <ExportOptions form={form} set={set} />
        <div className="row">
          <button type="submit" disabled={start.isPending}>
            Start export
          </button>
        </div>
      </form>
      {start.isError && (
        <p role="alert" className="error">
          {start.error.message}
        </p>
      )}
      {start.isSuccess && <p role="status">Export {start.data.id} started.</p>}
      {jobs.isError && (
        <p role="alert" className="error">
          {jobs.error.message}
        </p>
      )}
      {actions.error && (
        <p role="alert" className="error">
          {actions.error.message}
        </p>
      )}
      <table>
        <thead>
          <tr>
            <th scope="col">Export</th>
            <th scope="col">Status</th>
            <th scope="col">Progress</th>
            <th scope="col">File</th>
            <th scope="col">Actions</th>
          </tr>
        </thead>
        <tbody>
          {(jobs.data ?? []).slice(0, 10).map((job) => (
            <tr key={job.id} data-testid={`export-${job.id}`}>
              <td>
                #{job.id} {job.shape} · {job.file_format}
              </td>
              <td>
                {job.status}
                {(job.status === "failed" || job.status === "cancelled") && job.message ? `: ${job.message}` : ""}
              </td>
              <td>
                <Progress value={job.progress} label={`Export ${job.id}`} />
                {job.rows_total !== null ? ` ${job.rows_done} / ${job.rows_total} judgments` : ""}
              </td>
              <td>
                {job.download_url ? (
                  <a href={job.download_url} download>
                    Download export {job.id}
                  </a>
                ) : (
                  "—"
                )}
              </td>
              <td>
                <JobActions noun="export" job={job} busy={actions.busyId === job.id} onCancel={actions.cancel} onRetry={actions.retry} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

function Members({ projectId, isAdmin }: { projectId: number; isAdmin: boolean }) {
  const queryClient = useQueryClient();
  const path = { params: { path: { id: projectId } } };
  const members = useQuery({ queryKey: ["members", projectId], queryFn: async () => unwrap(await api.GET("/api/v1/projects/{id}/members/", path)) });
  const [username, setUsername] = useState("");
  const [role, setRole] = useState<Schemas["RoleEnum"]>("annotator");
  const [error, setError] = useState<string | null>(null);
  const refresh = () => queryClient.invalidateQueries({ queryKey: ["members", projectId] });
  const run = async (call: () => Promise<{ response: Response; error?: unknown }>) => {
    setError(null);
    const result = await call();
    if (!result.response.ok) setError(new HttpError(result.response.status, result.error as never).message);
    await refresh();
  };
  return (
    <section aria-label="Members">
      <h2>Members</h2>
      <table>
        <tbody>
          {(members.data ?? []).map((m) => (
            <tr key={m.user}>
              <td>{m.username}</td>
              <td>
                {isAdmin ? (
                  <select
                    aria-label={`Role of ${m.username}`}
                    value={m.role}
                    onChange={(e) =>
                      void run(() =>
                        api.PATCH("/api/v1/projects/{id}/members/{user_id}/", {
                          params: { path: { id: projectId, user_id: m.user } },
                          body: { role: e.target.value as Schemas["RoleEnum"] },
                        }),
                      )
                    }
                  >
                    <option value="annotator">annotator</option>
                    <option value="researcher">researcher</option>
                    <option value="admin">admin</option>
                  </select>
                ) : (
                  m.role
                )}
              </td>
              {isAdmin && (
                <td>
                  <button
                    type="button"
                    onClick={() => void run(() => api.DELETE("/api/v1/projects/{id}/members/{user_id}/", { params: { path: { id: projectId, user_id: m.user } } }))}
                  >
                    Remove {m.username}
                  </button>
                </td>
              )}
            </tr>
          ))}
        </tbody>
      </table>
      {isAdmin && (
        <form
          className="row"
          onSubmit={(e) => {
            e.preventDefault();
            void run(() => api.POST("/api/v1/projects/{id}/members/", { ...path, body: { username, role } }));
          }}
        >
          <label>
            Username <input value={username} onChange={(e) => setUsername(e.target.value)} required />
          </label>
          <label>
            Role
            <select value={role} onChange={(e) => setRole(e.target.value as Schemas["RoleEnum"])}>
              <option value="annotator">annotator</option>
              <option value="researcher">researcher</option>
              <option value="admin">admin</option>
            </select>
          </label>
          <button type="submit">Add member</button>
        </form>
      )}
      {error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
    </section>
  );
}
