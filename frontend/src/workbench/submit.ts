/** Submitting a judgment: retried on network failures and server errors with the
 * same idempotency key (the server answers a repeat with the first result), never
 * retried on a 4xx, which names what is wrong. */
import { api, type ApiError, HttpError, type JudgmentRequest } from "../api/client";

export type SubmitOutcome = { status: "saved"; judgment: number } | { status: "not-needed"; message: string };

export const RETRY_DELAYS_MS = [300, 1000, 2000, 4000, 8000];

export async function submitWithRetry(
  comparison: number,
  idempotencyKey: string,
  body: JudgmentRequest,
  onRetry: (attempt: number, error: string) => void = () => {},
  delays: number[] = RETRY_DELAYS_MS,
): Promise<SubmitOutcome> {
  for (let attempt = 0; ; attempt++) {
    let failure: string;
    try {
      const result = await api.POST("/api/v1/comparisons/{id}/judgments/", {
        params: { path: { id: comparison }, header: { "Idempotency-Key": idempotencyKey } },
        body,
      });
      const status = result.response.status;
      if (result.response.ok && result.data) return { status: "saved", judgment: result.data.id };
      const error = result.error as ApiError | undefined;
      if (status === 409) return { status: "not-needed", message: error?.message ?? "No longer needed." };
      if (status < 500) throw new HttpError(status, error);
      failure = `server error ${status}`;
    } catch (error) {
      if (error instanceof HttpError) throw error;
      failure = error instanceof Error ? error.message : String(error); // the network failed
    }
    if (attempt >= delays.length) throw new Error(`Could not submit after ${attempt + 1} tries (${failure}). Your draft is kept; press Ctrl+Enter to try again.`);
    onRetry(attempt + 1, failure);
    await new Promise((resolve) => setTimeout(resolve, delays[attempt]));
  }
}
