import { useCallback, useEffect, useRef, useState } from "react";
import { type CombinedError, type OperationContext, useQuery, useSubscription } from "urql";
import type { Viewer } from "./App.tsx";
import { graphql, type ResultOf } from "./graphql.ts";

// The tenant's events as they are appended (tenantEvents over graphql-ws), for pages that show state
// live: a page re-reads what an event changed. No polling. A principal receives the events of the
// areas it reads (`me.liveEventTypes`: a viewer sees agents come online); one that receives none of
// a page's types sees a page that changes when it acts or reloads.
//
// With audit:read the subscription starts at the log's newest event as it was just before the page
// read its data again (the `after` cursor), so nothing appended between the page's first read and
// the subscription is missed.

const NewestCursor = graphql(`
  query NewestCursor {
    auditLog(first: 1, order: NEWEST_FIRST) {
      nodes {
        cursor
      }
    }
  }
`);

const TenantEvents = graphql(`
  subscription TenantEvents($after: String, $types: [String!]) {
    tenantEvents(after: $after, types: $types) {
      sequence
      cursor
      type
      streamId
      occurredAt
      data
    }
  }
`);

export type LiveEvent = ResultOf<typeof TenantEvents>["tenantEvents"];

/** "off": none of the page's events is the principal's to receive; "live": subscribed; "error": refused or ended. */
export type LiveState = "off" | "starting" | "live" | "error";

/**
 * Calls `onEvent` for each event of `types` (and once with null when the subscription starts from a
 * cursor: the page re-reads, so that nothing between its first read and the cursor is missed).
 */
export function useTenantEvents(
  viewer: Viewer,
  types: readonly string[],
  onEvent: (event: LiveEvent | null) => void,
): { state: LiveState; error?: CombinedError } {
  const receives = new Set(viewer.liveEventTypes);
  const wanted = types.filter((type) => receives.has(type));
  const allowed = wanted.length > 0;
  const withCursor = allowed && viewer.permissions.includes("audit:read");
  const [{ data: newest, error: cursorError }] = useQuery({ query: NewestCursor, pause: !withCursor, requestPolicy: "network-only" });
  // The first cursor read, kept: a later one would restart the subscription.
  const [after, setAfter] = useState<string | null | undefined>(withCursor ? undefined : null);
  useEffect(() => {
    if (after !== undefined) return;
    if (newest) setAfter(newest.auditLog.nodes[0]?.cursor ?? null);
    else if (cursorError) setAfter(null);
  }, [after, newest, cursorError]);

  const ready = allowed && after !== undefined;
  const [{ data, error }] = useSubscription(
    { query: TenantEvents, variables: { after: after ?? null, types: wanted }, pause: !ready },
    (previous: { count: number; last: LiveEvent } | undefined, next) => ({ count: (previous?.count ?? 0) + 1, last: next.tenantEvents }),
  );

  const handler = useRef(onEvent);
  handler.current = onEvent;
  useEffect(() => {
    if (ready && after) handler.current(null);
  }, [ready, after]);
  const count = data?.count ?? 0;
  const last = data?.last;
  useEffect(() => {
    if (count > 0 && last) handler.current(last);
  }, [count, last]);

  // tenantEvents never ends but with an error (urql's `fetching` only covers the wait for the first event).
  const state: LiveState = !allowed ? "off" : error ? "error" : ready ? "live" : "starting";
  return { state, error };
}

/**
 * A page's query read again after events, one read at a time: events during a read make one more read
 * after it (a burst of events is one or two reads, and no read is aborted for the next). `busy`: the
 * query's fetching || stale.
 */
export function useReread(busy: boolean, reexecute: (context?: Partial<OperationContext>) => void): () => void {
  const reading = useRef(busy);
  const again = useRef(false);
  useEffect(() => {
    // Busy: loading, or read again by urql itself (a mutation answered a type the query shows).
    if (busy) {
      reading.current = true;
      return;
    }
    reading.current = false;
    if (again.current) {
      again.current = false;
      reading.current = true;
      reexecute({ requestPolicy: "network-only" });
    }
  }, [busy, reexecute]);
  return useCallback(() => {
    if (reading.current) {
      again.current = true;
      return;
    }
    reading.current = true;
    reexecute({ requestPolicy: "network-only" });
  }, [reexecute]);
}

/** Words for the live state, next to a page's heading. */
export function liveLabel(state: LiveState): string {
  switch (state) {
    case "live":
      return "Live";
    case "starting":
      return "Connecting…";
    case "error":
      return "Live updates stopped: reload the page";
    default:
      return "Not live: your role receives none of these events live";
  }
}
