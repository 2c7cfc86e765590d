import { sql } from "kysely";
import type { ExportFileFormat } from "../../audit/exportFormat.ts";
import type { Tx } from "../db.ts";

// Each export line is built by PostgreSQL as text, so Node only joins and writes text: no JSON parse
// or stringify per event. The fields are exactly the ones the content hash covers (appendEvents.ts),
// with occurredAt formatted as the ISO string that was hashed (Date#toISOString: UTC, milliseconds).

const OCCURRED_AT = `to_char(e.occurred_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

/** A JSON string (or null) from a text expression. */
const jsonText = (expr: string) => `coalesce(to_json(${expr})::text, 'null')`;

/** `{"k":v,...}` as SQL text concatenation; values are SQL expressions that yield JSON text. */
const jsonObject = (pairs: Array<[string, string]>) => pairs.map(([k, v], i) => `'${i === 0 ? "{" : ","}"${k}":' || ${v}`).join(" || ") + ` || '}'`;

/** The product's audit fields, derived from the event. */
const AUDIT_PAIRS: Array<[string, string]> = [
  ["timestamp", `'"' || ${OCCURRED_AT} || '"'`],
  ["eventType", jsonText("e.event_type")],
  ["level", jsonText(`coalesce(e.data->>'level', 'info')`)],
  ["tenantId", jsonText("e.tenant_id")],
  ["userId", jsonText(`e.metadata#>>'{actor,subject}'`)],
  ["sourceIp", jsonText(`e.metadata->>'sourceIp'`)],
  ["resource", jsonText(`coalesce(e.data->>'resource', e.stream_type)`)],
  ["action", jsonText(`coalesce(e.data->>'action', e.event_type)`)],
  ["status", jsonText(`coalesce(e.data->>'status', 'success')`)],
  ["requestId", jsonText(`e.metadata->>'requestId'`)],
  ["details", `coalesce((e.data->'details')::text, 'null')`],
];

const EVENT_NDJSON = jsonObject([
  ["kind", `'"event"'`],
  ["sequence", "e.tenant_seq::text"],
  ["eventId", jsonText("e.event_id::text")],
  ["tenantId", jsonText("e.tenant_id")],
  ["streamType", jsonText("e.stream_type")],
  ["streamId", jsonText("e.stream_id")],
  ["streamVersion", "e.stream_version::text"],
  ["type", jsonText("e.event_type")],
  ["schemaVersion", "e.schema_version::text"],
  ["occurredAt", `'"' || ${OCCURRED_AT} || '"'`],
  ["data", "e.data::text"],
  ["metadata", "e.metadata::text"],
  ["contentHash", jsonText("e.content_hash")],
  ["chainHash", jsonText("e.chain_hash")],
  ["audit", `(${jsonObject(AUDIT_PAIRS)})`],
]);

const OMITTED_NDJSON = jsonObject([
  ["kind", `'"omitted"'`],
  ["sequence", "e.tenant_seq::text"],
  ["contentHash", jsonText("e.content_hash")],
  ["chainHash", jsonText("e.chain_hash")],
]);

// CSV (RFC 4180): text fields always quoted, quotes doubled; the column order of CSV_COLUMNS.
const q = (expr: string) => `coalesce('"' || replace(${expr}, '"', '""') || '"', '')`;
const csvRow = (cells: string[]) => cells.join(` || ',' || `);

const EVENT_CSV = csvRow([
  `'event'`,
  "e.tenant_seq::text",
  "e.event_id::text",
  q("e.tenant_id"),
  q("e.stream_type"),
  q("e.stream_id"),
  "e.stream_version::text",
  q("e.event_type"),
  "e.schema_version::text",
  OCCURRED_AT,
  q("e.data::text"),
  q("e.metadata::text"),
  q("e.content_hash"),
  q("e.chain_hash"),
  q(`(${jsonObject(AUDIT_PAIRS)})`),
  "''",
]);

const OMITTED_CSV = csvRow([`'omitted'`, "e.tenant_seq::text", ...Array(10).fill("''"), q("e.content_hash"), q("e.chain_hash"), "''", "''"]);

const LINES: Record<ExportFileFormat, { event: string; omitted: string }> = {
  ndjson: { event: EVENT_NDJSON, omitted: OMITTED_NDJSON },
  csv: { event: EVENT_CSV, omitted: OMITTED_CSV },
};

export interface ExportRowFilter {
  /** Rows before this sequence are stubs (they are there only to carry the chain from the anchor). */
  fromSequence: number;
  from: Date | null;
  to: Date | null;
  types: string[] | null;
}

export interface ExportRow {
  seq: number;
  chain: string;
  /** An event line (true) or an omitted stub (false). */
  shown: boolean;
  line: string;
}

/** Whether the row is shown in full: in the asked range, of an asked type, in the asked time window. */
function shownCondition(filter: ExportRowFilter) {
  const types = filter.types ? JSON.stringify(filter.types) : null;
  return sql`(e.tenant_seq >= ${filter.fromSequence}
    and (${types}::jsonb is null or ${types}::jsonb ? e.event_type)
    and (${filter.from}::timestamptz is null or e.occurred_at >= ${filter.from}::timestamptz)
    and (${filter.to}::timestamptz is null or e.occurred_at < ${filter.to}::timestamptz))`;
}

/** The lines of the rows with sequence in (after, upTo], in order. */
export async function readExportPage(trx: Tx, tenantId: string, range: { after: number; upTo: number }, filter: ExportRowFilter, format: ExportFileFormat): Promise<ExportRow[]> {
  const shown = shownCondition(filter);
  const { rows } = await sql<ExportRow>`
    select e.tenant_seq as seq, e.chain_hash as chain, ${shown} as shown,
           case when ${shown} then ${sql.raw(LINES[format].event)} else ${sql.raw(LINES[format].omitted)} end as line
    from events e
    where e.tenant_id = ${tenantId} and e.tenant_seq > ${range.after} and e.tenant_seq <= ${range.upTo}
    order by e.tenant_seq`.execute(trx);
  return rows;
}

/** How many rows of (after, upTo] the export shows in full, and how many as stubs. */
export async function countExportRows(trx: Tx, tenantId: string, range: { after: number; upTo: number }, filter: ExportRowFilter): Promise<{ events: number; omitted: number }> {
  const { rows } = await sql<{ events: number; total: number }>`
    select count(*) filter (where ${shownCondition(filter)})::int as events,
           count(*)::int as total
    from events e
    where e.tenant_id = ${tenantId} and e.tenant_seq > ${range.after} and e.tenant_seq <= ${range.upTo}`.execute(trx);
  const { events, total } = rows[0]!;
  return { events, omitted: total - events };
}
