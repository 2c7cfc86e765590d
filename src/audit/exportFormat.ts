// The auditor's export: one JSON object per line (NDJSON), or the same records as CSV rows.
//
//   {"kind":"header",...}      what was exported and the anchor the chain starts from
//   {"kind":"event",...}       an event: its hashed content, sequence, hashes and the audit fields
//   {"kind":"omitted",...}     an event left out (by the filter, or before `from`): only its hashes,
//                              so the chain still verifies across it
//   {"kind":"checkpoint",...}  a signed checkpoint, right after the event at its sequence
//   {"kind":"end",...}         counts, last sequence and chain hash, signed: a cut tail is detected
//
// Each line holds exactly its listed fields (LINE_FIELDS), each hashed or signed or derived from what
// is: the verifier refuses anything else on a line. docs/audit-format.md is the auditor's spec.
// Everything here is plain data: the verifier needs src/audit and jose, nothing else.

import type { HashedContent } from "./hashing.ts";

export const EXPORT_FORMAT = "keyplane-audit-export";
/**
 * 2: the end line also signs format, version and the last checkpoint line (a dropped last checkpoint
 * is named), and every line must hold exactly its fields. Version 1 files are refused (export again).
 */
export const EXPORT_VERSION = 2;

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
  const data = isObject(e.data) ? e.data : NO_FIELDS;
  const metadata = isObject(e.metadata) ? e.metadata : NO_FIELDS;
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
const NO_FIELDS: Record<string, unknown> = Object.freeze({});
/** A field of the data or metadata as it is when present, else the default (the verifier derives these for every event). */
const field = (from: Record<string, unknown>, key: string, fallback: unknown) => (Object.hasOwn(from, key) ? from[key] : fallback);

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

/**
 * What the end line's signature covers: everything in it but `kind` and `jws`: the header's fields
 * (its anchor without the checkpoint's signature) and the totals.
 */
export interface ExportSummary extends Omit<HeaderRecord, "kind" | "anchor"> {
  anchor: { type: "genesis" | "checkpoint"; sequence: number; chainHash: string };
  events: number;
  omitted: number;
  checkpoints: number;
  /** The last checkpoint line of the file (its sequence and signature part), null when it holds none. */
  lastCheckpoint: { sequence: number; signature: string } | null;
  lastSequence: number;
  lastChainHash: string;
}

export interface EndRecord extends ExportSummary {
  kind: "end";
  jws: string;
}

export type ExportRecord = HeaderRecord | EventRecord | OmittedRecord | CheckpointRecord | EndRecord;

/**
 * The fields each line holds: exactly these (a field nobody checks could say anything). The end
 * line holds `kind`, `jws` and exactly the fields of its signed payload (ExportSummary).
 */
export const LINE_FIELDS = {
  header: ["kind", "format", "version", "exportId", "tenantId", "exportedAt", "fromSequence", "toSequence", "filter", "anchor", "recordedAs"],
  event: [
    "kind",
    "sequence",
    "eventId",
    "tenantId",
    "streamType",
    "streamId",
    "streamVersion",
    "type",
    "schemaVersion",
    "data",
    "metadata",
    "occurredAt",
    "contentHash",
    "chainHash",
    "audit",
  ],
  omitted: ["kind", "sequence", "contentHash", "chainHash"],
  checkpoint: ["kind", "sequence", "chainHash", "previousSignature", "signedAt", "kid", "jws"],
} as const;

/** The fields of the header's anchor, by type: a checkpoint anchor is a checkpoint line with `type` for `kind`. */
export const ANCHOR_FIELDS = {
  genesis: ["type", "sequence", "chainHash"],
  checkpoint: ["type", "sequence", "chainHash", "previousSignature", "signedAt", "kid", "jws"],
} as const;

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

export type CsvColumn = (typeof CSV_COLUMNS)[number];

export const CSV_HEADER_ROW = CSV_COLUMNS.join(",");

/**
 * The cells of a header, checkpoint or end row: the whole record as JSON in `record`, and a few of
 * its fields repeated for readers of the table. The reader checks the repeated cells say the same.
 */
export function recordCells(record: HeaderRecord | CheckpointRecord | EndRecord): Partial<Record<CsvColumn, string>> {
  const json = JSON.stringify(record);
  return record.kind === "checkpoint"
    ? { kind: record.kind, sequence: String(record.sequence), chainHash: record.chainHash, record: json }
    : { kind: record.kind, tenantId: record.tenantId, record: json };
}

/** A header, checkpoint or end record as a CSV row (events and stubs are built in SQL). */
export function recordToCsvRow(record: HeaderRecord | CheckpointRecord | EndRecord): string {
  const cells = recordCells(record);
  return CSV_COLUMNS.map((c) => csvField(cells[c])).join(",");
}

/** The columns an event row and a stub row fill (readExportPage.ts); the others are empty. */
export const CSV_FILLED: Record<"event" | "omitted", ReadonlyArray<CsvColumn>> = {
  event: CSV_COLUMNS.filter((c) => c !== "record"),
  omitted: ["kind", "sequence", "contentHash", "chainHash"],
};
