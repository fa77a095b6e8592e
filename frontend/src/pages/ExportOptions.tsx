/** The export form's inputs in three groups: what file (shape, format, media), which judgments (filters), and how
 * pairs are made (pair shapes only). Every input shows the value it starts with, so an untouched form says what it
 * will export; empty filters say in words that they do not filter. */
import { type ExportForm, PAIR_SHAPES } from "./exportRequest";

type Set = <K extends keyof ExportForm>(key: K) => (value: ExportForm[K]) => void;

export function ExportOptions({ form, set }: { form: ExportForm; set: Set }) {
  return (
    <>
      <fieldset className="row">
        <legend>Shape and format</legend>
        <label>
          Shape
          <select value={form.shape} onChange={(e) => set("shape")(e.target.value as ExportForm["shape"])}>
            <option value="pairs">pairs</option>
            <option value="rankings">rankings</option>
            <option value="judgments">judgments</option>
            <option value="consensus">consensus</option>
          </select>
        </label>
        <label>
          Format
          <select value={form.fileFormat} onChange={(e) => set("fileFormat")(e.target.value as ExportForm["fileFormat"])}>
            <option value="jsonl">jsonl</option>
            <option value="csv">csv</option>
            <option value="parquet">parquet</option>
            <option value="hf">hf (datasets)</option>
          </select>
        </label>
        <label>
          Media
          <select value={form.media} onChange={(e) => set("media")(e.target.value as ExportForm["media"])}>
            <option value="urls">links (stable URLs)</option>
            <option value="pack">packed beside the file</option>
          </select>
        </label>
        {form.fileFormat === "csv" && (
          <label>
            <input type="checkbox" checked={form.spreadsheetSafe} onChange={(e) => set("spreadsheetSafe")(e.target.checked)} />
            Safe for spreadsheets (a ' before cells starting with = + - @)
          </label>
        )}
      </fieldset>
      {/* Plain text dates (ISO 8601, a date or a date-time) rather than date pickers: Chromium draws no focus
          ring on a picker's inner fields. The server checks every filter and names what is wrong. */}
      <fieldset className="row">
        <legend>Filters (empty: no limit)</legend>
        <label>
          Split
          <select value={form.split} onChange={(e) => set("split")(e.target.value as ExportForm["split"])}>
            <option value="">any</option>
            <option value="train">train</option>
            <option value="eval">eval</option>
          </select>
        </label>
        <label>
          Gold checks
          <select value={form.gold} onChange={(e) => set("gold")(e.target.value as ExportForm["gold"])}>
            <option value="exclude">exclude</option>
            <option value="include">include</option>
            <option value="only">only</option>
          </select>
        </label>
        <label>
          From (YYYY-MM-DD, judged on or after)
          <input value={form.dateFrom} onChange={(e) => set("dateFrom")(e.target.value)} />
        </label>
        <label>
          To (YYYY-MM-DD, judged before)
          <input value={form.dateTo} onChange={(e) => set("dateTo")(e.target.value)} />
        </label>
        <label>
          Annotators (comma-separated, empty = all)
          <input value={form.annotators} onChange={(e) => set("annotators")(e.target.value)} />
        </label>
        <label>
          Rounds (ids, comma-separated; "none" = not from a round; empty = all)
          <input value={form.rounds} onChange={(e) => set("rounds")(e.target.value)} />
        </label>
        <label>
          Minimum agreement (0–1, empty = any)
          <input type="number" min={0} max={1} step={0.05} value={form.minAgreement} onChange={(e) => set("minAgreement")(e.target.value)} />
        </label>
      </fieldset>
      {PAIR_SHAPES.has(form.shape) && (
        <fieldset className="row">
          <legend>Pair options</legend>
          <label>
            Pair form
            <select value={form.pairForm} onChange={(e) => set("pairForm")(e.target.value as ExportForm["pairForm"])}>
              <option value="standard">standard (prompt, chosen, rejected)</option>
              <option value="conversational">conversational (messages)</option>
            </select>
          </label>
          <label>
            Ties
            <select value={form.ties} onChange={(e) => set("ties")(e.target.value as ExportForm["ties"])}>
              <option value="drop">drop</option>
              <option value="soft">keep as soft labels</option>
            </select>
          </label>
          <label>
            Margin scale (strength → margin)
            <input type="number" step={0.1} value={form.marginScale} onChange={(e) => set("marginScale")(e.target.value)} />
          </label>
        </fieldset>
      )}
    </>
  );
}
