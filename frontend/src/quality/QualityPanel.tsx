/** The dashboard's label-quality panel: project agreement statistics and the per-annotator table, with the
 * exclude / restore and resume actions and a recompute request; then agreement over time and between annotators,
 * promoting unanimous comparisons to gold, and the gold settings. Researchers only (the API refuses everyone else). */
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api, unwrap } from "../api/client";
import { Agreement } from "./Agreement";
import { GoldPromotion } from "./GoldPromotion";
import { GoldSettingsForm } from "./GoldSettingsForm";
import { type AnnotatorQuality, QualityTable } from "./QualityTable";

type Statistics = { choice?: { krippendorff_alpha?: number | null; fleiss_kappa?: number | null; pairable_units?: number } };

export function QualityPanel({ projectId }: { projectId: number }) {
  const queryClient = useQueryClient();
  const path = { params: { path: { id: projectId } } };
  const quality = useQuery({
    queryKey: ["quality", projectId],
    queryFn: async () => unwrap(await api.GET("/api/v1/projects/{id}/quality/", path)),
    refetchInterval: 30_000,
  });
  const setData = (data: Awaited<ReturnType<typeof quality.refetch>>["data"]) => queryClient.setQueryData(["quality", projectId], data);
  const exclusionPath = (row: AnnotatorQuality) => ({ params: { path: { id: projectId, user_id: row.annotator_id } } });
  const exclude = useMutation({
    mutationFn: async (row: AnnotatorQuality) =>
      unwrap(
        await api.POST("/api/v1/projects/{id}/quality/annotators/{user_id}/exclusion/", {
          ...exclusionPath(row),
          body: { reason: row.flags.map((f) => f.code).join(", ") },
        }),
      ),
    onSuccess: setData,
  });
  const restore = useMutation({
    mutationFn: async (row: AnnotatorQuality) => unwrap(await api.DELETE("/api/v1/projects/{id}/quality/annotators/{user_id}/exclusion/", exclusionPath(row))),
    onSuccess: setData,
  });
  const resume = useMutation({
    mutationFn: async (row: AnnotatorQuality) => unwrap(await api.DELETE("/api/v1/projects/{id}/quality/annotators/{user_id}/pause/", exclusionPath(row))),
    onSuccess: setData,
  });
  const recompute = useMutation({
    mutationFn: async () => unwrap(await api.POST("/api/v1/projects/{id}/quality/recompute/", path)),
  });
  const failure = quality.error ?? exclude.error ?? restore.error ?? resume.error ?? recompute.error;
  const data = quality.data;
  const choice = (data?.statistics as Statistics | undefined)?.choice;
  const pending = [exclude, restore, resume].find((m) => m.isPending)?.variables?.annotator_id ?? null;
  return (
    <section aria-label="Label quality">
      <h2>Label quality</h2>
      {failure && (
        <p role="alert" className="error">
          {failure.message}
        </p>
      )}
      {data && (
        <p data-testid="quality-summary">
          {data.computed_at
            ? `Computed ${new Date(data.computed_at).toLocaleString()} from ${data.judgment_count} judgments (${data.new_judgments} since). `
            : "Not computed yet. "}
          {choice && `Krippendorff's alpha ${fixed(choice.krippendorff_alpha)}, Fleiss' kappa ${fixed(choice.fleiss_kappa)} over ${choice.pairable_units ?? 0} comparisons judged more than once. `}
          <button type="button" onClick={() => recompute.mutate()} disabled={recompute.isPending}>
            Recompute now
          </button>
          {recompute.isSuccess && <span role="status"> Recomputing; refresh in a moment.</span>}
        </p>
      )}
      {data && (
        <QualityTable
          rows={data.annotators}
          onExclude={(row) => exclude.mutate(row)}
          onRestore={(row) => restore.mutate(row)}
          onResume={(row) => resume.mutate(row)}
          pending={pending}
        />
      )}
      <Agreement projectId={projectId} />
      <GoldPromotion projectId={projectId} />
      <GoldSettingsForm projectId={projectId} />
    </section>
  );
}

function fixed(value: number | null | undefined): string {
  return value === null || value === undefined ? "—" : value.toFixed(3);
}
