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
    { keys: "S", does: "Skip this task for good" },
    { keys: "M", does: "Plain text / Markdown view" },
    { keys: "H", does: "Guidelines" },
    { keys: "?", does: "This help" },
    { keys: "Esc", does: "Close a panel, cancel a selection, leave a field" },
  );
  return list;
}

export function keyAction(event: KeyLike, ctx: KeyContext): KeyAction | null {
  const chord = event.ctrlKey || event.metaKey;
  if (chord && event.key === "Enter") return { type: "submit" };
  if (event.key === "Escape") return { type: "escape" };
  if (ctx.typing || chord || event.altKey) return null;
  if (ctx.pickingCategory) {
    const n = digit(event.key);
    return n !== null && n >= 1 && n <= ctx.categoryCount ? { type: "category", index: n - 1 } : null;
  }
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
