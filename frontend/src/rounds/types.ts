/** The shapes the rounds feature reads, from the typed client. */
import type { Schemas } from "../api/client";

export type Round = Schemas["Round"];
export type RoundStep = Schemas["RoundStep"];
export type WinRate = Schemas["WinRate"];
export type ModelVersion = Schemas["ModelVersion"];
export type PolicySample = Schemas["PolicySample"];
export type PolicySampleRequest = Schemas["PolicySampleRequestRequest"];
export type RoundKind = Schemas["RoundStartKindEnum"];
