// The auditor's export: one JSON object per line (NDJSON), or the same records as CSV rows.
//
//   {"kind":"header",...}      what was exported and the anchor the chain starts from
//   {"kind":"event",...}       an event: its hashed content, sequence, hashes and the audit fields
//   {"kind":"omitted",...}     an event left out (by the filter, or before `from`): only its hashes,
//                              so the chain still verifies across it
//   {"kind":"checkpoint",...}  a signed checkpoint, right after the event at its sequence
//   {"kind":"end",...}         counts, last sequence and chain hash, signed: a cut tail is detected
//
// Everything here is plain data: the verifier needs this module, hashing.ts and jose, nothing else.

import type { HashedContent } from "../store/events/hashing.ts";

export const EXPORT_FORMAT = "keyplane-audit-export";
export const EXPORT_VERSION = 1;

export type ExportFileFormat = "ndjson" | "csv";

/** The product's audit fields, derived from the event (not covered by its hash: recomputable). */
export interface AuditFields {
  timestamp: string;
  eventType: string;
  level: string;
  tenantId: string;
  userId: string | null;
  sourceIp: string | null;
  resource: string;
  action: string;
  status: string;
  requestId: string | null;
  details: unknown;
}

/**
 * The audit fields of an event, as the export derives them in SQL (readExportPage.ts): a field of
 * the data or metadata as it is when present, else its default. The verifier recomputes them, so an
 * edited audit field is caught like an edited event.
 */
export function deriveAuditFields(e: Pick<EventRecord, "occurredAt" | "type" | "tenantId" | "streamType" | "data" | "metadata">): AuditFields {
  const data = isObject(e.data) ? e.data : {};
  const metadata = isObject(e.metadata) ? e.metadata : {};
  const field = (from: Record<string, unknown>, key: string, fallback: unknown) => (Object.hasOwn(from, key) ? from[key] : fallback);
  return {
    timestamp: e.occurredAt,
    eventType: e.type,
    level: field(data, "level", "info") as string,
    tenantId: e.tenantId,
    userId: (isObject(metadata.actor) ? field(metadata.actor, "subject", null) : null) as string | null,
    sourceIp: field(metadata, "sourceIp", null) as string | null,
    resource: field(data, "resource", e.streamType) as string,
    action: field(data, "action", e.type) as string,
    status: field(data, "status", "success") as string,
    requestId: field(metadata, "requestId", null) as string | null,
    details: field(data, "details", null),
  };
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** An event line: the hashed content as stored, its sequence and hashes, and the derived audit fields. */
export type EventRecord = HashedContent & {
  kind: "event";
  sequence: number;
  contentHash: string;
  chainHash: string;
  audit?: AuditFields;
};

export interface OmittedRecord {
  kind: "omitted";
  sequence: number;
  contentHash: string;
  chainHash: string;
}

/** A signed checkpoint as stored; the JWS payload is the authority, the other fields repeat it. */
export interface CheckpointRecord {
  kind: "checkpoint";
  sequence: number;
  chainHash: string;
  previousSignature: string | null;
  signedAt: string;
  kid: string;
  jws: string;
}

export type ExportAnchor = { type: "genesis"; sequence: 0; chainHash: string } | ({ type: "checkpoint" } & Omit<CheckpointRecord, "kind">);

export interface ExportFilter {
  from: string | null;
  to: string | null;
  types: string[] | null;
}

export interface HeaderRecord {
  kind: "header";
  format: typeof EXPORT_FORMAT;
  version: number;
  exportId: string;
  tenantId: string;
  exportedAt: string;
  /** The sequences asked for (after resolving from/to); lines start after the anchor. */
  fromSequence: number;
  toSequence: number;
  filter: ExportFilter;
  anchor: ExportAnchor;
  /** The audit.exported event that recorded this export in the same log. */
  recordedAs: { sequence: number };
}

/** What the end line's signature covers: everything in it but `kind` and `jws`. */
export interface ExportSummary {
  exportId: string;
  tenantId: string;
  exportedAt: string;
  fromSequence: number;
  toSequence: number;
  filter: ExportFilter;
  anchor: { type: "genesis" | "checkpoint"; sequence: number; chainHash: string };
  recordedAs: { sequence: number };
  events: number;
  omitted: number;
  checkpoints: number;
  lastSequence: number;
  lastChainHash: string;
}

export interface EndRecord extends ExportSummary {
  kind: "end";
  jws: string;
}

export type ExportRecord = HeaderRecord | EventRecord | OmittedRecord | CheckpointRecord | EndRecord;

/** JWS `typ` of each signed thing, so one can never stand in for the other. */
export const CHECKPOINT_JWS_TYPE = "kp-audit-checkpoint+jws";
export const EXPORT_JWS_TYPE = "kp-audit-export+jws";

/** What a checkpoint's JWS payload holds. */
export interface CheckpointPayload {
  tenantId: string;
  sequence: number;
  chainHash: string;
  previousSignature: string | null;
  signedAt: string;
}

/** The signature part of a JWS compact serialization: what the next checkpoint links to. */
export const signatureOf = (jws: string): string => jws.slice(jws.lastIndexOf(".") + 1);

// ---- CSV: one row per record, the same fields; JSON values as JSON text. ----------------------

export const CSV_COLUMNS = [
  "kind",
  "sequence",
  "eventId",
  "tenantId",
  "streamType",
  "streamId",
  "streamVersion",
  "type",
  "schemaVersion",
  "occurredAt",
  "data",
  "metadata",
  "contentHash",
  "chainHash",
  "audit",
  /** header, checkpoint and end rows: the whole record as JSON. */
  "record",
] as const;

export const csvField = (value: string | number | null | undefined): string => {
  if (value === null || value === undefined) return "";
  if (typeof value === "number") return String(value);
  return /[",\r\n]/.test(value) || value === "" ? `"${value.replace(/"/g, '""')}"` : value;
};

export const CSV_HEADER_ROW = CSV_COLUMNS.join(",");

/** A header, checkpoint or end record as a CSV row (events and stubs are built in SQL). */
export function recordToCsvRow(record: HeaderRecord | CheckpointRecord | EndRecord): string {
  const cells: Record<string, string | number | null> = { kind: record.kind, record: JSON.stringify(record) };
  if (record.kind === "checkpoint") Object.assign(cells, { sequence: record.sequence, tenantId: null, chainHash: record.chainHash });
  if (record.kind !== "checkpoint") cells.tenantId = record.tenantId;
  return CSV_COLUMNS.map((c) => csvField(cells[c])).join(",");
}

/** Rebuilds the record a CSV row stands for (the inverse of the export's CSV rows). */
export function csvRowToRecord(row: Record<string, string>): ExportRecord {
  const int = (name: string) => {
    const n = Number(row[name]);
    if (row[name] === undefined || row[name] === "" || !Number.isSafeInteger(n)) throw new Error(`column ${name}: not an integer`);
    return n;
  };
  const json = (name: string) => JSON.parse(row[name] ?? "") as unknown;
  switch (row.kind) {
    case "event":
      return {
        kind: "event",
        sequence: int("sequence"),
        eventId: row.eventId ?? "",
        tenantId: row.tenantId ?? "",
        streamType: row.streamType ?? "",
        streamId: row.streamId ?? "",
        streamVersion: int("streamVersion"),
        type: row.type ?? "",
        schemaVersion: int("schemaVersion"),
        occurredAt: row.occurredAt ?? "",
        data: json("data"),
        metadata: json("metadata"),
        contentHash: row.contentHash ?? "",
        chainHash: row.chainHash ?? "",
        ...(row.audit ? { audit: json("audit") as AuditFields } : {}),
      };
    case "omitted":
      return { kind: "omitted", sequence: int("sequence"), contentHash: row.contentHash ?? "", chainHash: row.chainHash ?? "" };
    case "header":
    case "checkpoint":
    case "end": {
      const record = json("record") as ExportRecord;
      if (record?.kind !== row.kind) throw new Error("column record: does not match the row's kind");
      return record;
    }
    default:
      throw new Error(`unknown kind ${JSON.stringify(row.kind)}`);
  }
}
