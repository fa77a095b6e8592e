import { useQuery, useQueryClient } from "@tanstack/react-query";
import { lazy, Suspense } from "react";
import { api, HttpError, unwrap } from "./api/client";
import { Login } from "./pages/Login";
import { Projects } from "./pages/Projects";
import { Link, navigate, usePath } from "./router";
import { Workbench } from "./workbench/Workbench";

// The dashboard loads on first visit: its charting library (recharts) is as big as the rest of the app, and
// annotators, who only label, never need it.
const Dashboard = lazy(async () => ({ default: (await import("./pages/Dashboard")).Dashboard }));

export function App() {
  const path = usePath();
  const queryClient = useQueryClient();
  const me = useQuery({
    queryKey: ["me"],
    queryFn: async () => unwrap(await api.GET("/api/v1/me/")),
    retry: (count, error) => !(error instanceof HttpError && [401, 403].includes(error.status)) && count < 2,
  });

  if (me.isPending) return <p aria-busy="true">Loading…</p>;
  if (me.isError) {
    if (me.error instanceof HttpError && [401, 403].includes(me.error.status)) return <Login />;
    return <p role="alert">{me.error.message}</p>;
  }
  const signOut = async () => {
    await api.POST("/api/v1/auth/session/end/");
    queryClient.clear();
    navigate("/");
  };

  let page;
  const label = path.match(/^\/projects\/(\d+)\/label\/?$/);
  const project = path.match(/^\/projects\/(\d+)\/?$/);
  if (path === "/" || path === "/login") page = <Projects />;
  else if (label) page = <Workbench projectId={Number(label[1])} userId={me.data.id} />;
  else if (project) page = <Dashboard projectId={Number(project[1])} />;
  else
    page = (
      <section>
        <h1>Not found</h1>
        <Link to="/">Your projects</Link>
      </section>
    );

  return (
    <>
      <nav className="top" aria-label="Main">
        <Link to="/" className="brand">
          Tandem
        </Link>
        <span className="who" data-testid="signed-in-as">
          {me.data.username}
        </span>
        <button type="button" onClick={() => void signOut()}>
          Sign out
        </button>
      </nav>
      <main>
        <Suspense fallback={<p aria-busy="true">Loading…</p>}>{page}</Suspense>
      </main>
    </>
  );
}
