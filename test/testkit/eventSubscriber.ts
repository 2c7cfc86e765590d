import { createClient } from "graphql-ws";
import WebSocket from "ws";

/** One tenantEvents item as a client receives it. */
export interface ReceivedEvent {
  sequence: number;
  cursor: string;
  type: string;
  streamType: string;
  streamId: string;
  streamVersion: number;
  occurredAt: string;
  actor: string;
  data: Record<string, unknown>;
  contentHash: string;
  chainHash: string;
}

export const TENANT_EVENTS = `subscription ($after: String, $types: [String!]) {
  tenantEvents(after: $after, types: $types) { sequence cursor type streamType streamId streamVersion occurredAt actor data contentHash chainHash }
}`;

export interface EventSubscriber {
  readonly events: ReceivedEvent[];
  /** GraphQL errors the subscription ended with. */
  errors?: Array<{ message: string; extensions?: Record<string, unknown> }>;
  /** How the socket closed, if it did. */
  close?: { code: number; reason: string };
  /** Resolves once the server acknowledged the connection. */
  readonly connected: Promise<void>;
  /** Resolves when the subscription ended: completed, failed or closed. */
  readonly ended: Promise<void>;
  /** Resolves once `predicate` holds for the events received (rejects after timeoutMs). */
  until(predicate: (events: ReceivedEvent[]) => boolean, timeoutMs?: number): Promise<ReceivedEvent[]>;
  dispose(): Promise<void>;
}

export const IDENTITY_EVENTS = `subscription {
  identityEvents { sequence cursor type streamType streamId streamVersion occurredAt actor data contentHash chainHash }
}`;

/**
 * Subscribes to tenantEvents (or another subscription of the same AuditEvent shape, `field` named
 * in `query`) over graphql-ws, recording everything it receives.
 */
export function subscribeEvents(
  baseUrl: string,
  token: string,
  variables: { after?: string; types?: string[] } = {},
  { query = TENANT_EVENTS, field = "tenantEvents" }: { query?: string; field?: string } = {},
): EventSubscriber {
  let connected!: () => void;
  let ended!: () => void;
  const waiters = new Set<() => void>();
  const client = createClient({
    url: `${baseUrl.replace(/^http/, "ws")}/graphql`,
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${token}` },
    retryAttempts: 0,
    lazy: true,
    on: { connected: () => connected() },
  });
  const subscriber: EventSubscriber = {
    events: [],
    connected: new Promise<void>((resolve) => (connected = resolve)),
    ended: new Promise<void>((resolve) => (ended = resolve)),
    until(predicate, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (!predicate(subscriber.events)) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve(subscriber.events);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(
            new Error(
              `timed out with ${subscriber.events.length} events (last ${subscriber.events.at(-1)?.sequence}); close ${JSON.stringify(subscriber.close)} errors ${JSON.stringify(subscriber.errors)}`,
            ),
          );
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    async dispose() {
      await client.dispose();
    },
  };
  const notify = () => {
    for (const waiter of [...waiters]) waiter();
  };
  client.subscribe<Record<string, ReceivedEvent>>(
    { query, variables },
    {
      next: (result) => {
        if (result.errors) subscriber.errors = result.errors as EventSubscriber["errors"];
        const event = result.data?.[field];
        if (event) subscriber.events.push(event);
        notify();
      },
      error: (error: unknown) => {
        if (Array.isArray(error)) subscriber.errors = error;
        else if (error && typeof error === "object" && "code" in error) {
          subscriber.close = { code: (error as { code: number }).code, reason: String((error as { reason?: unknown }).reason ?? "") };
        } else subscriber.errors = [{ message: String(error) }];
        notify();
        ended();
      },
      complete: () => {
        notify();
        ended();
      },
    },
  );
  return subscriber;
}

/** Asserts-friendly view: the sequences received, in order. */
export const sequencesOf = (events: ReceivedEvent[]) => events.map((e) => e.sequence);

/** [from..to] inclusive. */
export const range = (from: number, to: number) => Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i);
