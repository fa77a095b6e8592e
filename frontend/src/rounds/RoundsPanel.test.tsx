import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { render, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { api } from "../api/client";
import { RoundsPanel } from "./RoundsPanel";

// The panel's wiring against a stand-in for the typed client: which calls it makes, and what it does with errors.
vi.mock("../api/client", async (importOriginal) => ({ ...(await importOriginal<object>()), api: { GET: vi.fn(), POST: vi.fn() } }));

const ok = (data: unknown) => ({ data, response: new Response(null, { status: 200 }) });
const refused = (status: number, error: unknown) => ({ error, response: new Response(null, { status }) });

const policyRound = {
  id: 21,
  kind: "policy",
  status: "succeeded",
  step: "done",
  steps: [{ name: "reward", status: "succeeded", seconds: 3 }],
  progress: 1,
  metrics: { policy: { win_rate: 0.6, win_rate_low: 0.5, win_rate_high: 0.7 } },
  error: "",
  human_win_rate: null,
  cancel_requested: false,
};

beforeEach(() => {
  vi.mocked(api.GET).mockImplementation((async (url: string) =>
    url.endsWith("/training-settings/")
      ? ok({ settings: {}, fields: [] })
      : ok({ results: url.endsWith("/rounds/") ? [policyRound] : [{ id: 3, kind: "policy", version: 1, status: "ready", is_active: false, judgment_count: 0, metrics: {} }] })) as never);
});

function renderPanel() {
  const client = new QueryClient({ defaultOptions: { queries: { retry: false }, mutations: { retry: false } } });
  return render(
    <QueryClientProvider client={client}>
      <RoundsPanel projectId={5} isAdmin={true} />
    </QueryClientProvider>,
  );
}

test("an admin starts a policy round; a refusal names the field beside the button", async () => {
  vi.mocked(api.POST).mockResolvedValue(
    refused(400, { message: "config.policy: A policy round needs a policy model.", errors: { "config.policy": ["A policy round needs a policy model."] } }) as never,
  );
  renderPanel();
  await screen.findByRole("row", { name: /#21/ });
  expect(screen.getByRole("img", { name: /Win rate of each policy round/ })).toBeInTheDocument();
  await userEvent.selectOptions(screen.getByLabelText("Round kind"), "policy");
  await userEvent.click(screen.getByRole("button", { name: "Start a round" }));
  expect(api.POST).toHaveBeenCalledWith("/api/v1/projects/{id}/rounds/", { params: { path: { id: 5 } }, body: { kind: "policy" } });
  const alert = await screen.findByRole("alert");
  expect(within(alert).getByRole("listitem")).toHaveTextContent("config.policy: A policy round needs a policy model.");
});

test("activating a version calls the server and refreshes the versions", async () => {
  vi.mocked(api.POST).mockResolvedValue(ok({}) as never);
  renderPanel();
  await userEvent.click(await screen.findByRole("button", { name: "Activate policy v1" }));
  expect(api.POST).toHaveBeenCalledWith("/api/v1/model-versions/{id}/activate/", { params: { path: { id: 3 } } });
  await waitFor(() => expect(vi.mocked(api.GET).mock.calls.filter((call) => String(call[0]).includes("model-versions")).length).toBeGreaterThan(1));
});

test("a refused activation is shown with the model versions", async () => {
  vi.mocked(api.POST).mockResolvedValue(refused(409, { message: "The artifact of version 1 is missing at policy-1.", errors: {} }) as never);
  renderPanel();
  await userEvent.click(await screen.findByRole("button", { name: "Activate policy v1" }));
  expect(await screen.findByRole("alert")).toHaveTextContent("The artifact of version 1 is missing at policy-1.");
});
