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
  rounds: string;
  minAgreement: string;
  pairForm: Schemas["FormEnum"];
  ties: Schemas["TiesEnum"];
  marginScale: string;
  /** csv: neutralise cells a spreadsheet would run as formulas (on by default here; the API's default is off). */
  spreadsheetSafe: boolean;
  media: Schemas["MediaEnum"];
};

export const EMPTY_EXPORT_FORM: ExportForm = {
  shape: "pairs",
  fileFormat: "jsonl",
  split: "",
  gold: "exclude",
  dateFrom: "",
  dateTo: "",
  annotators: "",
  rounds: "",
  minAgreement: "",
  pairForm: "standard",
  ties: "drop",
  marginScale: "1",
  spreadsheetSafe: true,
  media: "urls",
};

/** Shapes whose rows are preference pairs: only they read the pair options. */
export const PAIR_SHAPES: ReadonlySet<Schemas["ShapeEnum"]> = new Set(["pairs", "rankings"]);

const commaList = (text: string) =>
  text
    .split(",")
    .map((item) => item.trim())
    .filter(Boolean);

/** Only the filters the user set go to the server, so its defaults (and its card's record of them) apply. */
export function exportRequestBody(form: ExportForm): Schemas["ExportCreateRequest"] {
  const filters: Schemas["ExportFiltersRequest"] = { gold: form.gold };
  if (form.split) filters.split = form.split;
  if (form.dateFrom) filters.date_from = form.dateFrom;
  if (form.dateTo) filters.date_to = form.dateTo;
  const annotators = commaList(form.annotators);
  if (annotators.length) filters.annotators = annotators;
  const rounds = commaList(form.rounds);
  if (rounds.length) filters.rounds = rounds;
  // The field is an <input type="number">: the browser hands over "" for anything that is not a number.
  if (form.minAgreement.trim()) filters.min_agreement = Number(form.minAgreement);
  const body: Schemas["ExportCreateRequest"] = { shape: form.shape, file_format: form.fileFormat, filters, media: form.media };
  const options: Schemas["ExportOptionsRequest"] = {};
  if (PAIR_SHAPES.has(form.shape)) {
    if (form.pairForm !== EMPTY_EXPORT_FORM.pairForm) options.form = form.pairForm;
    if (form.ties !== EMPTY_EXPORT_FORM.ties) options.ties = form.ties;
    const margin = form.marginScale.trim();
    if (margin && Number(margin) !== Number(EMPTY_EXPORT_FORM.marginScale)) options.margin_scale = Number(margin);
  }
  if (form.fileFormat === "csv" && form.spreadsheetSafe) options.spreadsheet_safe = true;
  if (Object.keys(options).length) body.options = options;
  return body;
}

export const isLive = (job: { status: string }) => job.status === "queued" || job.status === "running";
