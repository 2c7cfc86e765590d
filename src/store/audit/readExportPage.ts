import { sql } from "kysely";
import type { ExportFileFormat } from "../../audit/exportFormat.ts";
import type { Tx } from "../db.ts";

// Each export line is built by PostgreSQL as text, so Node only joins and writes text: no JSON parse
// or stringify per event. The fields are exactly the ones the content hash covers (appendEvents.ts),
// with occurredAt formatted as the ISO string that was hashed (Date#toISOString: UTC, milliseconds).
// Lines are one concat() each (a chain of || copies the growing line at every step), and JSON values
// come from jsonb output: to_json only where a text column may need escaping.

/** A piece of a line: SQL text that yields part of it (never NULL: concat would drop it silently). */
type Piece = { sql: string } | { literal: string };
const lit = (literal: string): Piece => ({ literal });
const expr = (sql: string): Piece => ({ sql });

function concat(pieces: Piece[]): string {
  const merged: Piece[] = [];
  for (const p of pieces) {
    const last = merged.at(-1);
    if ("literal" in p && last && "literal" in last) merged[merged.length - 1] = lit(last.literal + p.literal);
    else merged.push(p);
  }
  return `concat(${merged.map((p) => ("literal" in p ? `'${p.literal.replace(/'/g, "''")}'` : p.sql)).join(", ")})`;
}

/** A quoted JSON string of a column that holds no character JSON must escape (ids, types, hex hashes). */
const plain = (column: string): Piece[] => [lit('"'), expr(column), lit('"')];

/** `{"k":v,...}`: each value is pieces yielding JSON text. */
const jsonObject = (pairs: Array<[string, Piece[]]>): Piece[] => [...pairs.flatMap(([k, v], i) => [lit(`${i === 0 ? "{" : ","}"${k}":`), ...v]), lit("}")];

/**
 * The product's audit fields: a field of the data (or metadata) as its JSON text when present, else
 * the default. (jsonb -> then ::text, with text defaults, costs half of what jsonb defaults do.)
 */
const field = (path: string, fallback: string): Piece[] => [expr(`coalesce((${path})::text, ${fallback})`)];
const AUDIT: Piece[] = jsonObject([
  ["timestamp", [lit('"'), expr("e.ts"), lit('"')]],
  ["eventType", plain("e.event_type")],
  ["level", field(`e.data->'level'`, `'"info"'`)],
  ["tenantId", plain("e.tenant_id")],
  ["userId", field(`e.metadata#>'{actor,subject}'`, `'null'`)],
  ["sourceIp", field(`e.metadata->'sourceIp'`, `'null'`)],
  ["resource", field(`e.data->'resource'`, `'"' || e.stream_type || '"'`)],
  ["action", field(`e.data->'action'`, `'"' || e.event_type || '"'`)],
  ["status", field(`e.data->'status'`, `'"success"'`)],
  ["requestId", field(`e.metadata->'requestId'`, `'null'`)],
  ["details", field(`e.data->'details'`, `'null'`)],
]);

const EVENT_NDJSON = concat(
  jsonObject([
    ["kind", [lit('"event"')]],
    ["sequence", [expr("e.tenant_seq")]],
    ["eventId", plain("e.event_id")],
    ["tenantId", plain("e.tenant_id")],
    ["streamType", plain("e.stream_type")],
    ["streamId", [expr("to_json(e.stream_id)")]],
    ["streamVersion", [expr("e.stream_version")]],
    ["type", plain("e.event_type")],
    ["schemaVersion", [expr("e.schema_version")]],
    ["occurredAt", [lit('"'), expr("e.ts"), lit('"')]],
    ["data", [expr("e.data")]],
    ["metadata", [expr("e.metadata")]],
    ["contentHash", plain("e.content_hash")],
    ["chainHash", plain("e.chain_hash")],
    ["audit", AUDIT],
  ]),
);

const OMITTED_NDJSON = concat(
  jsonObject([
    ["kind", [lit('"omitted"')]],
    ["sequence", [expr("e.tenant_seq")]],
    ["contentHash", plain("e.content_hash")],
    ["chainHash", plain("e.chain_hash")],
  ]),
);

// CSV (RFC 4180): text fields quoted with their quotes doubled; the column order of CSV_COLUMNS.
const quoted = (sqlText: string): Piece[] => [lit('"'), expr(`replace(${sqlText}, '"', '""')`), lit('"')];
const csvRow = (cells: Piece[][]): string => concat(cells.flatMap((cell, i) => (i === 0 ? cell : [lit(","), ...cell])));

const EVENT_CSV = csvRow([
  [lit("event")],
  [expr("e.tenant_seq")],
  [expr("e.event_id")],
  [expr("e.tenant_id")],
  [expr("e.stream_type")],
  quoted("e.stream_id"),
  [expr("e.stream_version")],
  [expr("e.event_type")],
  [expr("e.schema_version")],
  [expr("e.ts")],
  quoted("e.data::text"),
  quoted("e.metadata::text"),
  [expr("e.content_hash")],
  [expr("e.chain_hash")],
  quoted(concat(AUDIT)),
  [],
]);

const OMITTED_CSV = csvRow([
  [lit("omitted")],
  [expr("e.tenant_seq")],
  ...Array.from({ length: 10 }, () => []),
  [expr("e.content_hash")],
  [expr("e.chain_hash")],
  [],
  [],
]);

const LINES: Record<ExportFileFormat, { event: string; omitted: string }> = {
  ndjson: { event: EVENT_NDJSON, omitted: OMITTED_NDJSON },
  csv: { event: EVENT_CSV, omitted: OMITTED_CSV },
};

/** Rows of `events e` with `ts`, the occurrence time as hashed, computed once per row (offset 0 keeps it so). */
const OCCURRED_AT = `to_char(e.occurred_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

/** A query of every event's line of the tenant, in order: for the benchmark's in-database baseline. */
export const eventLinesSql = (format: ExportFileFormat, tenantId: string): string =>
  `select ${LINES[format].event} from (select e.*, ${OCCURRED_AT} as ts from events e where e.tenant_id = '${tenantId.replace(/'/g, "''")}' order by e.tenant_seq offset 0) e order by e.tenant_seq`;

export interface ExportRowFilter {
  /** Rows before this sequence are stubs (they are there only to carry the chain from the anchor). */
  fromSequence: number;
  from: Date | null;
  to: Date | null;
  types: string[] | null;
}

/** One page of the file: its lines in order, and how many of them are event lines (the rest are stubs). */
export interface ExportPage {
  lines: string[];
  events: number;
}

/** A SQL string literal (standard_conforming_strings, PostgreSQL's default since 9.1). */
const literal = (value: string): string => `'${value.replace(/'/g, "''")}'`;
const integer = (value: number): string => {
  if (!Number.isSafeInteger(value)) throw new TypeError(`not an integer: ${value}`);
  return String(value);
};

/**
 * The query of one page: per row of (after, upTo], in order, its line and whether it is shown in
 * full (in the asked range, of an asked type, in the asked time window) or as a stub. The values
 * are inlined as literals because COPY takes no parameters (copyExportPage.ts); they are all
 * checked values (a tenant id, integers, registered event types, ISO timestamps).
 */
export function exportPageSql(tenantId: string, range: { after: number; upTo: number }, filter: ExportRowFilter, format: ExportFileFormat): string {
  return `select case when e.shown then ${LINES[format].event} else ${LINES[format].omitted} end as line, e.shown
    from (select e.*, ${OCCURRED_AT} as ts, ${shownSql(filter)} as shown from events e where ${rangeSql(tenantId, range)}
          order by e.tenant_seq offset 0) e
    order by e.tenant_seq`;
}

const rangeSql = (tenantId: string, range: { after: number; upTo: number }) =>
  `e.tenant_id = ${literal(tenantId)} and e.tenant_seq > ${integer(range.after)} and e.tenant_seq <= ${integer(range.upTo)}`;

function shownSql(filter: ExportRowFilter): string {
  const conditions = [
    `e.tenant_seq >= ${integer(filter.fromSequence)}`,
    ...(filter.types ? [`e.event_type = any(array[${filter.types.map(literal).join(", ")}]::text[])`] : []),
    ...(filter.from ? [`e.occurred_at >= ${literal(filter.from.toISOString())}::timestamptz`] : []),
    ...(filter.to ? [`e.occurred_at < ${literal(filter.to.toISOString())}::timestamptz`] : []),
  ];
  return `(${conditions.join(" and ")})`;
}

/** The lines of the rows with sequence in (after, upTo], in order, and how many are shown in full. */
export async function readExportPage(
  trx: Tx,
  tenantId: string,
  range: { after: number; upTo: number },
  filter: ExportRowFilter,
  format: ExportFileFormat,
): Promise<ExportPage> {
  const { rows } = await sql<{ line: string; shown: boolean }>`${sql.raw(exportPageSql(tenantId, range, filter, format))}`.execute(trx);
  let events = 0;
  for (const r of rows) if (r.shown) events++;
  return { lines: rows.map((r) => r.line), events };
}

/** How many rows of (after, upTo] the export shows in full, and how many as stubs. */
export async function countExportRows(
  trx: Tx,
  tenantId: string,
  range: { after: number; upTo: number },
  filter: ExportRowFilter,
): Promise<{ events: number; omitted: number }> {
  const { rows } = await sql<{ events: number; total: number }>`${sql.raw(
    `select (count(*) filter (where ${shownSql(filter)}))::int as events, count(*)::int as total from events e where ${rangeSql(tenantId, range)}`,
  )}`.execute(trx);
  const { events, total } = rows[0]!;
  return { events, omitted: total - events };
}

/** The last row of (after, upTo]: the export's end line names its sequence and chain hash. */
export async function readLastRow(trx: Tx, tenantId: string, range: { after: number; upTo: number }): Promise<{ sequence: number; chainHash: string } | null> {
  const { rows } = await sql<{ tenant_seq: number; chain_hash: string }>`
    select tenant_seq, chain_hash from events where tenant_id = ${tenantId} and tenant_seq > ${range.after} and tenant_seq <= ${range.upTo}
    order by tenant_seq desc limit 1`.execute(trx);
  return rows[0] ? { sequence: Number(rows[0].tenant_seq), chainHash: rows[0].chain_hash } : null;
}
