import { describe, expect, it } from "vitest";
import { describeError } from "./client";

describe("describeError", () => {
  it("does not repeat the field error the message already names", () => {
    const body = {
      message: "filters.min_agreement: Ensure this value is less than or equal to 1.",
      errors: { "filters.min_agreement": ["Ensure this value is less than or equal to 1."] },
    };
    expect(describeError(400, body)).toBe("filters.min_agreement: Ensure this value is less than or equal to 1.");
  });

  it("adds the other fields' errors after the message", () => {
    const body = { message: "a: bad.", errors: { a: ["bad."], b: ["missing."] } };
    expect(describeError(400, body)).toBe("a: bad. b: missing.");
  });

  it("shows an error of the whole request as it is, without a field name", () => {
    const body = { message: "Wrong username or password.", errors: { non_field_errors: ["Wrong username or password."] } };
    expect(describeError(400, body)).toBe("Wrong username or password.");
  });

  it("falls back to the status when the body has no message", () => {
    expect(describeError(502, undefined)).toBe("Request failed (502)");
  });
});
