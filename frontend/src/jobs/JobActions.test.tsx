import { render, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { type Job, JobActions, jobAction } from "./JobActions";

const job = (status: Job["status"], cancel_requested = false): Job => ({ id: 7, status, cancel_requested });

test("a job's actions follow its life: cancel while live, cancelling once asked, retry after it failed or was cancelled", () => {
  expect(
    [job("queued"), job("running"), job("running", true), job("failed"), job("cancelled"), job("succeeded")].map(jobAction),
  ).toEqual(["cancel", "cancel", "cancelling", "retry", "retry", "none"]);
});

test("a running import offers Cancel, and a cancelling one shows it cannot be clicked twice", async () => {
  const onCancel = vi.fn();
  const { rerender } = render(<JobActions noun="import" job={job("running")} busy={false} onCancel={onCancel} onRetry={vi.fn()} />);
  await userEvent.click(screen.getByRole("button", { name: "Cancel import 7" }));
  expect(onCancel).toHaveBeenCalledWith(7);

  rerender(<JobActions noun="import" job={job("running", true)} busy={false} onCancel={onCancel} onRetry={vi.fn()} />);
  const cancelling = screen.getByRole("button", { name: "Cancel import 7" });
  expect(cancelling).toBeDisabled();
  expect(cancelling).toHaveTextContent("Cancelling…");
});

test("a failed export offers Retry, disabled while the request is on its way; a finished one offers nothing", async () => {
  const onRetry = vi.fn();
  const { rerender, container } = render(<JobActions noun="export" job={job("failed")} busy={false} onCancel={vi.fn()} onRetry={onRetry} />);
  await userEvent.click(screen.getByRole("button", { name: "Retry export 7" }));
  expect(onRetry).toHaveBeenCalledWith(7);

  rerender(<JobActions noun="export" job={job("failed")} busy={true} onCancel={vi.fn()} onRetry={onRetry} />);
  expect(screen.getByRole("button", { name: "Retry export 7" })).toBeDisabled();

  rerender(<JobActions noun="export" job={job("succeeded")} busy={false} onCancel={vi.fn()} onRetry={onRetry} />);
  expect(container).toBeEmptyDOMElement();
});
