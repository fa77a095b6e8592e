/** The shapes the rounds feature reads, from the typed client. */
import type { Schemas } from "../api/client";

export type Round = Schemas["Round"];
export type RoundStep = Schemas["RoundStep"];
export type WinRate = Schemas["WinRate"];
export type ModelVersion = Schemas["ModelVersion"];
export type PolicySample = Schemas["PolicySample"];
/** openapi-typescript makes every field with a server default required (its defaultNonNullable), which is
 * right for responses but not for this request: only the prompt is needed; the rest falls back to the server's
 * defaults. */
export type PolicySampleRequest = Pick<Schemas["PolicySampleRequestRequest"], "prompt"> & Partial<Schemas["PolicySampleRequestRequest"]>;
export type RoundKind = Schemas["RoundStartKindEnum"];
