/**
 * The workbench keyboard map: one table, read by the key handler, the on-screen
 * hints and the help overlay alike, so what is shown is what works.
 */

export type KeyAction =
  | { type: "choose"; position: number }
  | { type: "tie" }
  | { type: "strength"; delta: number }
  | { type: "resetRanking" }
  | { type: "focusRationale" }
  | { type: "focusRatings" }
  | { type: "submit" }
  | { type: "skip" }
  | { type: "help" }
  | { type: "guidelines" }
  | { type: "markdown" }
  | { type: "context" }
  | { type: "escape" }
  | { type: "category"; index: number };

export type KeyContext = {
  arity: number;
  allowTie: boolean;
  hasStrength: boolean;
  /** A text field has focus: only chords (Ctrl+Enter) and Escape act. */
  typing: boolean;
  /** A text selection waits for a span category: digits pick categories. */
  pickingCategory: boolean;
  categoryCount: number;
  /** Text is selected and no category picker waits for it (reading, copying): no key acts but Esc. */
  selecting?: boolean;
  /** "Skip this task?" is asked: S again confirms, Esc keeps the task, nothing else acts. */
  confirmingSkip?: boolean;
};

export type KeyLike = { key: string; ctrlKey?: boolean; metaKey?: boolean; altKey?: boolean; shiftKey?: boolean };

export type Shortcut = { keys: string; does: string };

export function shortcuts(ctx: Pick<KeyContext, "arity" | "allowTie" | "hasStrength">): Shortcut[] {
  const list: Shortcut[] = [
    ctx.arity === 2
      ? { keys: "1 / 2", does: "Choose the left / right candidate" }
      : { keys: `1 … ${ctx.arity}`, does: "Rank: press candidates best first (R resets)" },
  ];
  if (ctx.allowTie) list.push({ keys: "T", does: "Tie" });
  if (ctx.hasStrength) list.push({ keys: "[ / ]", does: "Preference strength down / up" });
  list.push(
    { keys: "G", does: "Go to the ratings (arrow keys change a rating)" },
    { keys: "/", does: "Write the rationale (Esc leaves the field)" },
    { keys: "Select text, then 1 … 9", does: "Mark a span with a category, then Enter (optional note)" },
    { keys: "Ctrl+Enter", does: "Submit" },
    { keys: "S", does: "Skip this task for good: asks first, S again skips, Esc keeps the task" },
    { keys: "C", does: "Show / hide the earlier context (conversation, passages)" },
    { keys: "M", does: "Plain text / Markdown view" },
    { keys: "H", does: "Guidelines" },
    { keys: "?", does: "This help" },
    { keys: "Esc", does: "Close a panel, cancel a selection, leave a field" },
  );
  return list;
}

/** Whether keys pressed in `target` belong to it (it takes text or opens a list), not to the shortcuts. */
export function isTypingTarget(target: EventTarget | null): boolean {
  if (!target || !(target as Element).tagName) return false;
  const el = target as HTMLElement;
  if (el.isContentEditable) return true;
  const tag = el.tagName;
  if (tag === "TEXTAREA" || tag === "SELECT") return true;
  // Radios, checkboxes and sliders answer arrows only: letters and digits stay shortcuts there (G, then arrows).
  if (tag === "INPUT") return !["radio", "checkbox", "range", "button", "submit", "reset"].includes((el as HTMLInputElement).type);
  return ["combobox", "listbox", "menu", "textbox", "searchbox", "spinbutton"].includes(el.getAttribute("role") ?? "");
}

export function keyAction(event: KeyLike, ctx: KeyContext): KeyAction | null {
  const chord = event.ctrlKey || event.metaKey;
  if (event.key === "Escape") return { type: "escape" };
  if (ctx.confirmingSkip) return !chord && !event.altKey && event.key.toLowerCase() === "s" ? { type: "skip" } : null;
  if (chord && event.key === "Enter") return { type: "submit" };
  if (ctx.typing || chord || event.altKey) return null;
  if (ctx.pickingCategory) {
    const n = digit(event.key);
    return n !== null && n >= 1 && n <= ctx.categoryCount ? { type: "category", index: n - 1 } : null;
  }
  if (ctx.selecting) return null;
  const n = digit(event.key);
  if (n !== null) return n >= 1 && n <= ctx.arity ? { type: "choose", position: n - 1 } : null;
  switch (event.key.toLowerCase()) {
    case "t":
      return ctx.allowTie ? { type: "tie" } : null;
    case "[":
      return ctx.hasStrength ? { type: "strength", delta: -1 } : null;
    case "]":
      return ctx.hasStrength ? { type: "strength", delta: 1 } : null;
    case "r":
      return ctx.arity > 2 ? { type: "resetRanking" } : null;
    case "/":
      return { type: "focusRationale" };
    case "g":
      return { type: "focusRatings" };
    case "s":
      return { type: "skip" };
    case "m":
      return { type: "markdown" };
    case "c":
      return { type: "context" };
    case "h":
      return { type: "guidelines" };
    case "?":
      return { type: "help" };
    default:
      return null;
  }
}

function digit(key: string): number | null {
  return /^[0-9]$/.test(key) ? Number(key) : null;
}
