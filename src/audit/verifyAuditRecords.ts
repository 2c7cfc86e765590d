import type { JSONWebKeySet } from "jose";
import { checkAuditJws } from "./auditSignatures.ts";
import { hashContent } from "./canonicalContent.ts";
import { CheckedEvent, FIELDS, fieldsProblem, sameAuditFields, stable, type VerifiableRecord } from "./exportLines.ts";
import {
  CHECKPOINT_JWS_TYPE,
  deriveAuditFields,
  EXPORT_FORMAT,
  EXPORT_JWS_TYPE,
  EXPORT_VERSION,
  LINE_FIELDS,
  signatureOf,
  type CheckpointPayload,
  type CheckpointRecord,
  type EndRecord,
  type EventRecord,
  type ExportAnchor,
  type ExportSummary,
  type HeaderRecord,
  type OmittedRecord,
} from "./exportFormat.ts";
import { chainHash, genesisHash } from "./hashing.ts";

// The one verifier: exports (NDJSON or CSV, from the CLI and the tests) and the database's own rows
// (verifyAuditLog, the checkpoint signer) go through it. It recomputes every content hash from the
// canonical JSON and the chain from the anchor, checks signed checkpoints and the signed end line,
// and names the FIRST bad sequence with what happened there. Constant memory: one row of look-ahead
// and at most one remembered row.
//
// It trusts nothing on a line that is not hashed, signed or derived from what is: each line must
// hold exactly its fields (LINE_FIELDS), a checkpoint line must say exactly what its JWS signs, the
// audit fields must be the ones derived from the content, and the (unsigned) header must say what
// the end line signs. docs/audit-format.md describes all of it for auditors writing their own.

export type ProblemKind =
  | "modified"
  | "deleted"
  | "inserted"
  | "reordered"
  /** The export ends without its end line: cut after the last sequence seen. */
  | "truncated"
  | "checkpoint-signature"
  /** A checkpoint whose signature holds but whose chain hash is not the recomputed one: rewritten events. */
  | "checkpoint-mismatch"
  /** A checkpoint that does not link to the one before it: a checkpoint is missing or was replaced. */
  | "checkpoint-link"
  | "end-signature"
  /** The end line (or the tenant's head) disagrees with what was read: rewritten or re-counted. */
  | "end-mismatch"
  | "header"
  | "malformed";

export interface AuditProblem {
  kind: ProblemKind;
  /** The first sequence that is not as Keyplane wrote it (null when no sequence can be named). */
  sequence: number | null;
  message: string;
}

export interface VerificationReport {
  ok: boolean;
  tenantId: string | null;
  /** Where the chain starts: the tenant's genesis, or a signed checkpoint (a partial export). */
  startsFrom: "genesis" | "checkpoint" | null;
  anchorSequence: number | null;
  /** Last sequence verified in order (the anchor's when none). */
  lastSequence: number | null;
  lastChainHash: string | null;
  events: number;
  omitted: number;
  checkpoints: number;
  /** "unchecked" when no JWKS was given: the chain is verified, the signatures are not. */
  signatures: "verified" | "unchecked";
  problem: AuditProblem | null;
}

export type VerifyOptions = {
  /** The JWKS to check signatures against; without it they are reported unchecked. */
  keys?: JSONWebKeySet;
} & (
  | { source: "export" }
  /** Rows read from the database: no header or end line; the anchor and the tenant's head stand for them. */
  | { source: "log"; tenantId: string; anchor: ExportAnchor; head?: { lastSequence: number; lastChainHash: string } }
);

type Row = EventRecord | OmittedRecord | CheckedEvent;

/** The content hash of a row: a stub's is the one it says; a checked event's was recomputed by the reader. */
const contentOf = (row: Row): string => (row.kind === "omitted" || row instanceof CheckedEvent ? row.contentHash : hashContent(row));

/** The content hash a row really has, or null when the row cannot be hashed (wrong field types). */
function safeContentOf(row: Row): string | null {
  try {
    return contentOf(row);
  } catch {
    return null;
  }
}

class Problem extends Error {
  constructor(readonly problem: AuditProblem) {
    super(problem.message);
  }
}
function fail(kind: ProblemKind, sequence: number | null, message: string): never {
  throw new Problem({ kind, sequence, message });
}

/**
 * Verifies records in order. Returns at the first problem (the rest of the input is read only when
 * telling a deletion from a move needs it).
 */
export async function verifyAuditRecords(
  records: AsyncIterable<VerifiableRecord> | Iterable<VerifiableRecord>,
  options: VerifyOptions,
): Promise<VerificationReport> {
  if (Symbol.asyncIterator in records) {
    const iterator = records[Symbol.asyncIterator]();
    return verify(async () => {
      const r = await iterator.next();
      return r.done ? undefined : r.value;
    }, options);
  }
  const iterator = records[Symbol.iterator]();
  return verify(() => {
    const r = iterator.next();
    return r.done ? undefined : r.value;
  }, options);
}

/** verifyAuditRecords over records read a batch at a time: one await per batch, not per record. */
export async function verifyRecordBatches(batches: AsyncIterable<ReadonlyArray<VerifiableRecord>>, options: VerifyOptions): Promise<VerificationReport> {
  const iterator = batches[Symbol.asyncIterator]();
  let batch: ReadonlyArray<VerifiableRecord> = [];
  let i = 0;
  const refill = async (): Promise<VerifiableRecord | undefined> => {
    for (;;) {
      const r = await iterator.next();
      if (r.done) return undefined;
      batch = r.value;
      i = 0;
      if (batch.length > 0) return batch[i++];
    }
  };
  return verify(() => (i < batch.length ? batch[i++] : refill()), options);
}

/** The next record: at once when it is at hand, else a promise of it (undefined: no more). */
type Pull = () => VerifiableRecord | undefined | Promise<VerifiableRecord | undefined>;

async function verify(pull: Pull, options: VerifyOptions): Promise<VerificationReport> {
  const state = new ChainState(options.keys, options.source === "export");
  const next = async (): Promise<VerifiableRecord | undefined> => pull();
  let header: HeaderRecord | undefined;
  try {
    if (options.source === "export") {
      const first = await next();
      header = checkHeader(first);
      await state.begin(header.tenantId, header.anchor, header);
    } else {
      await state.begin(options.tenantId, options.anchor);
    }
    let end: EndRecord | undefined;
    for (;;) {
      let record = pull();
      if (record instanceof Promise) record = await record;
      if (record === undefined) break;
      if (end) {
        fail(
          record.kind === "event" || record.kind === "omitted" ? "inserted" : "malformed",
          "sequence" in record ? (record.sequence ?? null) : null,
          `a ${record.kind} line after the end line`,
        );
      }
      switch (record.kind) {
        case "event":
        case "omitted": {
          const lookingAhead = state.row(record, next);
          if (lookingAhead) await lookingAhead;
          break;
        }
        case "checkpoint":
          await state.checkpoint(record);
          break;
        case "end":
          if (options.source !== "export") fail("malformed", state.expected, "an end line in the database's rows");
          end = record;
          break;
        case "header":
          fail("malformed", state.expected, "a second header line");
          break;
        case "malformed":
          fail("malformed", state.at(record.sequence), `line ${record.line}: ${record.message}`);
          break;
        default:
          fail("malformed", state.expected, `unknown record kind ${JSON.stringify((record as { kind: unknown }).kind)}`);
      }
    }
    if (options.source === "export") await state.end(end, header!);
    else if (options.head) state.endAtHead(options.head);
  } catch (error) {
    if (!(error instanceof Problem)) throw error;
    return state.report(error.problem);
  }
  return state.report(null);
}

function checkHeader(first: VerifiableRecord | undefined): HeaderRecord {
  if (!first) return fail("header", null, "the export is empty");
  if (first.kind === "malformed") return fail("header", null, `line ${first.line}: ${first.message}`);
  if (first.kind !== "header") return fail("header", null, `the first line is a ${first.kind} line, not the header`);
  if (first.format !== EXPORT_FORMAT) return fail("header", null, `not a ${EXPORT_FORMAT} file`);
  if (first.version !== EXPORT_VERSION) {
    // Version 1 end lines do not sign the last checkpoint: such a file cannot be held to this standard.
    const old = first.version === 1 ? ": version 1 files are no longer verified, export the range again (the log has not changed)" : "";
    return fail("header", null, `a version ${JSON.stringify(first.version)} file; this verifier reads version ${EXPORT_VERSION}${old}`);
  }
  const wrong = fieldsProblem(first, FIELDS.header);
  if (wrong) return fail("header", null, `the header has ${wrong}`);
  if (typeof first.tenantId !== "string" || typeof first.anchor !== "object" || first.anchor === null)
    return fail("header", null, "the header has no tenant or anchor");
  if (typeof first.filter !== "object" || first.filter === null) return fail("header", null, "the header has no filter");
  return first;
}

class ChainState {
  tenantId = "";
  anchor: ExportAnchor | undefined;
  /** The export's header: which sequences it shows in full and which as stubs. */
  header: HeaderRecord | undefined;
  types: ReadonlySet<string> | null = null;
  /**
   * The first line whose kind (event or stub) is not the one the header says belongs there. The
   * header is unsigned until the end line is checked, so this is reported then, not when seen.
   */
  misplaced: AuditProblem | null = null;
  /** e: the sequence the next row must have; p: the chain hash after e-1; pp: after e-2 (null: unknown). */
  expected = 1;
  previous = "";
  beforePrevious: string | null = null;
  /** The last checkpoint verified (the anchor counts), for the next one's link. */
  lastCheckpoint: { sequence: number; signature: string | null } = { sequence: 0, signature: null };
  events = 0;
  omitted = 0;
  checkpoints = 0;

  constructor(
    readonly keys: JSONWebKeySet | undefined,
    /** Export lines carry the audit fields; the database's rows do not. */
    readonly withAuditFields: boolean,
  ) {}

  async begin(tenantId: string, anchor: ExportAnchor, header?: HeaderRecord) {
    this.tenantId = tenantId;
    this.anchor = anchor;
    this.header = header;
    this.types = Array.isArray(header?.filter.types) ? new Set(header.filter.types) : null;
    if (anchor.type === "genesis") {
      if (fieldsProblem(anchor, FIELDS.genesis) || anchor.sequence !== 0 || anchor.chainHash !== genesisHash(tenantId))
        fail("header", 1, `the genesis anchor is not tenant ${tenantId}'s genesis`);
      this.previous = anchor.chainHash;
    } else if (anchor.type === "checkpoint") {
      // The anchor is a checkpoint line with `type` for `kind`: every field of it must be the signed one.
      const { type: _type, ...line } = anchor;
      const payload = await this.checkSignature({ kind: "checkpoint", ...line }, "header");
      this.previous = payload.chainHash;
      this.expected = anchor.sequence + 1;
      this.lastCheckpoint = { sequence: anchor.sequence, signature: signatureOf(anchor.jws) };
    } else {
      fail("header", null, "the anchor is neither genesis nor a checkpoint");
    }
  }

  /** Where a bad line is named: the sequence it claims when that is a row already passed, else the one expected here. */
  at(claimed: unknown): number {
    return typeof claimed === "number" && Number.isSafeInteger(claimed) && claimed > (this.anchor?.sequence ?? 0) && claimed < this.expected
      ? claimed
      : this.expected;
  }

  report(problem: AuditProblem | null): VerificationReport {
    return {
      ok: problem === null,
      tenantId: this.tenantId || null,
      startsFrom: this.anchor?.type ?? null,
      anchorSequence: this.anchor?.sequence ?? null,
      lastSequence: this.anchor ? this.expected - 1 : null,
      lastChainHash: this.anchor ? this.previous : null,
      events: this.events,
      omitted: this.omitted,
      checkpoints: this.checkpoints,
      signatures: this.keys ? "verified" : "unchecked",
      problem,
    };
  }

  private accept(row: Row, chain: string) {
    this.beforePrevious = this.previous;
    this.previous = chain;
    this.expected++;
    if (row.kind === "event") this.events++;
    else this.omitted++;
  }

  /** Checks a row that should be at the expected sequence; true when it is the one Keyplane wrote there. */
  private fits(row: Row): boolean {
    if (row.kind === "event" && row.tenantId !== this.tenantId) return false;
    const content = safeContentOf(row);
    return content !== null && content === row.contentHash && chainHash(this.previous, this.expected, content) === row.chainHash;
  }

  /**
   * Checks a row that should be at the expected sequence: returns once it is accepted, or a promise
   * (rejected with the problem) when telling what happened needs the rows after it.
   */
  row(row: Row, next: () => Promise<VerifiableRecord | undefined>): Promise<never> | undefined {
    const e = this.expected;
    // A checked event's fields and audit fields were checked by the reader, its content hash recomputed.
    const checked = row instanceof CheckedEvent;
    if (!checked) {
      const wrong = fieldsProblem(row, row.kind === "omitted" ? FIELDS.omitted : this.withAuditFields ? FIELDS.event : FIELDS.logEvent);
      if (wrong) fail("malformed", this.at(row.sequence), `the ${row.kind} line at ${this.at(row.sequence)} has ${wrong}`);
    }
    if (!Number.isSafeInteger(row.sequence)) fail("malformed", e, "a row without a sequence");
    if (row.sequence < e) {
      // Two lines claiming one sequence is the finding, whichever came first: a forged line chained
      // to fit is accepted until the genuine one shows up.
      const anchored = this.anchor?.sequence ?? 0;
      if (row.sequence > anchored) fail("inserted", row.sequence, `two rows claim sequence ${row.sequence}`);
      fail("inserted", e, `a row claiming sequence ${row.sequence}, which the anchor at ${anchored} already covers`);
    }
    if (row.sequence > e) return this.gap(row, next);
    if (row.kind === "event" && row.tenantId !== this.tenantId) fail("inserted", e, `a row of tenant ${row.tenantId} in tenant ${this.tenantId}'s log`);
    const content = safeContentOf(row);
    if (content === null) fail("modified", e, `event ${e} cannot be hashed (a field has the wrong type)`);
    if (content !== row.contentHash) fail("modified", e, `event ${e}'s content does not match its content hash`);
    const chain = chainHash(this.previous, e, content!);
    if (chain === row.chainHash) {
      if (!checked && row.kind === "event" && this.withAuditFields && !sameAuditFields(row.audit, deriveAuditFields(row))) {
        fail("modified", e, `event ${e}'s audit fields do not match its content`);
      }
      if (this.header) this.checkPlacement(row, this.header);
      this.accept(row, chain);
      return undefined;
    }
    return nextRow(next).then((upcoming) => this.classifyChainBreak(row, content!, upcoming));
  }

  /**
   * Whether the row is the kind the header says stands at its sequence (readExportPage.ts): events
   * from fromSequence on that pass the filter are shown in full, the others are stubs. A stub's type
   * and time are hidden, so only without a filter can a stub be told to be out of place.
   */
  private checkPlacement(row: Row, header: HeaderRecord) {
    if (this.misplaced) return;
    const { filter, fromSequence } = header;
    const s = row.sequence;
    if (row.kind === "omitted") {
      if (s >= fromSequence && !this.types && !filter.from && !filter.to) {
        this.misplaced = {
          kind: "modified",
          sequence: s,
          message: `event ${s} is a stub, but the export shows every event from ${fromSequence} on: its content was withheld`,
        };
      }
    } else if (
      s < fromSequence ||
      (this.types && !this.types.has(row.type)) ||
      (filter.from && row.occurredAt < filter.from) ||
      (filter.to && row.occurredAt >= filter.to)
    ) {
      this.misplaced = {
        kind: "modified",
        sequence: s,
        message: `event ${s} is shown in full, but the export's range and filter leave it out (a stub stands there)`,
      };
    }
  }

  /**
   * Content as hashed, chain broken: one row of look-ahead tells what happened at e.
   * p = chain before e, pp = before e-1.
   */
  private classifyChainBreak(row: Row, content: string, next: Row | undefined): never {
    const e = this.expected;
    const p = this.previous;
    if (next) {
      const nextContent = safeContentOf(next) ?? next.contentHash;
      if (next.chainHash === chainHash(p, e, nextContent)) {
        // The next row is the one written at e: this one was put before it.
        if (row.chainHash === chainHash(next.chainHash, e + 1, content)) fail("reordered", e, `events ${e} and ${e + 1} were swapped (and renumbered)`);
        fail("inserted", e, `a row that Keyplane did not write was inserted at sequence ${e}`);
      }
      if (next.chainHash === chainHash(row.chainHash, next.sequence + 1, nextContent)) {
        fail("deleted", e, `event ${e} was deleted (the rows after it were renumbered)`);
      }
    }
    if (this.beforePrevious !== null && row.chainHash === chainHash(this.beforePrevious, e - 1, content)) {
      // This row was written at e-1: the row now at e-1 was put before it, with a chain hash made to fit.
      fail("inserted", e - 1, `a row that Keyplane did not write was inserted at sequence ${e - 1}`);
    }
    fail("modified", e, `event ${e} does not continue the chain (its chain hash was changed, or its content and content hash were)`);
  }

  /** The row claims a later sequence than e: e is missing here, or this row was moved or inserted. */
  private async gap(row: Row, next: () => Promise<VerifiableRecord | undefined>): Promise<never> {
    const e = this.expected;
    let upcoming = await nextRecord(next);
    if (upcoming && isRow(upcoming) && upcoming.sequence === e && this.fits(upcoming)) {
      // e follows: `row` is out of place. Read on to its own sequence: missing there → moved; present → inserted.
      const displaced = row;
      const content = safeContentOf(displaced);
      for (; upcoming !== undefined; upcoming = await nextRecord(next)) {
        if (!isRow(upcoming)) continue;
        if (upcoming.sequence === this.expected && this.expected !== displaced.sequence && this.fits(upcoming)) {
          this.accept(upcoming, upcoming.chainHash);
          continue;
        }
        break;
      }
      if (this.expected === displaced.sequence) {
        // Another row claims the displaced row's sequence: two lines claiming one sequence is the finding.
        if (upcoming && isRow(upcoming) && upcoming.sequence === displaced.sequence) {
          fail("inserted", displaced.sequence, `two rows claim sequence ${displaced.sequence}: one stands before sequence ${e}`);
        }
        if (content !== null && chainHash(this.previous, displaced.sequence, content) === displaced.chainHash) {
          fail("reordered", e, `event ${displaced.sequence} was moved before event ${e}`);
        }
      }
      fail("inserted", e, `a row claiming sequence ${displaced.sequence} was inserted before sequence ${e}`);
    }
    // e does not follow: deleted, unless it shows up later (moved further down).
    for (; upcoming !== undefined; upcoming = await nextRecord(next)) {
      if (isRow(upcoming) && upcoming.sequence === e) fail("reordered", e, `event ${e} was moved after event ${row.sequence}`);
    }
    return fail("deleted", e, `event ${e} is missing (the next row is ${row.sequence})`);
  }

  async checkpoint(record: CheckpointRecord) {
    const payload = await this.checkSignature(record, "checkpoint-signature");
    const s = record.sequence;
    if (s !== this.expected - 1) fail("checkpoint-link", s, `the checkpoint for sequence ${s} stands after sequence ${this.expected - 1}`);
    const expectedLink = this.lastCheckpoint.signature;
    if (payload.previousSignature !== expectedLink) {
      fail(
        "checkpoint-link",
        s,
        `the checkpoint at ${s} does not follow the checkpoint at ${this.lastCheckpoint.sequence || "genesis"}: a checkpoint in between is missing or was replaced`,
      );
    }
    if (payload.chainHash !== this.previous) {
      fail(
        "checkpoint-mismatch",
        this.lastCheckpoint.sequence + 1,
        `the chain at ${s} is not the one Keyplane signed: events ${this.lastCheckpoint.sequence + 1}–${s} were rewritten with recomputed hashes`,
      );
    }
    this.lastCheckpoint = { sequence: s, signature: signatureOf(record.jws) };
    this.checkpoints++;
  }

  /**
   * The JWS must verify (with keys) and belong to this tenant, and every field of the line must be
   * the signed one: the payload's, and `kid` the one in the JWS's protected header (signed too).
   */
  private async checkSignature(record: CheckpointRecord, kind: "checkpoint-signature" | "header"): Promise<CheckpointPayload> {
    const s = Number.isSafeInteger(record.sequence) ? record.sequence : null;
    const wrong = fieldsProblem(record, FIELDS.checkpoint);
    if (wrong) fail(kind, s, `the checkpoint at ${s} has ${wrong}`);
    const check = await checkAuditJws<CheckpointPayload>(String(record.jws ?? ""), CHECKPOINT_JWS_TYPE, this.keys);
    if (!check.ok) return fail(kind, s, `the checkpoint at ${s} is forged: ${check.reason}`);
    const p = check.payload;
    if (p.tenantId !== this.tenantId) fail(kind, s, `the checkpoint at ${s} was signed for tenant ${p.tenantId}`);
    for (const [field, signed] of [
      ["sequence", p.sequence],
      ["chainHash", p.chainHash],
      ["previousSignature", p.previousSignature ?? null],
      ["signedAt", p.signedAt],
      ["kid", check.kid],
    ] as const) {
      if (record[field] !== signed) fail(kind, s, `the checkpoint at ${s} says a ${field} other than the signed one`);
    }
    return p;
  }

  async end(end: EndRecord | undefined, header: HeaderRecord) {
    const last = this.expected - 1;
    if (!end) fail("truncated", this.expected, `the export ends after sequence ${last} without its end line: it was cut`);
    const check = await checkAuditJws<ExportSummary>(String(end!.jws ?? ""), EXPORT_JWS_TYPE, this.keys);
    if (!check.ok) fail("end-signature", null, `the end line's signature does not hold: ${check.reason}`);
    const signed = check.payload!;
    // Every field of the end line is signed: it is the payload, with `kind` and `jws`.
    const { kind: _kind, jws: _jws, ...said } = end!;
    if (stable(said) !== stable(signed)) fail("end-signature", null, "the end line says something else than what was signed");
    // The header is not signed itself: it must say what the end line signed (of the anchor, its type,
    // sequence and chain hash; a checkpoint anchor's other fields are its own JWS's).
    const anchor = header.anchor;
    for (const field of LINE_FIELDS.header) {
      if (field === "kind") continue;
      const says = field === "anchor" ? { type: anchor.type, sequence: anchor.sequence, chainHash: anchor.chainHash } : header[field];
      if (stable(says) !== stable(signed[field])) fail("header", null, `the header's ${field} is not the one the end line was signed with`);
    }
    // Sequences are dense: a file that ends before its range does is missing its last rows (even
    // when the end line was signed over what the database still held).
    const runsTo = Math.max(signed.lastSequence, header.fromSequence > header.toSequence ? anchor.sequence : header.toSequence);
    if (runsTo > last) fail("deleted", this.expected, `the export should run to sequence ${runsTo} but ends at ${last}`);
    if (signed.lastSequence < last) fail("inserted", signed.lastSequence + 1, `rows past sequence ${signed.lastSequence}, where the export ended`);
    // The header is proven now: a line of the wrong kind for its sequence is a finding.
    if (this.misplaced) throw new Problem(this.misplaced);
    // Each checkpoint links to the one before, so only the last can go missing unseen: the end line names it.
    const mine = this.checkpoints > 0 ? this.lastCheckpoint : null;
    const theirs = signed.lastCheckpoint ?? null;
    if (stable(mine) !== stable(theirs)) {
      if (theirs && (!mine || theirs.sequence > mine.sequence)) {
        fail(
          "checkpoint-link",
          theirs.sequence,
          `the checkpoint at ${theirs.sequence}, the last the export was signed with, is missing${mine ? ` (the file's last is at ${mine.sequence})` : ""}`,
        );
      }
      fail("checkpoint-link", mine!.sequence, `the checkpoint at ${mine!.sequence} is not the last one the export was signed with`);
    }
    if (signed.lastChainHash !== this.previous) {
      fail(
        "end-mismatch",
        this.lastCheckpoint.sequence + 1,
        `the chain at ${last} is not the one Keyplane signed: events ${this.lastCheckpoint.sequence + 1}–${last} were rewritten with recomputed hashes`,
      );
    }
    // Left for the counts: an event shown as a stub in a filtered export (a stub's type and time are
    // hidden, so which one cannot be told).
    if (signed.events !== this.events || signed.omitted !== this.omitted || signed.checkpoints !== this.checkpoints) {
      fail(
        "end-mismatch",
        null,
        `the export was signed with ${signed.events} events, ${signed.omitted} omitted and ${signed.checkpoints} checkpoints; it holds ${this.events}, ${this.omitted} and ${this.checkpoints}`,
      );
    }
  }

  /** Database rows end where the tenant's head says the log ends. */
  endAtHead(head: { lastSequence: number; lastChainHash: string }) {
    const last = this.expected - 1;
    if (head.lastSequence > last) fail("deleted", this.expected, `the log should run to sequence ${head.lastSequence} but its rows end at ${last}`);
    if (head.lastSequence < last) fail("inserted", head.lastSequence + 1, `rows past sequence ${head.lastSequence}, where the log ends`);
    if (head.lastChainHash !== this.previous)
      fail("end-mismatch", this.lastCheckpoint.sequence + 1, `the chain at ${last} is not the tenant's head chain hash`);
  }
}

const isRow = (r: VerifiableRecord): r is Row => r.kind === "event" || r.kind === "omitted";

/** The next row, skipping checkpoint lines; a malformed line or the end stops the look-ahead. */
async function nextRow(next: () => Promise<VerifiableRecord | undefined>): Promise<Row | undefined> {
  for (let r = await next(); r !== undefined; r = await next()) {
    if (isRow(r)) return r;
    if (r.kind !== "checkpoint") return undefined;
  }
  return undefined;
}

/** The next record that is a row or ends the rows (end line, malformed line). */
async function nextRecord(next: () => Promise<VerifiableRecord | undefined>): Promise<VerifiableRecord | undefined> {
  for (let r = await next(); r !== undefined; r = await next()) {
    if (r.kind !== "checkpoint" && r.kind !== "end") return r;
  }
  return undefined;
}
