import { HttpError } from "../api/client";
import { startErrorOf } from "./startError";

test("a validation error names each field with its messages", () => {
  const error = new HttpError(400, {
    message: "config.policy: A policy round needs a policy model.",
    errors: { "config.policy": ["A policy round needs a policy model."], "config.epochs": [] },
  });
  expect(startErrorOf(error)).toEqual({
    message: "config.policy: A policy round needs a policy model.",
    fields: [{ field: "config.policy", messages: ["A policy round needs a policy model."] }],
  });
});

test("a conflict has a message only; no error, nothing", () => {
  expect(startErrorOf(new HttpError(409, { message: "Round 3 is already running.", errors: {} }))).toEqual({
    message: "Round 3 is already running.",
    fields: [],
  });
  expect(startErrorOf(new HttpError(500, undefined))?.message).toBe("Request failed (500)");
  expect(startErrorOf(new TypeError("Failed to fetch"))).toEqual({ message: "Failed to fetch", fields: [] });
  expect(startErrorOf(null)).toBeNull();
});
