import { render, screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { HttpError } from "../api/client";
import { StartRound } from "./StartRound";

test("the server's default kind is sent as no kind; a picked kind is sent as such", async () => {
  const onStart = vi.fn();
  render(<StartRound onStart={onStart} pending={false} error={null} />);
  await userEvent.click(screen.getByRole("button", { name: "Start a round" }));
  expect(onStart).toHaveBeenLastCalledWith(undefined);
  await userEvent.selectOptions(screen.getByLabelText("Round kind"), "policy");
  await userEvent.click(screen.getByRole("button", { name: "Start a round" }));
  expect(onStart).toHaveBeenLastCalledWith("policy");
  expect(screen.queryByRole("alert")).toBeNull();
});

test("a refused start names the field beside the button", () => {
  const error = new HttpError(400, {
    message: "config.policy: A policy round needs a policy model.",
    errors: { "config.policy": ["A policy round needs a policy model."] },
  });
  render(<StartRound onStart={() => {}} pending={false} error={error} />);
  const alert = screen.getByRole("alert");
  expect(alert).toHaveTextContent("config.policy: A policy round needs a policy model.");
  expect(within(within(alert).getByRole("list", { name: "Fields to fix" })).getByRole("listitem")).toHaveTextContent(
    "config.policy: A policy round needs a policy model.",
  );
  expect(screen.getByRole("button", { name: "Start a round" })).toHaveAccessibleDescription(/config\.policy/);
});

test("the button waits while a start is under way", () => {
  render(<StartRound onStart={() => {}} pending={true} error={null} />);
  expect(screen.getByRole("button", { name: "Start a round" })).toBeDisabled();
});
