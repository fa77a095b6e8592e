import { render, screen } from "@testing-library/react";
import { LeaseCountdown } from "./Workbench";

test("the countdown shows minutes and seconds left", () => {
  render(<LeaseCountdown expiresAt={new Date(Date.now() + 125_000).toISOString()} />);
  expect(screen.getByTestId("lease")).toHaveTextContent(/^Lease: 2:0[45] left$/);
});

test("a lease past its end is explained, on the server's clock", () => {
  // This browser's clock is three minutes behind the server's: two minutes left locally is none.
  render(<LeaseCountdown expiresAt={new Date(Date.now() + 120_000).toISOString()} clockOffsetMs={180_000} />);
  expect(screen.getByRole("alert")).toHaveTextContent("Your lease on this task has run out");
});
