import { formatSeconds, isLive, stepMark, stepSeconds } from "./steps";

test("durations read as seconds, minutes or hours", () => {
  expect(formatSeconds(0.4)).toBe("0 s");
  expect(formatSeconds(42)).toBe("42 s");
  expect(formatSeconds(185)).toBe("3 min 05 s");
  expect(formatSeconds(3720)).toBe("1 h 02 min");
  expect(formatSeconds(-3)).toBe("0 s");
});

test("a finished step shows what it took; a running one its time so far; a pending one nothing", () => {
  const now = Date.parse("2026-12-01T10:01:30Z");
  expect(stepSeconds({ name: "reward", status: "succeeded", seconds: 12.5 }, now)).toBe(12.5);
  expect(stepSeconds({ name: "generate", status: "running", started_at: "2026-12-01T10:00:00Z" }, now)).toBe(90);
  expect(stepSeconds({ name: "score", status: "pending" }, now)).toBeNull();
  // The browser's clock behind the worker's: never a negative time.
  expect(stepSeconds({ name: "generate", status: "running", started_at: "2026-12-01T10:05:00Z" }, now)).toBe(0);
});

test("queued and running rounds are live", () => {
  expect(isLive({ status: "queued" })).toBe(true);
  expect(isLive({ status: "running" })).toBe(true);
  expect(isLive({ status: "succeeded" })).toBe(false);
  expect(stepMark("failed")).toBe("✗");
  expect(stepMark("something new")).toBe("?");
});
