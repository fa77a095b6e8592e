import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { render, screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { api } from "../api/client";
import { GoldLists, GoldPromotion, type GoldPromotionData } from "./GoldPromotion";

vi.mock("../api/client", async (importOriginal) => ({ ...(await importOriginal<object>()), api: { GET: vi.fn(), POST: vi.fn(), DELETE: vi.fn() } }));

const response = (status: number, body: unknown) => ({
  data: status < 300 ? body : undefined,
  error: status < 300 ? undefined : body,
  response: new Response(null, { status }),
});
const item = { comparison_id: 7, external_id: "cmp-7", prompt: "Say <b>hi</b>", answer: { winner: 70 }, answer_text: "Hello!", judgments: 3, confidence: 0.97 };
const data: GoldPromotionData = {
  min_judgments: 3,
  ready: [item, { ...item, comparison_id: 8, external_id: "cmp-8", answer: { tie: true }, answer_text: "a tie", confidence: null }],
  promoted: [{ ...item, comparison_id: 9, external_id: "cmp-9", judgments: 5, judgments_before: 3, promoted_at: "2026-03-02T10:00:00Z", promoted_by: "rita" }],
};

test("ready comparisons with their unanimous answer and a Promote button; promoted ones with Demote", async () => {
  const onPromote = vi.fn();
  const onDemote = vi.fn();
  render(<GoldLists data={data} onPromote={onPromote} onDemote={onDemote} pending={null} />);
  const ready = screen.getByRole("list", { name: "Ready to become gold" });
  expect(within(ready).getByTestId("ready-7")).toHaveTextContent("cmp-7 Say <b>hi</b> → Hello! (3 judgments, consensus 97 %)");
  expect(ready.querySelector("b")).toBeNull(); // imported text stays text
  expect(within(ready).getByTestId("ready-8")).toHaveTextContent("→ a tie (3 judgments)");
  await userEvent.click(screen.getByRole("button", { name: "Promote cmp-7" }));
  expect(onPromote).toHaveBeenCalledWith(item);
  expect(screen.getByTestId("promoted-9")).toHaveTextContent("promoted by rita; 2 gold checks since");
  await userEvent.click(screen.getByRole("button", { name: "Demote cmp-9" }));
  expect(onDemote).toHaveBeenCalledWith(data.promoted[0]);
});

test("with nothing ready or promoted it says so", () => {
  render(<GoldLists data={{ min_judgments: 4, ready: [], promoted: [] }} onPromote={vi.fn()} onDemote={vi.fn()} pending={null} />);
  expect(screen.getByText(/at least 4 judgments/)).toBeInTheDocument();
  expect(screen.getByText("No comparison is ready to become gold.")).toBeInTheDocument();
  expect(screen.getByText("None promoted from here yet.")).toBeInTheDocument();
});

test("a refused promotion shows the server's reason and the lists stay", async () => {
  vi.mocked(api.GET).mockResolvedValue(response(200, data) as never);
  vi.mocked(api.POST).mockResolvedValue(
    response(400, {
      message: "comparison_id: The judgments of comparison 'cmp-7' disagree (2 for candidate 70, 1 for candidate 71): only a unanimous comparison can become gold.",
      errors: {},
    }) as never,
  );
  const client = new QueryClient({ defaultOptions: { queries: { retry: false }, mutations: { retry: false } } });
  render(
    <QueryClientProvider client={client}>
      <GoldPromotion projectId={5} />
    </QueryClientProvider>,
  );
  await userEvent.click(await screen.findByRole("button", { name: "Promote cmp-7" }));
  expect(await screen.findByRole("alert")).toHaveTextContent("disagree (2 for candidate 70, 1 for candidate 71)");
  expect(api.POST).toHaveBeenCalledWith("/api/v1/projects/{id}/quality/gold/{comparison_id}/", { params: { path: { id: 5, comparison_id: 7 } } });
  expect(screen.getByTestId("ready-7")).toBeInTheDocument();
});
