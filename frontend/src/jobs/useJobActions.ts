/** Cancel and retry requests for one project's imports or exports; the list is refetched after each. */
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { api, unwrap } from "../api/client";

type Request = { id: number; action: "cancel" | "retry" };

async function send(what: "imports" | "exports", { id, action }: Request): Promise<unknown> {
  const path = { params: { path: { id } } };
  if (what === "imports") {
    return unwrap(await (action === "cancel" ? api.POST("/api/v1/imports/{id}/cancel/", path) : api.POST("/api/v1/imports/{id}/retry/", path)));
  }
  return unwrap(await (action === "cancel" ? api.POST("/api/v1/exports/{id}/cancel/", path) : api.POST("/api/v1/exports/{id}/retry/", path)));
}

export function useJobActions(what: "imports" | "exports", projectId: number) {
  const queryClient = useQueryClient();
  const act = useMutation({
    mutationFn: (request: Request) => send(what, request),
    onSettled: () => queryClient.invalidateQueries({ queryKey: [what, projectId] }),
  });
  return {
    busyId: act.isPending ? (act.variables?.id ?? null) : null,
    error: act.error,
    cancel: (id: number) => act.mutate({ id, action: "cancel" }),
    retry: (id: number) => act.mutate({ id, action: "retry" }),
  };
}
