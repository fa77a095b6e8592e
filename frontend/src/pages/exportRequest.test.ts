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
    minAgreement: "0.75",
  });
  expect(body).toEqual({
    shape: "judgments",
    file_format: "csv",
    filters: { gold: "only", split: "eval", date_from: "2026-11-01", date_to: "2026-12-01", annotators: ["anna", "rita"], min_agreement: 0.75 },
    media: "urls",
  });
});

test("queued and running jobs are live; finished ones are not", () => {
  expect(["queued", "running", "succeeded", "failed"].map((status) => isLive({ status }))).toEqual([true, true, false, false]);
});
