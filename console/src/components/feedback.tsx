/** Loading and error states, the same on every page. */
import { ApiError } from '../api';

export function Loading({ what }: { what: string }) {
  return (
    <p class="muted" role="status">
      Loading {what}…
    </p>
  );
}

/** An error as the server put it: its message (a 403 names the missing permission), code and request id. */
export function ErrorBox({ error, id }: { error: unknown; id?: string }) {
  if (error === undefined || error === null) return null;
  const e = error instanceof ApiError ? error : undefined;
  const message = e ? e.explanation : error instanceof Error ? error.message : String(error);
  return (
    <div class="error" role="alert" {...(id !== undefined && { id })}>
      <p>{message}</p>
      {e && (
        <p class="muted small">
          {e.code}
          {e.field !== undefined && <> · field {e.field}</>}
          {e.requestId !== undefined && <> · request {e.requestId}</>}
        </p>
      )}
    </div>
  );
}
