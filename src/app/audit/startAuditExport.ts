import { randomUUID } from "node:crypto";
import type { AuditSigner } from "../../audit/auditSignatures.ts";
import {
  CSV_HEADER_ROW,
  EXPORT_FORMAT,
  EXPORT_JWS_TYPE,
  EXPORT_VERSION,
  recordToCsvRow,
  signatureOf,
  type CheckpointRecord,
  type EndRecord,
  type ExportAnchor,
  type ExportSummary,
  type HeaderRecord,
} from "../../audit/exportFormat.ts";
import { eventMetadata, type Actor, type RequestMeta } from "../../auth/actor.ts";
import { AuditExported } from "../../domain/audit/events.ts";
import { withTenant, type DatabaseHandle, type Db } from "../../store/db.ts";
import { readCheckpoints, readLatestCheckpoint, readTenantHead } from "../../store/audit/checkpointQueries.ts";
import { readFirstSequenceFrom, readLastSequenceBefore } from "../../store/audit/exportRangeQueries.ts";
import { copyExportPage, type CopiedPage } from "../../store/audit/copyExportPage.ts";
import { countExportRows, exportPageSql, readExportPage, readLastRow, type ExportRowFilter } from "../../store/audit/readExportPage.ts";
import { appendEvents } from "../../store/events/appendEvents.ts";
import { genesisHash } from "../../audit/hashing.ts";
import { retainedStart } from "../retention/retainedLog.ts";
import type { AuditExportRequest } from "./parseExportRequest.ts";

/** Rows per page: a few MB of text, so memory stays flat whatever the size of the log. */
const PAGE = 5000;
/** Pages read ahead of the one being written. */
const PAGES_IN_FLIGHT = 2;

export interface AuditExport {
  header: HeaderRecord;
  contentType: string;
  fileName: string;
  /** Rows the export runs through after its anchor (events and stubs), for progress. */
  rows: number;
  /**
   * The file as chunks of many lines (UTF-8), each with the last sequence it reaches. Stopping the
   * iteration (return) stops reading the database.
   */
  chunks(): AsyncGenerator<ExportChunk>;
}

/**
 * Many lines of the file; the last chunk (the end line) also says what the export held. `data` is
 * valid until the next chunk is asked for (its memory is reused): write it, and wait until it is
 * written, first.
 */
export interface ExportChunk {
  data: Buffer;
  sequence: number;
  summary?: ExportSummary;
}

/**
 * Starts an export of the actor's tenant log (the CLI passes a system actor of the tenant): fixes
 * the range against the tenant's head as it is now, finds the anchor (genesis, or the latest signed
 * checkpoint before the range), and records the export as an `audit.exported` event before a line is
 * sent. The lines come from readExportPage, paged by primary key in short transactions: the issue
 * asks for a server-side cursor, but a DECLAREd cursor needs its transaction open for the whole
 * stream, and on PGlite (one connection) an open transaction blocks every writer meanwhile.
 */
export async function startAuditExport(
  deps: { db: Db; auditSigner: AuditSigner; now: () => Date },
  actor: Actor,
  request: AuditExportRequest & { via: "http" | "cli" | "archive" },
  meta: RequestMeta = {},
  /** On PostgreSQL, pages come through COPY on the pool (copyExportPage.ts). */
  database: Pick<DatabaseHandle, "pool"> = {},
): Promise<AuditExport> {
  const tenantId = actor.tenantId;
  const exportId = randomUUID();
  const now = deps.now();
  const exportedAt = now.toISOString();
  const filterOf = (fromSequence: number): ExportRowFilter => ({
    fromSequence,
    from: request.from ?? null,
    to: request.to ?? null,
    types: request.types ?? null,
  });

  const plan = await withTenant(deps.db, tenantId, async (trx) => {
    const head = (await readTenantHead(trx, tenantId))?.lastSequence ?? 0;
    // After retention pruned a prefix, an export starts after its anchor; asking for a pruned part is PRUNED.
    const pruned = await retainedStart(
      trx,
      tenantId,
      { what: request.fromSequence !== undefined ? "fromSequence" : "from", sequence: request.fromSequence, since: request.from },
      { what: request.toSequence !== undefined ? "toSequence" : "to", sequence: request.toSequence, since: request.to },
    );
    const first = pruned ? pruned.throughSequence + 1 : 1;
    const fromSequence = request.fromSequence ?? (request.from ? ((await readFirstSequenceFrom(trx, tenantId, request.from)) ?? head + 1) : first);
    const toSequence = Math.min(head, request.toSequence ?? (request.to ? ((await readLastSequenceBefore(trx, tenantId, request.to)) ?? 0) : head));
    // Events before the range come as stubs from the anchor on, so the chain verifies from it.
    const checkpoint = fromSequence > 1 ? await readLatestCheckpoint(trx, tenantId, Math.min(fromSequence - 1, toSequence)) : null;
    const anchor: ExportAnchor = checkpoint
      ? { type: "checkpoint", ...withoutKind(checkpoint) }
      : { type: "genesis", sequence: 0, chainHash: genesisHash(tenantId) };
    // An empty range streams nothing after the anchor.
    const upTo = fromSequence > toSequence ? anchor.sequence : toSequence;
    const counts = await countExportRows(trx, tenantId, { after: anchor.sequence, upTo }, filterOf(fromSequence));
    const [recorded] = await appendEvents(trx, {
      tenantId,
      streamType: "audit_export",
      streamId: exportId,
      expectedVersion: 0,
      events: [
        AuditExported({
          exportId,
          format: request.format,
          via: request.via,
          fromSequence,
          toSequence,
          ...(request.from ? { from: request.from.toISOString() } : {}),
          ...(request.to ? { to: request.to.toISOString() } : {}),
          ...(request.types ? { types: request.types } : {}),
          anchor: { type: anchor.type, sequence: anchor.sequence },
          events: counts.events,
          omitted: counts.omitted,
        }),
      ],
      metadata: eventMetadata(actor, meta),
      occurredAt: now,
    });
    return { fromSequence, toSequence, anchor, upTo, recordedAs: recorded!.sequence };
  });

  const header: HeaderRecord = {
    kind: "header",
    format: EXPORT_FORMAT,
    version: EXPORT_VERSION,
    exportId,
    tenantId,
    exportedAt,
    fromSequence: plan.fromSequence,
    toSequence: plan.toSequence,
    filter: { from: request.from?.toISOString() ?? null, to: request.to?.toISOString() ?? null, types: request.types ?? null },
    anchor: plan.anchor,
    recordedAs: { sequence: plan.recordedAs },
  };
  const csv = request.format === "csv";
  const lineOf = (record: HeaderRecord | CheckpointRecord | EndRecord) => (csv ? recordToCsvRow(record) : JSON.stringify(record));
  const filter = filterOf(plan.fromSequence);

  /**
   * The page ranges of the stream: PAGE rows each, cut at every checkpoint so its line follows the
   * event at its sequence. Checkpoints are read 100 at a time: memory stays flat here too.
   */
  async function* pageRanges(): AsyncGenerator<{ after: number; upTo: number; checkpoint?: CheckpointRecord }> {
    let pendingCheckpoints: CheckpointRecord[] = [];
    let checkpointsRead = plan.anchor.sequence;
    for (let after = plan.anchor.sequence; after < plan.upTo; ) {
      if (pendingCheckpoints.length === 0 && checkpointsRead < plan.upTo) {
        const from = checkpointsRead;
        pendingCheckpoints = await withTenant(deps.db, tenantId, (trx) => readCheckpoints(trx, tenantId, { after: from, upTo: plan.upTo }, 100));
        checkpointsRead = pendingCheckpoints.length === 100 ? pendingCheckpoints[99]!.sequence : plan.upTo;
      }
      const upTo = Math.min(after + PAGE, plan.upTo);
      const checkpoint = pendingCheckpoints[0] && pendingCheckpoints[0].sequence <= upTo ? pendingCheckpoints.shift() : undefined;
      yield { after, upTo: checkpoint?.sequence ?? upTo, checkpoint };
      after = checkpoint?.sequence ?? upTo;
    }
  }

  // A page becomes bytes as soon as it arrives: its strings die young (cheap to collect), and the
  // bytes it holds until written are freed as soon as they are written.
  // COPY pages are written into buffers that go round (the pages read ahead and the one being
  // written), sized from the bytes per row seen so far.
  const seen = { rows: 0, bytes: 0 };
  const spare: Buffer[] = [];
  const readPage = async (range: { after: number; upTo: number }): Promise<Omit<CopiedPage, "buffer"> & { buffer?: Buffer }> => {
    if (database.pool) {
      const wanted = Math.ceil((range.upTo - range.after) * (seen.rows ? seen.bytes / seen.rows : 1500) * 1.1);
      const reused = spare.pop();
      const into = reused && reused.length >= wanted ? reused : Buffer.allocUnsafe(Math.max(wanted, 64 * 1024));
      const page = await copyExportPage(database.pool, tenantId, exportPageSql(tenantId, range, filter, request.format), into);
      seen.rows += page.rows;
      seen.bytes += page.data?.length ?? 0;
      return page;
    }
    const page = await withTenant(deps.db, tenantId, (trx) => readExportPage(trx, tenantId, range, filter, request.format));
    return { data: page.lines.length ? linesToBuffer(page.lines) : null, rows: page.lines.length, events: page.events };
  };

  async function* chunks(): AsyncGenerator<ExportChunk> {
    yield { data: Buffer.from((csv ? CSV_HEADER_ROW + "\n" : "") + lineOf(header) + "\n"), sequence: plan.anchor.sequence };
    const counts = { events: 0, omitted: 0, checkpoints: 0 };
    // The end line signs the last checkpoint line: a checkpoint dropped from the tail is named.
    let lastCheckpoint: ExportSummary["lastCheckpoint"] = null;
    // Two pages are read at once (two connections on PostgreSQL) while the one before is written.
    const ranges = pageRanges();
    const inFlight: Array<{ range: { upTo: number; checkpoint?: CheckpointRecord }; page: ReturnType<typeof readPage> }> = [];
    const fill = async () => {
      while (inFlight.length < PAGES_IN_FLIGHT) {
        const next = await ranges.next();
        if (next.done) return;
        inFlight.push({ range: next.value, page: handled(readPage(next.value)) });
      }
    };
    try {
      await fill();
      while (inFlight.length) {
        const { range, page: pending } = inFlight.shift()!;
        const page = await pending;
        await fill();
        counts.events += page.events;
        counts.omitted += page.rows - page.events;
        if (page.data) yield { data: page.data, sequence: range.upTo };
        // The consumer is done with the page once it asks for more: its buffer can take another.
        if (page.buffer && spare.length < PAGES_IN_FLIGHT + 1) spare.push(page.buffer);
        if (range.checkpoint) {
          counts.checkpoints++;
          lastCheckpoint = { sequence: range.checkpoint.sequence, signature: signatureOf(range.checkpoint.jws) };
          yield { data: Buffer.from(lineOf(range.checkpoint) + "\n"), sequence: range.upTo };
        }
      }
    } finally {
      // Stopped early (client gone): pages read ahead are dropped.
      inFlight.length = 0;
      await ranges.return(undefined);
    }
    const lastRow = await withTenant(deps.db, tenantId, (trx) => readLastRow(trx, tenantId, { after: plan.anchor.sequence, upTo: plan.upTo }));
    const [lastSequence, lastChainHash] = lastRow ? [lastRow.sequence, lastRow.chainHash] : [plan.anchor.sequence, plan.anchor.chainHash];
    const summary: ExportSummary = {
      format: EXPORT_FORMAT,
      version: EXPORT_VERSION,
      exportId,
      tenantId,
      exportedAt,
      fromSequence: plan.fromSequence,
      toSequence: plan.toSequence,
      filter: header.filter,
      anchor: { type: plan.anchor.type, sequence: plan.anchor.sequence, chainHash: plan.anchor.chainHash },
      recordedAs: header.recordedAs,
      ...counts,
      lastCheckpoint,
      lastSequence,
      lastChainHash,
    };
    const end: EndRecord = { kind: "end", ...summary, jws: await deps.auditSigner.sign(EXPORT_JWS_TYPE, summary) };
    yield { data: Buffer.from(lineOf(end) + "\n"), sequence: plan.upTo, summary };
  }

  const extension = csv ? "csv" : "ndjson";
  return {
    header,
    contentType: csv ? "text/csv; charset=utf-8" : "application/x-ndjson; charset=utf-8",
    fileName: `keyplane-audit-${tenantId}-${plan.fromSequence}-${plan.toSequence}.${extension}`,
    rows: Math.max(0, plan.upTo - plan.anchor.sequence),
    chunks,
  };
}

/**
 * A page's lines, each followed by a newline, encoded straight into one buffer: joining megabytes
 * into one string and encoding that costs several times more (and twice the memory).
 */
function linesToBuffer(lines: string[]): Buffer {
  let size = 0;
  for (const line of lines) size += Buffer.byteLength(line) + 1;
  const out = Buffer.allocUnsafe(size);
  let offset = 0;
  for (const line of lines) {
    offset += out.write(line, offset);
    out[offset++] = 10;
  }
  return out;
}

function withoutKind({ kind: _kind, ...rest }: CheckpointRecord) {
  return rest;
}

/** A prefetch nobody awaits any more (the client went away) must not become an unhandled rejection. */
function handled<T>(promise: Promise<T>): Promise<T> {
  promise.catch(() => {});
  return promise;
}
