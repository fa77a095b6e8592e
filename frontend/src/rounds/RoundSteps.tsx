/** A round's steps in order, each with its status and time; the running one marked as the current step. */
import { useEffect, useState } from "react";
import { formatSeconds, stepMark, stepSeconds } from "./steps";
import type { Round } from "./types";

export function RoundSteps({ round }: { round: Pick<Round, "id" | "steps" | "error"> }) {
  const running = round.steps.some((s) => s.status === "running");
  const now = useNow(running ? 1000 : null);
  if (!round.steps.length) return null;
  return (
    <ol className="steps" aria-label={`Steps of round ${round.id}`}>
      {round.steps.map((step) => {
        const seconds = stepSeconds(step, now);
        return (
          <li key={step.name} className={`step step-${step.status}`} aria-current={step.status === "running" ? "step" : undefined}>
            <span aria-hidden="true">{stepMark(step.status)}</span> <span className="step-name">{step.name}</span>{" "}
            <span className="step-status">{step.status}</span>
            {seconds !== null && <span className="step-time"> {formatSeconds(seconds)}</span>}
            {step.status === "failed" && round.error && (
              <span className="error step-error" role="note">
                {" "}
                — {round.error}
              </span>
            )}
          </li>
        );
      })}
    </ol>
  );
}

/** The time now, renewed every ``intervalMs`` (or never, when null): a running step's clock ticks between polls. */
function useNow(intervalMs: number | null): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (intervalMs === null) return;
    const timer = window.setInterval(() => setNow(Date.now()), intervalMs);
    return () => window.clearInterval(timer);
  }, [intervalMs]);
  return now;
}
