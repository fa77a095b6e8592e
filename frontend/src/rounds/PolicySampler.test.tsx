import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { render, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import type { ReactNode } from "react";
import { HttpError } from "../api/client";
import { PolicySampler, sampleRequestBody } from "./PolicySampler";

const wrapper = ({ children }: { children: ReactNode }) => (
  <QueryClientProvider client={new QueryClient({ defaultOptions: { mutations: { retry: false } } })}>{children}</QueryClientProvider>
);

test("empty fields are left to the server; typed ones are sent as numbers", () => {
  expect(sampleRequestBody({ prompt: "hi", maxNewTokens: "", temperature: " ", seed: "" })).toEqual({ prompt: "hi" });
  expect(sampleRequestBody({ prompt: "hi", maxNewTokens: "64", temperature: "0.7", seed: "0" })).toEqual({
    prompt: "hi",
    max_new_tokens: 64,
    temperature: 0.7,
    seed: 0,
  });
});

test("a sample is asked for with the form's settings and shown as plain text with its seed", async () => {
  const onSample = vi.fn().mockResolvedValue({ model_version: 12, version: 3, text: "<b>Hello</b> there", seed: 42, tokens: 5, finish_reason: "eos" });
  const { container } = render(<PolicySampler version={{ id: 12, version: 3 }} onSample={onSample} />, { wrapper });
  expect(screen.getByRole("button", { name: "Sample" })).toBeDisabled();
  await userEvent.type(screen.getByLabelText("Prompt for policy v3"), "Greet me");
  await userEvent.clear(screen.getByLabelText("Max new tokens"));
  await userEvent.type(screen.getByLabelText("Max new tokens"), "32");
  await userEvent.type(screen.getByLabelText("Seed (empty: random)"), "42");
  await userEvent.click(screen.getByRole("button", { name: "Sample" }));
  expect(onSample).toHaveBeenCalledWith(12, { prompt: "Greet me", max_new_tokens: 32, temperature: 0.8, seed: 42 });
  const answer = await screen.findByRole("status", { name: "Answer of policy v3" });
  expect(answer).toHaveTextContent("<b>Hello</b> there");
  expect(answer).toHaveTextContent("seed 42 · 5 tokens · finished: eos");
  expect(container.querySelector("b")).toBeNull();
});

test("when the server cannot sample, its message is shown", async () => {
  const onSample = vi.fn().mockRejectedValue(new HttpError(409, { message: "This version's weights are not on this server.", errors: {} }));
  render(<PolicySampler version={{ id: 12, version: 3 }} onSample={onSample} />, { wrapper });
  await userEvent.type(screen.getByLabelText("Prompt for policy v3"), "Hi");
  await userEvent.keyboard("{Tab}{Tab}{Tab}{Tab}{Enter}"); // to the Sample button, by keyboard
  expect(await screen.findByRole("alert")).toHaveTextContent("This version's weights are not on this server.");
});
