/** A settings form's Save and Discard buttons: Save once something changed, Discard while it differs. */
export function SaveButtons({
  label,
  edited,
  pending,
  onDiscard,
}: {
  label: string;
  edited: boolean;
  pending: boolean;
  onDiscard: () => void;
}) {
  return (
    <div className="row">
      <button type="submit" disabled={pending || !edited}>
        {label}
      </button>
      {edited && (
        <button type="button" onClick={onDiscard}>
          Discard changes
        </button>
      )}
    </div>
  );
}
