/** The export panel's form, and the API request it becomes (POST projects/{id}/exports/). */
import type { Schemas } from "../api/client";

export type ExportForm = {
  shape: Schemas["ShapeEnum"];
  fileFormat: Schemas["ExportFileFormatEnum"];
  split: "" | Schemas["SplitEnum"];
  gold: Schemas["GoldEnum"];
  dateFrom: string;
  dateTo: string;
  annotators: string;
  minAgreement: string;
};

export const EMPTY_EXPORT_FORM: ExportForm = {
  shape: "pairs",
  fileFormat: "jsonl",
  split: "",
  gold: "exclude",
  dateFrom: "",
  dateTo: "",
  annotators: "",
  minAgreement: "",
};

/** Only the filters the user set go to the server, so its defaults (and its card's record of them) apply. */
export function exportRequestBody(form: ExportForm): Schemas["ExportCreateRequest"] {
  const filters: Schemas["ExportFiltersRequest"] = { gold: form.gold };
  if (form.split) filters.split = form.split;
  if (form.dateFrom) filters.date_from = form.dateFrom;
  if (form.dateTo) filters.date_to = form.dateTo;
  const annotators = form.annotators
    .split(",")
    .map((name) => name.trim())
    .filter(Boolean);
  if (annotators.length) filters.annotators = annotators;
  // The field is an <input type="number">: the browser hands over "" for anything that is not a number.
  if (form.minAgreement.trim()) filters.min_agreement = Number(form.minAgreement);
  return { shape: form.shape, file_format: form.fileFormat, filters, media: "urls" };
}

export const isLive = (job: { status: string }) => job.status === "queued" || job.status === "running";
