import { render, screen } from "@testing-library/react";
import { GoldBanner } from "./GoldBanner";

const warning = "Your answers on gold checks are right 40% of the time over 12 checks (at most 68% at 95 % confidence), below this project's 70% warn threshold.";

test("a warned annotator sees the server's warning, and their accuracy only where the project shows it", () => {
  const { rerender } = render(<GoldBanner row={{ gold_warning: warning, gold: null }} />);
  const banner = screen.getByRole("status", { name: "Your gold accuracy" });
  expect(banner).toHaveTextContent("right 40% of the time over 12 checks");
  expect(banner).toHaveTextContent("You can keep labelling");
  expect(banner).not.toHaveTextContent("Your gold accuracy:");
  rerender(<GoldBanner row={{ gold_warning: warning, gold: { judged: 12, accuracy: 0.4, low: 0.17, high: 0.68 } }} />);
  expect(screen.getByTestId("gold-banner")).toHaveTextContent("Your gold accuracy: 40 % of 12 checks (17 %–68 % at 95 %)");
});

test("no warning and nothing to show: no banner", () => {
  const { container } = render(<GoldBanner row={{ gold_warning: null, gold: null }} />);
  expect(container).toBeEmptyDOMElement();
  render(<GoldBanner row={undefined} />);
  expect(screen.queryByTestId("gold-banner")).toBeNull();
});
