import { type LiveState, liveLabel } from "./liveEvents.ts";

/** A live page's heading: its title, whether it follows the tenant's events, and Refresh when it does not. */
export function LiveHeading({ title, state, refresh }: { title: string; state: LiveState; refresh: () => void }) {
  return (
    <div className="page-heading">
      <h1>{title}</h1>
      <span className={`live live-${state}`} data-testid="live-state" role="status">
        {liveLabel(state)}
      </span>
      {state !== "live" && (
        <button type="button" onClick={() => refresh()}>
          Refresh
        </button>
      )}
    </div>
  );
}
