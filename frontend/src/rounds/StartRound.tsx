/** Admins start a round of the kind they pick, or of the server's default (then no kind is sent). A refused start
 * is shown beside the button, naming each field the server complained about. */
import { useId, useState } from "react";
import { startErrorOf } from "./startError";
import type { RoundKind } from "./types";

export function StartRound({ onStart, pending, error }: { onStart: (kind: RoundKind | undefined) => void; pending: boolean; error: unknown }) {
  const [kind, setKind] = useState<RoundKind | "">("");
  const errorId = useId();
  const refused = startErrorOf(error);
  return (
    <form
      className="row start-round"
      onSubmit={(e) => {
        e.preventDefault();
        onStart(kind || undefined);
      }}
    >
      <label>
        Round kind
        <select value={kind} onChange={(e) => setKind(e.target.value as RoundKind | "")}>
          <option value="">server default</option>
          <option value="reward">reward model only</option>
          <option value="policy">policy (the whole loop)</option>
        </select>
      </label>
      <button type="submit" disabled={pending} aria-describedby={refused ? errorId : undefined}>
        Start a round
      </button>
      {refused && (
        <div role="alert" className="error" id={errorId}>
          {refused.message}
          {refused.fields.length > 0 && (
            <ul aria-label="Fields to fix">
              {refused.fields.map((f) => (
                <li key={f.field}>
                  <code>{f.field}</code>: {f.messages.join(" ")}
                </li>
              ))}
            </ul>
          )}
        </div>
      )}
    </form>
  );
}
