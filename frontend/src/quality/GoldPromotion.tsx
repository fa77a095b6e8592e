/** Promote to gold from the dashboard: comparisons whose judgments all agree (at least the project's
 * promote_min_judgments of them) with a Promote button, and those promoted so far with Demote. The server checks
 * every rule and says why it refuses. Prompts and answers are imported or generated text: shown as text only. */
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api, type Schemas, unwrap } from "../api/client";

export type GoldPromotionData = Schemas["GoldPromotion"];
type Item = Schemas["GoldItem"];

export function GoldPromotion({ projectId }: { projectId: number }) {
  const queryClient = useQueryClient();
  const path = { params: { path: { id: projectId } } };
  const gold = useQuery({
    queryKey: ["gold", projectId],
    queryFn: async () => unwrap(await api.GET("/api/v1/projects/{id}/quality/gold/", path)),
  });
  const itemPath = (item: Item) => ({ params: { path: { id: projectId, comparison_id: item.comparison_id } } });
  const onSuccess = (data: GoldPromotionData) => queryClient.setQueryData(["gold", projectId], data);
  const promote = useMutation({
    mutationFn: async (item: Item) => unwrap(await api.POST("/api/v1/projects/{id}/quality/gold/{comparison_id}/", itemPath(item))),
    onSuccess,
  });
  const demote = useMutation({
    mutationFn: async (item: Item) => unwrap(await api.DELETE("/api/v1/projects/{id}/quality/gold/{comparison_id}/", itemPath(item))),
    onSuccess,
  });
  const failure = gold.error ?? promote.error ?? demote.error;
  const pending = [promote, demote].find((m) => m.isPending)?.variables?.comparison_id ?? null;
  return (
    <section aria-label="Gold from consensus" className="gold-promotion">
      <h3>Gold from consensus</h3>
      {failure && (
        <p role="alert" className="error">
          {failure.message}
        </p>
      )}
      {gold.data && <GoldLists data={gold.data} onPromote={(item) => promote.mutate(item)} onDemote={(item) => demote.mutate(item)} pending={pending} />}
    </section>
  );
}

export function GoldLists({
  data,
  onPromote,
  onDemote,
  pending,
}: {
  data: GoldPromotionData;
  onPromote: (item: Item) => void;
  onDemote: (item: Item) => void;
  pending: number | null;
}) {
  return (
    <>
      <p className="hint">
        Ready to become gold: every one of at least {data.min_judgments} judgments gives the same answer. Judgments given before a promotion stay
        ordinary labels (they still train); only later answers are graded as gold checks.
      </p>
      {data.ready.length ? (
        <ul aria-label="Ready to become gold" className="gold-list">
          {data.ready.map((item) => (
            <li key={item.comparison_id} data-testid={`ready-${item.comparison_id}`}>
              <GoldItemText item={item} />
              <button type="button" onClick={() => onPromote(item)} disabled={pending === item.comparison_id}>
                Promote {item.external_id}
              </button>
            </li>
          ))}
        </ul>
      ) : (
        <p>No comparison is ready to become gold.</p>
      )}
      <h4>Promoted to gold</h4>
      {data.promoted.length ? (
        <ul aria-label="Promoted to gold" className="gold-list">
          {data.promoted.map((item) => (
            <li key={item.comparison_id} data-testid={`promoted-${item.comparison_id}`}>
              <GoldItemText item={item} />
              <span className="hint">
                {" "}
                promoted{item.promoted_by ? ` by ${item.promoted_by}` : ""}; {goldChecksSince(item)}
              </span>{" "}
              <button type="button" onClick={() => onDemote(item)} disabled={pending === item.comparison_id}>
                Demote {item.external_id}
              </button>
            </li>
          ))}
        </ul>
      ) : (
        <p>None promoted from here yet.</p>
      )}
    </>
  );
}

function GoldItemText({ item }: { item: Item }) {
  return (
    <span className="gold-item">
      <strong>{item.external_id}</strong> <q>{item.prompt}</q> → <span className="gold-answer">{answerLabel(item)}</span>{" "}
      <span className="hint">
        ({item.judgments} judgment{item.judgments === 1 ? "" : "s"}
        {item.confidence === null ? "" : `, consensus ${Math.round(item.confidence * 100)} %`})
      </span>{" "}
    </span>
  );
}

function goldChecksSince(item: Schemas["PromotedGold"]): string {
  const n = Math.max(0, item.judgments - item.judgments_before);
  return `${n} gold check${n === 1 ? "" : "s"} since`;
}

export function answerLabel(item: Pick<Item, "answer" | "answer_text">): string {
  const answer = item.answer as { tie?: boolean; ranking?: number[] };
  if (answer.tie) return "a tie";
  return answer.ranking ? `ranking: ${item.answer_text}` : item.answer_text;
}
