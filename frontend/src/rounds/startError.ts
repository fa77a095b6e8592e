/** What a refused start says: the API's message and, per field, its complaints (``config.policy`` …). */
import { HttpError } from "../api/client";

export type FieldError = { field: string; messages: string[] };

export function startErrorOf(error: unknown): { message: string; fields: FieldError[] } | null {
  if (!error) return null;
  if (!(error instanceof HttpError)) return { message: error instanceof Error ? error.message : String(error), fields: [] };
  const fields = Object.entries(error.body?.errors ?? {})
    .filter(([, messages]) => Array.isArray(messages) && messages.length > 0)
    .map(([field, messages]) => ({ field, messages }));
  return { message: error.body?.message || error.message, fields };
}
