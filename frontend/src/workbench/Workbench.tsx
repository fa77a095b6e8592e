/**
 * The annotator's workbench: one task at a time, answered from the keyboard
 * (workbench/keymap.ts), the draft kept locally until the server has it.
 *
 * The next task is fetched while the annotator works on this one (the queue's
 * lease-ahead, `next?ahead=1`), so a submission shows it at once and is saved in
 * the background. A submission that fails brings its task back on screen, draft
 * and error with it; one the queue no longer needed is reported above the next task.
 */
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { useCallback, useEffect, useMemo, useReducer, useRef, useState } from "react";
import { api, type JudgmentRequest, type Project, type Task, unwrap, type WorkRow } from "../api/client";
import { Link } from "../router";
import { type Draft, type LabelingSchema, judgmentReducer, missing, newDraft, readSchema, spanId, toRequest } from "./judgment";
import { isTypingTarget, keyAction, shortcuts } from "./keymap";
import { GoldBanner } from "./GoldBanner";
import { Markdown } from "./Markdown";
import { newTransport, SyncedMedia, ZoomImage } from "./Media";
import { sliceCodePoints } from "./offsets";
import { draftDrop, draftLoad, draftSave } from "./persistence";
import { SpanText } from "./SpanText";
import { contextSize, describeMark, spanLabel, truncate, type Turn, turnText } from "./marks";
import { type SubmitOutcome, submitWithRetry } from "./submit";

const LETTERS = "ABCDEFGHIJKLMNOP";
/** Context longer than this (characters) starts folded. */
const CONTEXT_OPEN_BELOW = 600;
/** How a span is marked, by the project's modality (the hint above the candidates). */
const MARK_HOW: Record<string, string> = {
  text: "select words in an answer",
  image: "drag a box on an image",
  audio: "press “Mark from here” and “…to here” while it plays",
  video: "press “Mark from here” and “…to here” while it plays",
};

/** A task with how far this browser's clock is behind the server's (the lease ends on the server's clock). */
export type ServedTask = Task & { clockOffsetMs: number };

/** The current task (the oldest lease held), or with `ahead` the one after it. */
export async function fetchNextTask(projectId: number, ahead = false): Promise<ServedTask | null> {
  const result = await api.GET("/api/v1/projects/{id}/next/", {
    params: { path: { id: projectId }, query: ahead ? { ahead: 1 } : {} },
  });
  if (result.response.status === 204) return null;
  const served = Date.parse(result.response.headers.get("Date") ?? "");
  // The Date header has whole seconds: correct only a skew larger than that.
  const offset = Number.isNaN(served) ? 0 : served - Date.now();
  return { ...unwrap(result), clockOffsetMs: Math.abs(offset) > 2000 ? offset : 0 };
}

export function Workbench({ projectId, userId }: { projectId: number; userId: number }) {
  const queryClient = useQueryClient();
  const project = useQuery({
    queryKey: ["project", projectId],
    queryFn: async () => unwrap(await api.GET("/api/v1/projects/{id}/", { params: { path: { id: projectId } } })),
  });
  const work = useQuery({
    queryKey: ["work"],
    queryFn: async () => unwrap(await api.GET("/api/v1/me/work/")),
    // Now and then, not per label: a gold warning from the latest quality computation shows up in a long session.
    refetchInterval: 5 * 60_000,
  });
  const task = useQuery({
    queryKey: ["task", projectId],
    queryFn: () => fetchNextTask(projectId),
    staleTime: Infinity,
    gcTime: 0,
    refetchOnWindowFocus: false,
    retry: 1,
  });
  const [notice, setNotice] = useState<string | null>(null);
  // A submission saving in the background, and one that failed (its task comes back).
  const [saving, setSaving] = useState<string | null>(null);
  const [failed, setFailed] = useState<{ comparison: number; draft: Draft; error: string } | null>(null);
  const inFlight = useRef<Promise<unknown>>(Promise.resolve());
  const current = task.data?.comparison;
  // The task after this one, leased while the annotator works on this one. Not
  // while a submission is in flight: the server would still count the submitted
  // task as held and answer with the one on screen.
  const upcoming = useQuery({
    queryKey: ["task", projectId, "ahead", current],
    queryFn: () => fetchNextTask(projectId, true),
    enabled: current !== undefined && saving === null,
    staleTime: Infinity,
    gcTime: 0,
    refetchOnWindowFocus: false,
    retry: 1,
  });

  // Counted here, not refetched: me/work counts the whole project's open comparisons, which is no query to
  // repeat after every label. The projects page fetches the real figures when it is opened.
  const countSaved = useCallback(() => {
    queryClient.setQueryData<WorkRow[]>(["work"], (rows) =>
      rows?.map((row) => (row.project === projectId ? { ...row, done_today: row.done_today + 1 } : row)),
    );
  }, [projectId, queryClient]);

  const next = useCallback(
    async (message: string | null, saved = false) => {
      await inFlight.current; // the server must know the last answer before it names the oldest lease
      setNotice(message);
      if (saved) countSaved();
      queryClient.setQueryData(["task", projectId], await fetchNextTask(projectId));
    },
    [countSaved, projectId, queryClient],
  );

  const lostLease = (outcome: SubmitOutcome) =>
    outcome.status === "saved"
      ? null
      : `The last task no longer needed your judgment (your lease ran out and others finished it); nothing was saved. ${outcome.message}`;

  /** Submit `draft`: with the next task already here, show it and save in the
   * background; else (the last task, or the prefetch not back yet) wait for the
   * save and then ask for the next task. Rejects with what to show the annotator. */
  const submitDraft = useCallback(
    async (answered: ServedTask, draft: Draft, body: JudgmentRequest, onRetry: (message: string) => void) => {
      const following = upcoming.data;
      const send = (retry: (attempt: number, why: string) => void) =>
        submitWithRetry(answered.comparison, draft.idempotencyKey, body, retry);
      const followingLive = !!following && Date.parse(following.lease_expires_at) - following.clockOffsetMs > Date.now();
      if (!following || !followingLive || following.comparison === answered.comparison || saving !== null) {
        await inFlight.current;
        const outcome = await send((attempt, why) => onRetry(`Network trouble (${why}); retrying (try ${attempt + 1})…`));
        draftDrop(userId, answered.comparison);
        setFailed((f) => (f?.comparison === answered.comparison ? null : f));
        await next(lostLease(outcome), outcome.status === "saved");
        return;
      }
      setNotice(null);
      setFailed(null);
      setSaving("Saving your last answer…");
      queryClient.setQueryData(["task", projectId], following);
      const saved = send((attempt, why) => setSaving(`Saving your last answer: network trouble (${why}); retrying (try ${attempt + 1})…`))
        .then((outcome) => {
          draftDrop(userId, answered.comparison);
          if (outcome.status === "saved") countSaved();
          else setNotice(lostLease(outcome));
        })
        .catch((error: unknown) => {
          // Back to the task that failed, with its draft: the one shown meanwhile stays leased and comes next.
          setFailed({ comparison: answered.comparison, draft, error: error instanceof Error ? error.message : String(error) });
          queryClient.setQueryData(["task", projectId], answered);
        })
        .finally(() => setSaving(null));
      inFlight.current = saved;
    },
    [countSaved, next, projectId, queryClient, saving, upcoming.data, userId],
  );

  if (project.isError) return <p role="alert">{String(project.error.message)}</p>;
  if (task.isError) return <p role="alert">Could not load a task: {task.error.message}</p>;
  if (!project.data || task.isPending) return <p aria-busy="true">Loading…</p>;
  const workRow = work.data?.find((row) => row.project === projectId);
  const today = workRow?.done_today ?? 0;
  const schema = readSchema(project.data.schema);

  return (
    <div className="workbench">
      <header className="bar">
        <Link to="/">← Projects</Link>
        <h1>{project.data.name}</h1>
        <span className="today" data-testid="today-count">Today: {today}</span>
      </header>
      <GoldBanner row={workRow} />
      {notice && (
        <p className="notice" role="status">
          {notice}
        </p>
      )}
      {saving && (
        <p className="saving" role="status" data-testid="saving">
          {saving}
        </p>
      )}
      {task.data ? (
        <TaskScreen
          key={task.data.comparison}
          task={task.data}
          project={project.data}
          schema={schema}
          userId={userId}
          failed={failed?.comparison === task.data.comparison ? failed : null}
          onSubmit={submitDraft}
          onDone={next}
        />
      ) : (
        <section className="empty" data-testid="queue-empty">
          <h2>All done</h2>
          <p>Nothing is left for you in this project right now. You judged {today} today.</p>
          <Link to="/">Back to your projects</Link>
        </section>
      )}
    </div>
  );
}

/** A mark waiting for its category (text: code points; audio/video: seconds; image: a box), then for its note. */
type Mark = { candidate: number; start: number | null; end: number | null; box: [number, number, number, number] | null };
type Pending = (Mark & { step: "category" }) | { step: "note"; spanId: string };

function TaskScreen({
  task,
  project,
  schema,
  userId,
  failed,
  onSubmit,
  onDone,
}: {
  task: ServedTask;
  project: Project;
  schema: LabelingSchema;
  userId: number;
  failed: { draft: Draft; error: string } | null;
  onSubmit: (task: ServedTask, draft: Draft, body: JudgmentRequest, onRetry: (message: string) => void) => Promise<void>;
  onDone: (notice: string | null, saved?: boolean) => Promise<void>;
}) {
  const ids = task.candidates.map((c) => c.id);
  const reducer = useMemo(() => judgmentReducer(schema), [schema]);
  const [draft, dispatch] = useReducer(
    reducer,
    null,
    () => failed?.draft ?? draftLoad(userId, task.comparison, ids) ?? newDraft(task.comparison, ids),
  );
  const [pending, setPending] = useState<Pending | null>(null);
  const [busy, setBusy] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(failed?.error ?? null);
  const [help, setHelp] = useState(false);
  const [guidelines, setGuidelines] = useState(false);
  const [markdown, setMarkdown] = useState(false);
  const [zoomed, setZoomed] = useState(false);
  const [confirmSkip, setConfirmSkip] = useState(false);
  const context = Array.isArray(task.prompt.context) ? (task.prompt.context as Turn[]) : [];
  const size = contextSize(context);
  // Short context reads at a glance; long context (retrieved passages) would push the question off screen.
  const [contextOpen, setContextOpen] = useState(size.characters <= CONTEXT_OPEN_BELOW && context.length <= 3);
  const transport = useMemo(newTransport, [task.comparison]);
  const questionRef = useRef<HTMLDivElement>(null);
  const confirmRef = useRef<HTMLButtonElement>(null);
  const errorRef = useRef<HTMLParagraphElement>(null);
  const rationaleRef = useRef<HTMLTextAreaElement>(null);
  const ratingsRef = useRef<HTMLDivElement>(null);
  const noteRef = useRef<HTMLInputElement>(null);
  const pickerRef = useRef<HTMLDivElement>(null);
  const submitting = useRef(false);

  useEffect(() => draftSave(userId, draft), [userId, draft]);
  useEffect(() => {
    // A task back from a failed submission shows why; a new one starts at its top with the question in view,
    // focused so a screen reader reads it (the shortcuts listen on the window: the keyboard flow goes on).
    if (failed) {
      errorRef.current?.scrollIntoView({ block: "center" });
      return;
    }
    window.scrollTo({ top: 0, left: 0, behavior: "instant" });
    questionRef.current?.focus({ preventScroll: true });
  }, []); // once per task: the screen is keyed by it
  useEffect(() => {
    if (confirmSkip) confirmRef.current?.focus();
  }, [confirmSkip]);
  useEffect(() => {
    // Keys go where the step needs them: the picker takes digits, the note field text.
    if (pending?.step === "note") noteRef.current?.focus();
    if (pending?.step === "category") pickerRef.current?.focus();
  }, [pending]);

  const byId = useMemo(() => Object.fromEntries(task.candidates.map((c) => [c.id, c])), [task.candidates]);
  const shown = draft.shownOrder.map((id) => byId[id]);
  const categories = schema.span_categories;
  const blockers = missing(draft, schema);

  const submit = useCallback(async () => {
    if (submitting.current) return;
    if (blockers.length) {
      setError(`Not yet: ${blockers.join("; ")}.`);
      return;
    }
    submitting.current = true;
    setError(null);
    setBusy("Submitting…");
    try {
      await onSubmit(task, draft, toRequest(draft, schema), setBusy);
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
      setBusy(null);
    } finally {
      submitting.current = false;
    }
  }, [blockers, draft, onSubmit, schema, task]);

  const skip = useCallback(async () => {
    if (submitting.current) return;
    submitting.current = true;
    setConfirmSkip(false);
    setBusy("Skipping…");
    try {
      unwrap(await api.POST("/api/v1/comparisons/{id}/skip/", { params: { path: { id: task.comparison } } }));
      draftDrop(userId, task.comparison);
      await onDone(`You skipped the last task (“${truncate(task.prompt.text, 80)}”). It goes to other annotators and will not come back to you.`);
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
      setBusy(null);
    } finally {
      submitting.current = false;
    }
  }, [onDone, task.comparison, task.prompt.text, userId]);

  const pickCategory = useCallback(
    (index: number) => {
      if (pending?.step !== "category") return;
      const category = categories[index];
      if (!category) return;
      const id = spanId();
      const { candidate, start, end, box } = pending;
      dispatch({ type: "addSpan", span: { id, candidate, category: category.key, start, end, box, note: "" } });
      window.getSelection()?.removeAllRanges();
      setPending({ step: "note", spanId: id }); // focus the new span's note: Enter leaves it empty
    },
    [categories, pending],
  );

  useEffect(() => {
    function onKey(event: KeyboardEvent) {
      const target = event.target as HTMLElement | null;
      const typing = isTypingTarget(target);
      const selection = window.getSelection();
      const action = keyAction(event, {
        arity: draft.shownOrder.length,
        allowTie: schema.allow_tie,
        hasStrength: !!schema.strength,
        typing,
        pickingCategory: pending?.step === "category",
        categoryCount: categories.length,
        selecting: !!selection && !selection.isCollapsed && selection.toString().trim() !== "",
        confirmingSkip: confirmSkip,
      });
      if (!action) return;
      // An open panel takes no answers: only its own keys (and Esc) act.
      if ((help || guidelines) && !["escape", "help", "guidelines"].includes(action.type)) return;
      event.preventDefault();
      switch (action.type) {
        case "submit":
          void submit();
          break;
        case "skip":
          if (confirmSkip) void skip();
          else setConfirmSkip(true);
          break;
        case "escape":
          if (help) setHelp(false);
          else if (guidelines) setGuidelines(false);
          else if (confirmSkip) setConfirmSkip(false);
          else if (pending) {
            setPending(null);
            selection?.removeAllRanges();
          } else if (typing) target?.blur();
          else selection?.removeAllRanges();
          break;
        case "context":
          setContextOpen((open) => !open);
          break;
        case "help":
          setHelp((h) => !h);
          break;
        case "guidelines":
          setGuidelines((g) => !g);
          break;
        case "markdown":
          setMarkdown((m) => !m);
          break;
        case "focusRationale":
          rationaleRef.current?.focus();
          break;
        case "focusRatings":
          (ratingsRef.current?.querySelector("input:checked, input") as HTMLInputElement | null)?.focus();
          break;
        case "category":
          pickCategory(action.index);
          break;
        default:
          dispatch(action);
      }
    }
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [categories.length, confirmSkip, draft.shownOrder.length, guidelines, help, pending, pickCategory, schema, skip, submit]);

  return (
    <div className={`task${busy ? " busy" : ""}`} data-testid="task" data-comparison={task.comparison}>
      <div className="task-meta">
        <LeaseCountdown expiresAt={task.lease_expires_at} clockOffsetMs={task.clockOffsetMs} />
        <button type="button" onClick={() => setGuidelines(true)}>Guidelines <kbd>H</kbd></button>
        <button type="button" onClick={() => setMarkdown((m) => !m)} aria-pressed={markdown}>Markdown <kbd>M</kbd></button>
        <button type="button" onClick={() => setHelp(true)}>Shortcuts <kbd>?</kbd></button>
      </div>

      <section className="prompt" aria-label="Prompt">
        {/* The question first, always in view; the context before it (earlier turns, passages) folds away. */}
        <div className="question" data-testid="question" ref={questionRef} tabIndex={-1}>
          {markdown ? <Markdown source={task.prompt.text} /> : task.prompt.text}
        </div>
        {context.length > 0 && (
          <details className="context" open={contextOpen} onToggle={(e) => setContextOpen(e.currentTarget.open)} data-testid="context">
            <summary>
              Context: {size.label} <kbd>C</kbd> {contextOpen ? "hide" : "show"}
            </summary>
            <ol className="chat" aria-label="Conversation so far" tabIndex={0}>
              {context.map((turn, i) => (
                <li key={i} className={`turn ${turn.role ?? ""}`}>
                  <strong>{String(turn.role ?? "turn")}:</strong> {turnText(turn)}
                </li>
              ))}
            </ol>
          </details>
        )}
      </section>
      {categories.length > 0 && (
        <p className="span-hint" data-testid="span-hint">
          To mark a span, {MARK_HOW[project.modality ?? "text"] ?? MARK_HOW.text}, then press its category’s number:{" "}
          {categories.map((c, i) => (
            <span key={c.key} className="span-hint-category">
              <span className="swatch" style={{ background: c.color }} aria-hidden /> <kbd>{i + 1}</kbd> {c.label}
            </span>
          ))}
        </p>
      )}

      <div className="candidates" style={{ gridTemplateColumns: `repeat(${shown.length}, minmax(0, 1fr))` }}>
        {shown.map((candidate, position) => {
          const letter = LETTERS[position];
          const chosen = draft.winner === candidate.id;
          const rank = draft.ranking.indexOf(candidate.id);
          const label = `Candidate ${letter}`;
          return (
            <article
              key={candidate.id}
              className={`candidate${chosen ? " chosen" : ""}${draft.tie ? " tied" : ""}`}
              data-testid={`candidate-${position + 1}`}
              data-candidate={candidate.id}
              aria-label={label}
            >
              <header>
                <button
                  type="button"
                  onClick={() => dispatch({ type: "choose", position })}
                  aria-pressed={shown.length === 2 ? chosen : rank >= 0}
                >
                  <kbd>{position + 1}</kbd> {label}
                  {chosen && " — preferred"}
                  {rank >= 0 && ` — rank ${rank + 1}`}
                </button>
              </header>
              <div className="candidate-body" tabIndex={0} aria-label={`${label} content`}>
                <CandidateContent
                  candidate={candidate}
                  label={label}
                  markdown={markdown}
                  spans={draft.spans.filter((s) => s.candidate === candidate.id)}
                  categories={categories}
                  zoomed={zoomed}
                  onZoom={() => setZoomed((z) => !z)}
                  transport={transport}
                  project={project}
                  onMark={(mark) => setPending(mark && categories.length ? { box: null, start: null, end: null, ...mark, candidate: candidate.id, step: "category" } : null)}
                />
              </div>
            </article>
          );
        })}
      </div>

      {confirmSkip && (
        <div className="picker confirm" role="alertdialog" aria-label="Skip this task?" aria-describedby="skip-why" data-testid="skip-confirm">
          <p id="skip-why">Skip this task? It goes to other annotators and will not come back to you.</p>
          <button type="button" ref={confirmRef} onClick={() => void skip()}>
            Skip it <kbd>S</kbd>
          </button>
          <button type="button" onClick={() => setConfirmSkip(false)}>
            Keep it <kbd>Esc</kbd>
          </button>
        </div>
      )}

      {pending?.step === "category" && (
        <div className="picker" role="dialog" aria-label="Span category" data-testid="span-picker" ref={pickerRef} tabIndex={-1}>
          <p>
            Mark {describeMark(pending, textOf(byId[pending.candidate]))} in candidate {LETTERS[draft.shownOrder.indexOf(pending.candidate)]} as:
          </p>
          {categories.map((c, i) => (
            <button key={c.key} type="button" onClick={() => pickCategory(i)} style={{ borderColor: c.color }}>
              <kbd>{i + 1}</kbd> {c.label}
            </button>
          ))}
          <button type="button" onClick={() => setPending(null)}>Cancel <kbd>Esc</kbd></button>
        </div>
      )}

      <section className="answer" aria-label="Your judgment">
        {schema.allow_tie && (
          <button type="button" aria-pressed={draft.tie} onClick={() => dispatch({ type: "tie" })}>
            <kbd>T</kbd> Tie
          </button>
        )}
        {shown.length > 2 && <Ranking draft={draft} shown={shown.map((c) => c.id)} onChange={(ranking) => dispatch({ type: "setRanking", ranking })} />}
        {schema.strength && shown.length === 2 && (
          <fieldset className="strength" disabled={draft.winner === null}>
            <legend>
              How much better is your choice? <kbd>[</kbd> <kbd>]</kbd>
            </legend>
            {range(schema.strength.min, schema.strength.max).map((value) => (
              <label key={value}>
                <input type="radio" name="strength" checked={draft.strength === value} onChange={() => dispatch({ type: "setStrength", value })} />
                {value} {strengthWord(value, schema.strength!.max)}
              </label>
            ))}
            <output data-testid="strength-value">
              {draft.winner === null
                ? draft.tie
                  ? "A tie has no strength."
                  : "Choose a candidate first."
                : draft.strength === null
                  ? "Not said."
                  : `Candidate ${LETTERS[draft.shownOrder.indexOf(draft.winner)]} is ${strengthWord(draft.strength, schema.strength.max)}.`}
            </output>
          </fieldset>
        )}
        {schema.criteria.length > 0 && (
          <div className="ratings" ref={ratingsRef}>
            <h2>
              Ratings <kbd>G</kbd>
            </h2>
            {shown.map((candidate, position) =>
              schema.criteria.map((criterion) => (
                <fieldset key={`${candidate.id}-${criterion.key}`} className="rating">
                  <legend>
                    {criterion.label}, candidate {LETTERS[position]}
                  </legend>
                  {range(criterion.min, criterion.max).map((value) => (
                    <label key={value}>
                      <input
                        type="radio"
                        name={`rating-${candidate.id}-${criterion.key}`}
                        checked={draft.ratings[candidate.id]?.[criterion.key] === value}
                        onChange={() => dispatch({ type: "rate", candidate: candidate.id, criterion: criterion.key, value })}
                      />
                      {value}
                    </label>
                  ))}
                </fieldset>
              )),
            )}
          </div>
        )}
        {draft.spans.length > 0 && (
          <div className="span-list">
            <h2>Marked spans</h2>
            <ul>
              {draft.spans.map((span) => {
                const position = draft.shownOrder.indexOf(span.candidate);
                const text = textOf(byId[span.candidate]);
                return (
                  <li key={span.id} data-testid="span-item">
                    <span className="swatch" style={{ background: categories.find((c) => c.key === span.category)?.color }} aria-hidden />
                    <span className="span-label" title={text ? sliceCodePoints(text, span.start ?? 0, span.end ?? 0) : undefined}>
                      {spanLabel(span, text, categories.find((c) => c.key === span.category)?.label ?? span.category, LETTERS[position])}
                    </span>
                    <label>
                      Category
                      <select value={span.category} onChange={(e) => dispatch({ type: "editSpan", id: span.id, category: e.target.value })}>
                        {categories.map((c) => (
                          <option key={c.key} value={c.key}>
                            {c.label}
                          </option>
                        ))}
                      </select>
                    </label>
                    <label>
                      Note
                      <input
                        ref={pending?.step === "note" && pending.spanId === span.id ? noteRef : undefined}
                        value={span.note}
                        onChange={(e) => dispatch({ type: "editSpan", id: span.id, note: e.target.value })}
                        onKeyDown={(e) => {
                          if (e.key === "Enter" && !e.ctrlKey && !e.metaKey) {
                            e.preventDefault();
                            setPending(null);
                            (e.target as HTMLInputElement).blur();
                          }
                        }}
                        data-testid="span-note"
                      />
                    </label>
                    <button type="button" onClick={() => dispatch({ type: "removeSpan", id: span.id })} aria-label="Remove this span">
                      Remove
                    </button>
                  </li>
                );
              })}
            </ul>
          </div>
        )}
        {schema.rationale !== "off" && (
          <label className="rationale">
            <span>
              Rationale {schema.rationale === "required" ? "(required)" : "(optional)"} <kbd>/</kbd>
            </span>
            <textarea ref={rationaleRef} value={draft.rationale} onChange={(e) => dispatch({ type: "rationale", text: e.target.value })} rows={3} />
          </label>
        )}
        <div className="actions">
          <button type="button" className="primary" onClick={() => void submit()} disabled={!!busy}>
            Submit <kbd>Ctrl+Enter</kbd>
          </button>
          <button type="button" onClick={() => setConfirmSkip(true)} disabled={!!busy}>
            Skip <kbd>S</kbd>
          </button>
          {blockers.length > 0 && <span className="hint">{blockers.join(" · ")}</span>}
        </div>
        {busy && <p role="status">{busy}</p>}
        {error && (
          <p role="alert" className="error" ref={errorRef}>
            {error}
          </p>
        )}
      </section>

      {help && (
        <Overlay title="Keyboard shortcuts" onClose={() => setHelp(false)}>
          <table>
            <tbody>
              {shortcuts({ arity: shown.length, allowTie: schema.allow_tie, hasStrength: !!schema.strength }).map((s) => (
                <tr key={s.keys}>
                  <th>
                    <kbd>{s.keys}</kbd>
                  </th>
                  <td>{s.does}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </Overlay>
      )}
      {guidelines && (
        <Overlay title="Guidelines" onClose={() => setGuidelines(false)}>
          {project.guidelines ? <Markdown source={project.guidelines} /> : <p>This project has no guidelines.</p>}
        </Overlay>
      )}
    </div>
  );
}

function CandidateContent({
  candidate,
  label,
  markdown,
  spans,
  categories,
  zoomed,
  onZoom,
  transport,
  project,
  onMark,
}: {
  candidate: Task["candidates"][number];
  label: string;
  markdown: boolean;
  spans: Draft["spans"];
  categories: LabelingSchema["span_categories"];
  zoomed: boolean;
  onZoom: () => void;
  transport: ReturnType<typeof newTransport>;
  project: Project;
  onMark: (mark: Partial<Mark> | null) => void;
}) {
  const media = candidate.media_url;
  if (media && (project.modality === "image" || candidate.mime_type.startsWith("image/")))
    return <ZoomImage src={media} label={label} zoomed={zoomed} onToggle={onZoom} spans={spans} categories={categories} onBox={(box) => onMark({ box })} />;
  for (const kind of ["video", "audio"] as const)
    if (media && (project.modality === kind || candidate.mime_type.startsWith(`${kind}/`)))
      return <SyncedMedia kind={kind} src={media} label={label} transport={transport} spans={spans} categories={categories} onMark={onMark} />;
  if (markdown) return <Markdown source={candidate.text} />;
  return <SpanText text={candidate.text} spans={spans} categories={categories} label={`${label} text`} onSelect={onMark} />;
}

/** A candidate's text for marking: none for media candidates, whose marks are times or boxes. */
function textOf(candidate: Task["candidates"][number] | undefined): string {
  return candidate && !candidate.media_url ? candidate.text : "";
}


function Ranking({ draft, shown, onChange }: { draft: Draft; shown: number[]; onChange: (ranking: number[]) => void }) {
  const order = draft.ranking.length === shown.length ? draft.ranking : [...draft.ranking, ...shown.filter((id) => !draft.ranking.includes(id))];
  const [dragging, setDragging] = useState<number | null>(null);
  const move = (from: number, to: number) => {
    if (to < 0 || to >= order.length) return;
    const next = [...order];
    const [item] = next.splice(from, 1);
    next.splice(to, 0, item);
    onChange(next);
  };
  return (
    <div className="ranking">
      <h2>
        Ranking, best first <kbd>R</kbd> resets
      </h2>
      <ol>
        {order.map((id, index) => (
          <li
            key={id}
            draggable
            onDragStart={() => setDragging(index)}
            onDragOver={(e) => e.preventDefault()}
            onDrop={() => dragging !== null && move(dragging, index)}
            className={draft.ranking.includes(id) ? "ranked" : "unranked"}
          >
            Candidate {LETTERS[shown.indexOf(id)]}
            <button type="button" onClick={() => move(index, index - 1)} aria-label={`Move candidate ${LETTERS[shown.indexOf(id)]} up`}>
              ↑
            </button>
            <button type="button" onClick={() => move(index, index + 1)} aria-label={`Move candidate ${LETTERS[shown.indexOf(id)]} down`}>
              ↓
            </button>
          </li>
        ))}
      </ol>
    </div>
  );
}

export function LeaseCountdown({ expiresAt, clockOffsetMs = 0 }: { expiresAt: string; clockOffsetMs?: number }) {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, []);
  const left = Math.round((Date.parse(expiresAt) - now - clockOffsetMs) / 1000);
  if (left <= 0)
    return (
      <p className="lease lost" role="alert" data-testid="lease">
        Your lease on this task has run out: it may have gone to someone else. You can still submit; it is kept if the task
        still needs a judgment, otherwise you are told and nothing is saved.
      </p>
    );
  const minutes = Math.floor(left / 60);
  const seconds = String(left % 60).padStart(2, "0");
  return (
    <span className={`lease${left < 60 ? " low" : ""}`} data-testid="lease" aria-live={left < 60 ? "polite" : "off"}>
      Lease: {minutes}:{seconds} left
    </span>
  );
}

const FOCUSABLE = 'a[href], button:not([disabled]), input:not([disabled]), select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex="-1"])';

function Overlay({ title, onClose, children }: { title: string; onClose: () => void; children: React.ReactNode }) {
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const before = document.activeElement instanceof HTMLElement ? document.activeElement : null;
    ref.current?.focus();
    return () => before?.focus(); // closed: back to where the annotator was
  }, []);
  // aria-modal tells screen readers the page behind is out of reach; this tells the keyboard: Tab and
  // Shift+Tab go round the dialog's own controls.
  const keepTabInside = (event: React.KeyboardEvent) => {
    if (event.key !== "Tab" || !ref.current) return;
    const inside = [...ref.current.querySelectorAll<HTMLElement>(FOCUSABLE)];
    const first = inside[0];
    const last = inside[inside.length - 1];
    const active = document.activeElement;
    if (!first) {
      event.preventDefault();
    } else if (event.shiftKey && (active === first || active === ref.current)) {
      event.preventDefault();
      last.focus();
    } else if (!event.shiftKey && active === last) {
      event.preventDefault();
      first.focus();
    }
  };
  return (
    <div className="overlay" role="dialog" aria-modal="true" aria-label={title} ref={ref} tabIndex={-1} onKeyDown={keepTabInside}>
      <div className="overlay-box">
        <header>
          <h2>{title}</h2>
          <button type="button" onClick={onClose}>
            Close <kbd>Esc</kbd>
          </button>
        </header>
        {children}
      </div>
    </div>
  );
}

/** A strength in words, toward the chosen candidate (0 … max). */
function strengthWord(value: number, max: number): string {
  if (value <= 0) return "about the same";
  if (value >= max) return "much better";
  return value === 1 && max > 2 ? "slightly better" : "better";
}

function range(min: number, max: number): number[] {
  return Array.from({ length: max - min + 1 }, (_, i) => min + i);
}
