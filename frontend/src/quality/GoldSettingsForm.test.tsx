import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { render, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { api } from "../api/client";
import { GoldSettingsForm } from "./GoldSettingsForm";

vi.mock("../api/client", async (importOriginal) => ({ ...(await importOriginal<object>()), api: { GET: vi.fn(), PATCH: vi.fn() } }));

const response = (status: number, body: unknown) => ({
  data: status < 300 ? body : undefined,
  error: status < 300 ? undefined : body,
  response: new Response(null, { status }),
});
const project = (role: string) => ({
  id: 5,
  name: "P",
  my_role: role,
  gold_share: 0.1,
  gold_settings: { warn_below: 0.7, pause_below: null, min_gold: 10, show_own_accuracy: false, promote_min_judgments: 3 },
});

function renderForm(role: string) {
  vi.mocked(api.GET).mockResolvedValue(response(200, project(role)) as never);
  const client = new QueryClient({ defaultOptions: { queries: { retry: false }, mutations: { retry: false } } });
  render(
    <QueryClientProvider client={client}>
      <GoldSettingsForm projectId={5} />
    </QueryClientProvider>,
  );
}

test("an admin changes a threshold and the whole set is saved with the project", async () => {
  vi.mocked(api.PATCH).mockImplementation((async () => response(200, project("admin"))) as never);
  renderForm("admin");
  const pause = await screen.findByLabelText("Pause below");
  expect(pause).toHaveValue("");
  expect(screen.getByLabelText("Warn below")).toHaveValue("0.7");
  await userEvent.type(pause, "0.5");
  await userEvent.click(screen.getByLabelText("Annotators see their own gold accuracy"));
  await userEvent.click(screen.getByRole("button", { name: "Save gold settings" }));
  expect(api.PATCH).toHaveBeenCalledWith("/api/v1/projects/{id}/", {
    params: { path: { id: 5 } },
    body: { gold_share: 0.1, gold_settings: { warn_below: 0.7, pause_below: 0.5, show_own_accuracy: true, min_gold: 10, promote_min_judgments: 3 } },
  });
  expect(await screen.findByRole("status")).toHaveTextContent("Gold settings saved.");
});

test("a refused save shows the server's message beside its field", async () => {
  vi.mocked(api.PATCH).mockResolvedValue(
    response(400, {
      message: "gold_settings.pause_below: Must not be above warn_below (0.7): annotators are warned before they are paused.",
      errors: { "gold_settings.pause_below": ["Must not be above warn_below (0.7): annotators are warned before they are paused."] },
    }) as never,
  );
  renderForm("admin");
  const pause = await screen.findByLabelText("Pause below");
  await userEvent.type(pause, "0.9");
  await userEvent.click(screen.getByRole("button", { name: "Save gold settings" }));
  expect(await screen.findByText(/Must not be above warn_below/)).toHaveAttribute("id", "gold-pause_below-error");
  expect(pause).toHaveAttribute("aria-invalid", "true");
  expect(pause).toHaveAccessibleDescription(/Must not be above warn_below \(0\.7\)/);
  expect(screen.getByLabelText("Warn below")).not.toHaveAttribute("aria-invalid");
  expect(screen.getByText(/Not saved: see the marked fields\./)).toBeInTheDocument();
});

test("a researcher sees the settings but cannot change them", async () => {
  renderForm("researcher");
  expect(await screen.findByLabelText("Warn below")).toBeDisabled();
  expect(screen.getByText("Only the project's admins can change these.")).toBeInTheDocument();
  expect(screen.queryByRole("button", { name: "Save gold settings" })).toBeNull();
});
