/** Cancel and retry for a background job (an import or an export; the server's lifecycle is annotation/jobs.py):
 * a queued or running job can be cancelled, a failed or cancelled one retried, a succeeded one neither. A running
 * job stops at its next progress report, so between the click and then it shows "cancelling". */
import type { Schemas } from "../api/client";

export type JobStatus = Schemas["JobStatusEnum"];
export type Job = { id: number; status?: JobStatus; cancel_requested?: boolean };

/** What the job's action buttons offer, in order: one state per status (and a running job asked to stop). */
export type JobAction = "cancel" | "cancelling" | "retry" | "none";

export function jobAction(job: Job): JobAction {
  if (job.status === "queued" || job.status === "running") return job.cancel_requested ? "cancelling" : "cancel";
  if (job.status === "failed" || job.status === "cancelled") return "retry";
  return "none";
}

export function JobActions({
  noun,
  job,
  busy,
  onCancel,
  onRetry,
}: {
  noun: "import" | "export";
  job: Job;
  busy: boolean;
  onCancel: (jobId: number) => void;
  onRetry: (jobId: number) => void;
}) {
  const action = jobAction(job);
  if (action === "none") return null;
  if (action === "retry") {
    return (
      <button type="button" onClick={() => onRetry(job.id)} disabled={busy} aria-label={`Retry ${noun} ${job.id}`}>
        {busy ? "Retrying…" : "Retry"}
      </button>
    );
  }
  return (
    <button
      type="button"
      onClick={() => onCancel(job.id)}
      disabled={busy || action === "cancelling"}
      aria-label={`Cancel ${noun} ${job.id}`}
    >
      {action === "cancelling" || busy ? "Cancelling…" : "Cancel"}
    </button>
  );
}
