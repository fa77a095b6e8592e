import { useQuery } from "@tanstack/react-query";
import { api, unwrap } from "../api/client";
import { Link } from "../router";

export function Projects() {
  // Always fresh when the page opens: the workbench only counts its own saves into this cache.
  const work = useQuery({
    queryKey: ["work"],
    queryFn: async () => unwrap(await api.GET("/api/v1/me/work/")),
    refetchOnMount: "always",
  });
  if (work.isPending) return <p aria-busy="true">Loading…</p>;
  if (work.isError) return <p role="alert">{work.error.message}</p>;
  if (!work.data.length) return <p>You are not a member of any project yet. Ask a project admin to add you.</p>;
  return (
    <section>
      <h1>Your projects</h1>
      <table className="projects">
        <thead>
          <tr>
            <th scope="col">Project</th>
            <th scope="col">Modality</th>
            <th scope="col">Left for you</th>
            <th scope="col">You today</th>
            <th scope="col">Role</th>
            <th scope="col" aria-label="Actions" />
          </tr>
        </thead>
        <tbody>
          {work.data.map((row) => (
            <tr key={row.project} data-testid={`project-${row.project}`}>
              <td>
                {row.name}
                {row.paused && (
                  <p className="error" data-testid="paused">
                    Paused: {row.paused}
                  </p>
                )}
                {row.gold_warning && (
                  <p className="warning" data-testid="gold-warning">
                    {row.gold_warning}
                  </p>
                )}
                {row.gold && (
                  <p className="hint" data-testid="own-gold">
                    Your gold accuracy: {pct(row.gold.accuracy)} of {row.gold.judged} checks ({pct(row.gold.low)}–{pct(row.gold.high)})
                  </p>
                )}
              </td>
              <td>{row.modality}</td>
              <td data-testid="remaining">{row.remaining_capped ? `${row.remaining.toLocaleString("en")}+` : row.remaining}</td>
              <td>{row.done_today}</td>
              <td>{row.role}</td>
              <td className="row">
                <Link to={`/projects/${row.project}/label`} className="button">
                  Label
                </Link>
                {row.role !== "annotator" && <Link to={`/projects/${row.project}`}>Dashboard</Link>}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

function pct(value: number): string {
  return `${Math.round(value * 100)} %`;
}
