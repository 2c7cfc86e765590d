import type { DomainEvent } from "../../domain/eventDefinition.ts";

/** Who did it, from where, as part of which request: the audit fields of every event. */
export interface EventMetadata {
  actor: { subject: string; kind: string; roles: string[]; tokenId?: string };
  requestId?: string;
  correlationId?: string;
  causationId?: string;
  sourceIp?: string;
  userAgent?: string;
  [key: string]: unknown;
}

export type ExpectedVersion = number | "any";

export interface AppendRequest {
  tenantId: string;
  streamType: string;
  streamId: string;
  /** The stream's current version as the caller decided on it (0 = the stream must not exist yet). */
  expectedVersion: ExpectedVersion;
  events: DomainEvent[];
  metadata: EventMetadata;
  /** When it happened, by the use case's clock (deps.now): the events' occurredAt. */
  occurredAt: Date;
}

export interface StoredEvent {
  tenantId: string;
  sequence: number;
  streamType: string;
  streamId: string;
  streamVersion: number;
  eventId: string;
  type: string;
  schemaVersion: number;
  data: Record<string, unknown>;
  metadata: EventMetadata;
  occurredAt: string;
  recordedAt: string;
  contentHash: string;
  chainHash: string;
}
