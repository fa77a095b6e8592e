import { EMPTY_EXPORT_FORM, exportRequestBody, isLive } from "./exportRequest";

test("an untouched form asks for JSONL pairs without gold and leaves the other filters to the server", () => {
  expect(exportRequestBody(EMPTY_EXPORT_FORM)).toEqual({ shape: "pairs", file_format: "jsonl", filters: { gold: "exclude" }, media: "urls" });
});

test("the filters the user set are sent, annotators as a list of trimmed names", () => {
  const body = exportRequestBody({
    ...EMPTY_EXPORT_FORM,
    shape: "judgments",
    fileFormat: "csv",
    split: "eval",
    gold: "only",
    dateFrom: "2026-11-01",
    dateTo: "2026-12-01",
    annotators: " anna, rita ,,",
    rounds: "12, none",
    minAgreement: "0.75",
    media: "pack",
  });
  expect(body).toEqual({
    shape: "judgments",
    file_format: "csv",
    filters: {
      gold: "only",
      split: "eval",
      date_from: "2026-11-01",
      date_to: "2026-12-01",
      annotators: ["anna", "rita"],
      rounds: ["12", "none"],
      min_agreement: 0.75,
    },
    options: { spreadsheet_safe: true },
    media: "pack",
  });
});

test("a CSV export neutralises spreadsheet formulas unless the user turns it off; other formats never ask", () => {
  const csv = { ...EMPTY_EXPORT_FORM, fileFormat: "csv" as const };
  expect(exportRequestBody(csv).options).toEqual({ spreadsheet_safe: true });
  expect(exportRequestBody({ ...csv, shape: "judgments" }).options).toEqual({ spreadsheet_safe: true });
  expect(exportRequestBody({ ...csv, spreadsheetSafe: false })).not.toHaveProperty("options");
  expect(exportRequestBody({ ...EMPTY_EXPORT_FORM, fileFormat: "parquet" })).not.toHaveProperty("options");
});

test("pair options go with the shapes made of pairs, and only the ones changed from the defaults", () => {
  const form = { ...EMPTY_EXPORT_FORM, pairForm: "conversational" as const, ties: "soft" as const, marginScale: "0.5" };
  expect(exportRequestBody({ ...form, shape: "pairs" }).options).toEqual({ form: "conversational", ties: "soft", margin_scale: 0.5 });
  expect(exportRequestBody({ ...form, shape: "rankings", ties: "drop", marginScale: "" }).options).toEqual({ form: "conversational" });
  // The margin scale starts at its default, shown in the field; left there, the server's default applies.
  expect(exportRequestBody({ ...form, shape: "pairs", ties: "drop", marginScale: EMPTY_EXPORT_FORM.marginScale }).options).toEqual({ form: "conversational" });
  // The judgments and consensus shapes have no pairs: their request carries no options to be refused.
  expect(exportRequestBody({ ...form, shape: "judgments" })).not.toHaveProperty("options");
  expect(exportRequestBody({ ...form, shape: "consensus" })).not.toHaveProperty("options");
});

test("queued and running jobs are live; finished ones are not", () => {
  expect(["queued", "running", "succeeded", "failed"].map((status) => isLive({ status }))).toEqual([true, true, false, false]);
});
