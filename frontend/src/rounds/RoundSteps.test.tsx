import { render, screen, within } from "@testing-library/react";
import { RoundSteps } from "./RoundSteps";

test("the steps are listed in order; the running one is the current step", () => {
  render(
    <RoundSteps
      round={{
        id: 4,
        error: "",
        steps: [
          { name: "reward", status: "succeeded", seconds: 75 },
          { name: "generate", status: "running", started_at: new Date(Date.now() - 5_000).toISOString() },
          { name: "score", status: "pending" },
        ],
      }}
    />,
  );
  const list = screen.getByRole("list", { name: "Steps of round 4" });
  const items = within(list).getAllByRole("listitem");
  expect(items.map((li) => li.querySelector(".step-name")?.textContent)).toEqual(["reward", "generate", "score"]);
  expect(items[0]).toHaveTextContent("reward succeeded 1 min 15 s");
  expect(items[1]).toHaveAttribute("aria-current", "step");
  expect(items[1]).toHaveTextContent(/generate running [4-6] s/);
  expect(items[2]).not.toHaveAttribute("aria-current");
  expect(items[2]).toHaveTextContent("score pending");
});

test("a failed step carries the round's error", () => {
  render(
    <RoundSteps
      round={{
        id: 5,
        error: "CUDA out of memory",
        steps: [
          { name: "reward", status: "succeeded", seconds: 3 },
          { name: "optimise", status: "failed", seconds: 9 },
        ],
      }}
    />,
  );
  expect(screen.getAllByRole("listitem")[1]).toHaveTextContent("optimise failed 9 s — CUDA out of memory");
  expect(screen.getAllByRole("listitem")[0]).not.toHaveTextContent("CUDA");
});

test("a round without steps (an older one) draws no list", () => {
  const { container } = render(<RoundSteps round={{ id: 1, error: "", steps: [] }} />);
  expect(container).toBeEmptyDOMElement();
});
