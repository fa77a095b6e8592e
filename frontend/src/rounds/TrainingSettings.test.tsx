import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { render, screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { api } from "../api/client";
import { TrainingSettings } from "./TrainingSettings";

vi.mock("../api/client", async (importOriginal) => ({ ...(await importOriginal<object>()), api: { GET: vi.fn(), PUT: vi.fn() } }));

const fields = [
  { name: "backbone", type: "string", default: null, choices: [], nullable: true, help: "The encoder." },
  { name: "epochs", type: "number", default: 2, choices: [], nullable: false, help: "Passes over the train pairs." },
  { name: "tie_policy", type: "choice", default: "drop", choices: ["drop", "soft"], nullable: false, help: "Ties." },
  { name: "policy", type: "string", default: null, choices: [], nullable: true, help: "The generator." },
  { name: "schedule", type: "boolean", default: false, choices: [], nullable: false, help: "Let the scheduler start rounds." },
];
const response = (status: number, body: unknown) => ({
  data: status < 300 ? body : undefined,
  error: status < 300 ? undefined : body,
  response: new Response(null, { status }),
});

function renderEditor() {
  const client = new QueryClient({ defaultOptions: { queries: { retry: false }, mutations: { retry: false } } });
  render(
    <QueryClientProvider client={client}>
      <TrainingSettings projectId={5} />
    </QueryClientProvider>,
  );
}

beforeEach(() => {
  vi.mocked(api.GET).mockResolvedValue(response(200, { settings: { backbone: "builtin:minilm", epochs: 1 }, fields }) as never);
});

test("settings are shown in sections with their defaults; a save sends only the fields set", async () => {
  vi.mocked(api.PUT).mockImplementation((async (_url: string, init: { body: { settings: object } }) => response(200, { settings: init.body.settings, fields })) as never);
  renderEditor();
  const form = await screen.findByRole("form", { name: "Training settings" });
  expect(within(form).getAllByRole("group").map((g) => g.querySelector("legend")?.textContent)).toEqual(["Reward model", "Policy loop", "Schedule"]);
  expect(screen.getByLabelText("backbone")).toHaveValue("builtin:minilm");
  expect(screen.getByLabelText("epochs")).toHaveAccessibleDescription(/Default: 2\. Passes over the train pairs\./);
  expect(screen.getByRole("option", { name: "default (drop)" })).toBeInTheDocument();
  await userEvent.clear(screen.getByLabelText("epochs"));
  await userEvent.type(screen.getByLabelText("epochs"), "3");
  await userEvent.selectOptions(screen.getByLabelText("tie_policy"), "soft");
  await userEvent.click(screen.getByRole("button", { name: "Save training settings" }));
  expect(api.PUT).toHaveBeenCalledWith("/api/v1/projects/{id}/training-settings/", {
    params: { path: { id: 5 } },
    body: { settings: { backbone: "builtin:minilm", epochs: 3, tie_policy: "soft" } },
  });
  expect(await screen.findByRole("status")).toHaveTextContent("Training settings saved.");
});

test("a refused save shows each complaint on its own field", async () => {
  vi.mocked(api.PUT).mockResolvedValue(
    response(400, { message: "settings.epochs: Must be greater than 0.", errors: { "settings.epochs": ["Must be greater than 0."] } }) as never,
  );
  renderEditor();
  const epochs = await screen.findByLabelText("epochs");
  await userEvent.clear(epochs);
  await userEvent.type(epochs, "0");
  await userEvent.click(screen.getByRole("button", { name: "Save training settings" }));
  expect(await screen.findByText("Must be greater than 0.")).toBeInTheDocument();
  expect(epochs).toHaveAttribute("aria-invalid", "true");
  expect(epochs).toHaveAccessibleDescription(/Must be greater than 0\./);
  expect(screen.getByLabelText("backbone")).not.toHaveAttribute("aria-invalid");
});
