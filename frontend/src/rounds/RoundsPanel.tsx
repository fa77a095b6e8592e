/** The dashboard's rounds and models panel: the server state (rounds, model versions) and the writes (start,
 * cancel, activate, sample); what each part shows lives in its own component. */
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect, useRef } from "react";
import { api, type Schemas, unwrap } from "../api/client";
import { ModelVersions } from "./ModelVersions";
import { RoundsTable } from "./RoundsTable";
import { StartRound } from "./StartRound";
import { TrainingSettings } from "./TrainingSettings";
import { isLive } from "./steps";
import type { PolicySampleRequest, RoundKind } from "./types";
import { WinRateChart } from "./WinRateChart";

export function RoundsPanel({ projectId, isAdmin }: { projectId: number; isAdmin: boolean }) {
  const queryClient = useQueryClient();
  const path = { params: { path: { id: projectId } } };
  const rounds = useQuery({
    queryKey: ["rounds", projectId],
    queryFn: async () => unwrap(await api.GET("/api/v1/projects/{id}/rounds/", path)),
    refetchInterval: (query) => ((query.state.data?.results ?? []).some(isLive) ? 2000 : 15_000),
  });
  const list = rounds.data?.results ?? [];
  const anyLive = list.some(isLive);
  const versions = useQuery({
    queryKey: ["versions", projectId],
    queryFn: async () => unwrap(await api.GET("/api/v1/projects/{id}/model-versions/", path)),
    // A round registers its versions at its end: follow more closely while one runs.
    refetchInterval: anyLive ? 5000 : 30_000,
  });
  const refreshRounds = () => queryClient.invalidateQueries({ queryKey: ["rounds", projectId] });
  const refreshVersions = () => queryClient.invalidateQueries({ queryKey: ["versions", projectId] });
  // A round registers its versions as it ends: fetch them then, not at the next slow poll.
  const wasLive = useRef(anyLive);
  useEffect(() => {
    if (wasLive.current && !anyLive) void queryClient.invalidateQueries({ queryKey: ["versions", projectId] });
    wasLive.current = anyLive;
  }, [anyLive, projectId, queryClient]);
  const start = useMutation({
    mutationFn: async (kind: RoundKind | undefined) =>
      unwrap(await api.POST("/api/v1/projects/{id}/rounds/", { ...path, body: kind ? { kind } : {} })),
    onSuccess: refreshRounds,
  });
  const cancel = useMutation({
    mutationFn: async (id: number) => unwrap(await api.POST("/api/v1/rounds/{id}/cancel/", { params: { path: { id } } })),
    onSettled: refreshRounds,
  });
  const activate = useMutation({
    mutationFn: async (id: number) => unwrap(await api.POST("/api/v1/model-versions/{id}/activate/", { params: { path: { id } } })),
    onSettled: refreshVersions,
  });
  const sample = async (id: number, body: PolicySampleRequest) =>
    // The cast only drops what types.ts explains: fields the server defaults are optional in this request.
    unwrap(await api.POST("/api/v1/model-versions/{id}/sample/", { params: { path: { id } }, body: body as Schemas["PolicySampleRequestRequest"] }));
  const failure = rounds.error ?? cancel.error;
  const versionsFailure = versions.error ?? activate.error;
  return (
    <section aria-label="Rounds and models">
      <h2>Training rounds</h2>
      {isAdmin && <TrainingSettings projectId={projectId} />}
      {isAdmin && <StartRound onStart={(kind) => start.mutate(kind)} pending={start.isPending} error={start.error} />}
      {failure && (
        <p role="alert" className="error">
          {failure.message}
        </p>
      )}
      <RoundsTable rounds={list} isAdmin={isAdmin} onCancel={(id) => cancel.mutate(id)} />
      <WinRateChart rounds={list} />
      <h2>Model versions</h2>
      {versionsFailure && (
        <p role="alert" className="error">
          {versionsFailure.message}
        </p>
      )}
      <ModelVersions
        versions={versions.data?.results ?? []}
        isAdmin={isAdmin}
        onActivate={(id) => activate.mutate(id)}
        activating={activate.isPending ? activate.variables : null}
        onSample={sample}
      />
    </section>
  );
}
