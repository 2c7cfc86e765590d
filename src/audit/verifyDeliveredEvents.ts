import type { JSONWebKeySet } from "jose";
import { checkAuditJws } from "./auditSignatures.ts";
import { hashContent } from "./canonicalContent.ts";
import { CHECKPOINT_JWS_TYPE, deriveAuditFields, type CheckpointPayload, type CheckpointRecord } from "./exportFormat.ts";
import { FIELDS, fieldsProblem, parseJson, sameAuditFields, stable } from "./exportLines.ts";
import { chainHash, genesisHash } from "./hashing.ts";
import { sha256Hex } from "./platform.ts";

// The receiver's verifier: what a log stream delivered (issue 20), checked with the events alone
// and a signed checkpoint fetched from Keyplane (the GraphQL query auditCheckpoint). Each delivered
// event is the audit export's event record (eventRecordOf: the hashed content, sequence, content
// and chain hashes), carried by one of three envelopes (src/logStreams/destinations.ts):
//
//   webhook   {"type":"keyplane.audit_events","tenantId":…,"logStreamId":…,"events":[record…]}
//   Splunk    {"time":…,"host":"keyplane","source":…,"sourcetype":…,"event":record}   (one per line)
//   Datadog   {"ddsource":…,"ddtags":…,"hostname":…,"service":…,"message":"<record as JSON text>"}
//
// A line of the input is one of these, a bare record, or a JSON array of records or of Datadog
// entries (a saved request body). Delivery is at least once and a receiver's files need not be in
// order (a redelivered batch, a SIEM's newest-first export), so the events are gathered by tenant
// and sequence first, then checked in sequence order: identical repeats are counted and dropped,
// two different records claiming one sequence are refused. Unlike an export, a stream has no header
// or signed end line: it starts anywhere (the stream's creation, a replay) and the event before its
// first is unknown, so the chain is checked from the second event on (from the first when it is
// sequence 1, after genesis, or right after a given checkpoint). Only a signed checkpoint at or
// after an event anchors it: without one, the chain shows that events fit together, not that
// Keyplane wrote them. Memory: the two hashes of each distinct event, not the events.
//
// Messages name sequences, hashes, files and lines, never what an event says.

/** The webhook batch's `type` (destinations.ts). */
export const WEBHOOK_BATCH_TYPE = "keyplane.audit_events";

export type DeliveredProblemKind =
  /** A line (or an element of one) that is not a delivered event: not JSON, a key twice, another shape, fields missing or added. */
  | "malformed"
  /** An event whose content does not match its content hash, or that does not continue the chain. */
  | "modified"
  /** Two different records claim one sequence of one tenant: at most one of them is Keyplane's. */
  | "conflict"
  /** Sequences between the first and the last received that were not received (an unfiltered stream is dense). */
  | "missing"
  /** Two events swapped with their sequences renumbered. */
  | "reordered"
  /** A record Keyplane did not write, the records after it renumbered. */
  | "inserted"
  /** An event removed and the records after it renumbered. */
  | "deleted"
  /** The events end before a checkpoint the file was required to reach (requireCheckpoint). */
  | "truncated"
  /** A checkpoint whose JWS does not verify, that says anything its JWS does not sign, or of another tenant. */
  | "checkpoint-signature"
  /** A genuine checkpoint whose chain hash is not the received one at its sequence: events rewritten with recomputed hashes. */
  | "checkpoint-mismatch";

export interface DeliveredProblem {
  kind: DeliveredProblemKind;
  /** The tenant whose events it concerns (null: a line whose tenant cannot be read). */
  tenantId: string | null;
  /** The first sequence that is not as Keyplane wrote it, when one can be named. */
  sequence: number | null;
  message: string;
}

/** What became of a given checkpoint. */
export type CheckpointOutcome =
  /** At a received event, whose chain hash is the signed one: the events up to it are anchored. */
  | "matched"
  /** At a received event whose chain hash is another (a problem). */
  | "mismatch"
  /** Right before a run of received events: their chain is checked from it. */
  | "chain-start"
  /** Before the received events: nothing to check it against. */
  | "before"
  /** In a gap of the received events (a filtered stream's): nothing to check it against. */
  | "gap"
  /** After the last received event (a problem with requireCheckpoint). */
  | "after";

export interface DeliveredTenantReport {
  tenantId: string;
  ok: boolean;
  /** The first and last sequence received (null: none). */
  firstSequence: number | null;
  lastSequence: number | null;
  /** Distinct events received (each sequence once). */
  events: number;
  /** Identical repeats dropped (delivery is at least once). */
  duplicates: number;
  /** Sequences between the first and the last that were not received. */
  missing: number;
  /** Contiguous runs of received sequences (1 for a complete stream). */
  runs: number;
  /**
   * What the first received event's chain hash is checked from: the tenant's genesis (sequence 1),
   * a given checkpoint at the sequence before it, or nothing: then its chain hash is where the
   * chain starts, and the chain cannot vouch for that event's content.
   */
  chainFrom: "genesis" | "checkpoint" | "first-event" | null;
  /** Events whose link to the chain before them could not be checked (the first of each run not after genesis or a given checkpoint). */
  unlinked: number;
  /** The given checkpoints of this tenant (their signatures held), in sequence order, and what each showed. */
  checkpoints: Array<{ sequence: number; outcome: CheckpointOutcome }>;
  /** The newest checkpoint whose chain hash is the received one: the events up to it are the ones Keyplane signed. */
  anchoredThrough: number | null;
  /** The received events after anchoredThrough (all of them without one): chained, not yet anchored by a checkpoint. */
  onlyChained: { from: number; to: number; events: number } | null;
  /** Its problems in sequence order (at most MAX_LISTED_PROBLEMS; the rest are counted). */
  problems: DeliveredProblem[];
  problemsNotListed: number;
}

export interface DeliveredVerificationReport {
  ok: boolean;
  /** "unchecked" when no JWKS was given: the checkpoints' signatures were not verified. */
  signatures: "verified" | "unchecked";
  /** "allowed": gaps (a filtered stream's) were counted, not refused. */
  gaps: "refused" | "allowed";
  /** Lines read (empty ones included). */
  lines: number;
  /** Event records read, repeats included. */
  records: number;
  /** Event records of other tenants than the one asked for, left out. */
  skipped: number;
  tenants: DeliveredTenantReport[];
  /** Problems of no tenant in the report (lines whose tenant cannot be read, checkpoints of tenants without events here). */
  problems: DeliveredProblem[];
  problemsNotListed: number;
}

/**
 * A signed checkpoint as Keyplane's auditCheckpoint query answers it (or a checkpoint line of an
 * export). Only `jws` is needed: it signs the tenant, sequence, chain hash, link and time. Any other
 * field given must be the signed one.
 */
export type DeliveredCheckpoint = { jws: string } & Partial<Omit<CheckpointRecord, "jws">>;

export interface VerifyDeliveredOptions {
  /** Keyplane's JWKS (/.well-known/jwks.json); without it the checkpoints' signatures are not checked. */
  keys?: JSONWebKeySet;
  /** Signed checkpoints, each applied to the tenant its JWS names. */
  checkpoints?: ReadonlyArray<DeliveredCheckpoint>;
  /** Verify this tenant's events only (the others are counted as skipped); its checkpoints must be its own. */
  tenantId?: string;
  /** Each tenant's events must reach its given checkpoints: one beyond the last received event means the tail was not received. */
  requireCheckpoint?: boolean;
  /**
   * A filtered stream (by type) has gaps by design: count them instead of refusing them. Then the
   * content hashes, the chain within each contiguous run, and the checkpoints that fall on a
   * received event are checked.
   */
  allowGaps?: boolean;
}

/** One input: its name (a file) in messages, and its lines. */
export interface DeliveredInput {
  name: string;
  lines: AsyncIterable<string> | Iterable<string>;
}

/** Problems listed per tenant (and of no tenant); the others are counted. */
export const MAX_LISTED_PROBLEMS = 100;

/** Verifies the lines of one input. */
export function verifyDeliveredEvents(
  lines: AsyncIterable<string> | Iterable<string>,
  options: VerifyDeliveredOptions = {},
): Promise<DeliveredVerificationReport> {
  return verifyDeliveredInputs([{ name: "input", lines }], options);
}

/** Verifies several inputs (files) together: a tenant's events may be spread over them, in any order. */
export async function verifyDeliveredInputs(inputs: ReadonlyArray<DeliveredInput>, options: VerifyDeliveredOptions = {}): Promise<DeliveredVerificationReport> {
  const gathered = new DeliveredEvents(options.tenantId);
  for (const input of inputs) await gathered.read(input);
  return gathered.verify(options);
}

/**
 * A checkpoint as a file holds it: the AuditCheckpoint object the GraphQL query answers, the whole
 * answer ({"data":{"auditCheckpoint":…}}), or an export's checkpoint line. Throws with what is wrong.
 */
export function checkpointOfJson(text: string): DeliveredCheckpoint {
  let value: unknown;
  try {
    value = parseJson(text.replace(/^\uFEFF/, ""));
  } catch (error) {
    throw new Error(error instanceof SyntaxError ? "not JSON" : (error as Error).message);
  }
  if (isObject(value) && isObject(value.data) && "auditCheckpoint" in value.data) value = value.data.auditCheckpoint;
  else if (isObject(value) && Array.isArray(value.errors)) throw new Error("a GraphQL answer with errors and no auditCheckpoint");
  if (value === null) throw new Error("auditCheckpoint is null: Keyplane has signed no checkpoint (at or before that sequence) yet");
  if (!isObject(value)) throw new Error("not a checkpoint (an object with jws)");
  const { __typename: _typename, ...checkpoint } = value;
  if (checkpoint.kind !== undefined && checkpoint.kind !== "checkpoint") throw new Error("not a checkpoint (its kind is another)");
  for (const key of Object.keys(checkpoint)) if (!CHECKPOINT_KEYS.has(key)) throw new Error(`a field ${JSON.stringify(key)} that a checkpoint does not have`);
  if (typeof checkpoint.jws !== "string") throw new Error("a checkpoint without its jws");
  return checkpoint as DeliveredCheckpoint;
}
const CHECKPOINT_KEYS = FIELDS.checkpoint;

// ---- gathering ---------------------------------------------------------------------------------

/** One received version of an event: its hashes and where it was read. */
interface Copy {
  contentHash: string;
  chainHash: string;
  /** The content hash recomputed from its content, when it is not the one it claims ("unhashable:…" when it cannot be hashed). */
  recomputed?: string;
  /** Global line number (see where()). */
  at: number;
}

class TenantEvents {
  /** A sequence's copy, or its copies when different records claim it. */
  readonly copies = new Map<number, Copy | Copy[]>();
  /** Sequences of event records refused as malformed (reported once, not again as missing). */
  readonly malformedAt = new Set<number>();
  duplicates = 0;
  readonly problems: DeliveredProblem[] = [];
  constructor(readonly tenantId: string) {}
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const HASH = /^[0-9a-f]{64}$/;
const copiesOf = (c: Copy | Copy[]): Copy[] => (Array.isArray(c) ? c : [c]);
const sameCopy = (a: Copy, b: Copy) => a.contentHash === b.contentHash && a.chainHash === b.chainHash && a.recomputed === b.recomputed;
const span = (from: number, to: number) => (from === to ? `event ${from}` : `events ${from}–${to}`);

class DeliveredEvents {
  readonly tenants = new Map<string, TenantEvents>();
  readonly problems: DeliveredProblem[] = [];
  lines = 0;
  records = 0;
  skipped = 0;
  /** Where each input's lines start in the global line count. */
  private readonly inputs: Array<{ name: string; first: number }> = [];

  constructor(private readonly only: string | undefined) {
    if (only !== undefined) this.tenant(only);
  }

  private tenant(tenantId: string): TenantEvents {
    let t = this.tenants.get(tenantId);
    if (!t) this.tenants.set(tenantId, (t = new TenantEvents(tenantId)));
    return t;
  }

  /** "file:line" of a global line number. */
  where(at: number): string {
    let input = this.inputs[0]!;
    for (const i of this.inputs) if (i.first <= at) input = i;
    return `${input.name}:${at - input.first + 1}`;
  }

  problem(p: DeliveredProblem) {
    const t = p.tenantId === null ? undefined : this.tenants.get(p.tenantId);
    (t ? t.problems : this.problems).push(p);
  }

  async read(input: DeliveredInput) {
    this.inputs.push({ name: input.name, first: this.lines + 1 });
    let firstLine = true;
    for await (const raw of input.lines) {
      const at = ++this.lines;
      let line = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
      if (firstLine) line = line.replace(/^\uFEFF/, "");
      firstLine = false;
      if (line.trim() === "") continue;
      let value: unknown;
      try {
        value = parseJson(line);
      } catch (error) {
        // (JSON.parse's own message quotes the line: not repeated)
        const duplicate = !(error instanceof SyntaxError);
        this.malformed(at, duplicate ? (error as Error).message : "not JSON");
        continue;
      }
      if (Array.isArray(value)) {
        // A saved request body: Datadog's entries, or records.
        if (value.length === 0) this.malformed(at, "an empty array");
        for (const item of value) this.entry(item, at, false);
      } else {
        this.entry(value, at, true);
      }
    }
  }

  private malformed(at: number, message: string, tenantId: string | null = null, sequence: number | null = null) {
    this.problem({ kind: "malformed", tenantId, sequence, message: `${this.where(at)}: ${message}` });
  }

  /** One delivered thing: a record, a webhook batch (only as a whole line), a Splunk HEC event or a Datadog entry. */
  private entry(value: unknown, at: number, wholeLine: boolean) {
    if (!isObject(value)) return this.malformed(at, "not a delivered event (an event record, a webhook batch, a Splunk HEC event or a Datadog log entry)");
    if (value.kind === "event") return this.event(value, at);
    if (wholeLine && value.type === WEBHOOK_BATCH_TYPE) {
      if (!Array.isArray(value.events)) return this.malformed(at, "a webhook batch without its events");
      for (const e of value.events) this.event(e, at, typeof value.tenantId === "string" ? value.tenantId : null);
      return;
    }
    if (isObject(value.event)) return this.event(value.event, at);
    if (typeof value.message === "string") {
      let record: unknown;
      try {
        record = parseJson(value.message);
      } catch (error) {
        return this.malformed(at, `a Datadog entry whose message is ${error instanceof SyntaxError ? "not JSON" : "refused: " + (error as Error).message}`);
      }
      return this.event(record, at);
    }
    this.malformed(at, "not a delivered event (an event record, a webhook batch, a Splunk HEC event or a Datadog log entry)");
  }

  /** An event record: kept by tenant and sequence, as one more copy or a repeat. */
  private event(value: unknown, at: number, batchTenant?: string | null) {
    this.records++;
    if (!isObject(value) || value.kind !== "event") return this.malformed(at, "not an event record");
    const { tenantId, sequence } = value;
    if (typeof tenantId !== "string" || !Number.isSafeInteger(sequence) || (sequence as number) < 1) {
      return this.malformed(at, "an event record without a tenant or a sequence");
    }
    const s = sequence as number;
    if (this.only !== undefined && tenantId !== this.only) {
      this.skipped++;
      return;
    }
    const tenant = this.tenant(tenantId);
    const wrong =
      fieldsProblem(value, "audit" in value ? FIELDS.event : FIELDS.logEvent) ??
      (typeof value.contentHash !== "string" || !HASH.test(value.contentHash) ? "a content hash that is not 64 hex digits" : null) ??
      (typeof value.chainHash !== "string" || !HASH.test(value.chainHash) ? "a chain hash that is not 64 hex digits" : null);
    if (wrong) {
      tenant.malformedAt.add(s);
      return this.malformed(at, `the event at ${s} has ${wrong}`, tenantId, s);
    }
    if (batchTenant !== undefined && batchTenant !== tenantId) {
      this.malformed(
        at,
        `a webhook batch of ${batchTenant === null ? "no tenant" : `tenant ${batchTenant}`} holds the event at ${s} of tenant ${tenantId}`,
        tenantId,
        s,
      );
    }
    const copy: Copy = { contentHash: value.contentHash as string, chainHash: value.chainHash as string, at };
    let recomputed: string;
    try {
      recomputed = hashContent(value as never);
    } catch {
      recomputed = `unhashable:${sha256Hex(stable(value))}`;
    }
    if (recomputed !== copy.contentHash) copy.recomputed = recomputed;
    else if ("audit" in value && !sameAuditFields(value.audit, deriveAuditFields(value as never))) {
      // (audit fields are derived from the content: a record whose audit fields say otherwise is not the one delivered)
      copy.recomputed = `audit:${sha256Hex(stable(value.audit))}`;
    }
    const held = tenant.copies.get(s);
    if (held === undefined) tenant.copies.set(s, copy);
    else if (copiesOf(held).some((c) => sameCopy(c, copy))) tenant.duplicates++;
    else tenant.copies.set(s, [...copiesOf(held), copy]);
  }

  // ---- verifying -------------------------------------------------------------------------------

  async verify(options: VerifyDeliveredOptions): Promise<DeliveredVerificationReport> {
    const checkpoints = await this.checkpoints(options);
    const tenantIds = [...new Set([...this.tenants.keys(), ...checkpoints.keys()])].sort();
    const tenants = tenantIds.map((id) => this.verifyTenant(this.tenant(id), checkpoints.get(id) ?? [], options));
    if (this.records === 0 && this.problems.length === 0 && tenants.every((t) => t.problems.length === 0)) {
      this.problem({ kind: "missing", tenantId: null, sequence: null, message: "no delivered events were read" });
    }
    return {
      ok: this.problems.length === 0 && tenants.every((t) => t.ok),
      signatures: options.keys ? "verified" : "unchecked",
      gaps: options.allowGaps ? "allowed" : "refused",
      lines: this.lines,
      records: this.records,
      skipped: this.skipped,
      tenants,
      problems: this.problems.slice(0, MAX_LISTED_PROBLEMS),
      problemsNotListed: Math.max(0, this.problems.length - MAX_LISTED_PROBLEMS),
    };
  }

  /** The given checkpoints whose JWS verifies and whose fields are the signed ones, by tenant; the others are problems. */
  private async checkpoints(options: VerifyDeliveredOptions): Promise<Map<string, CheckpointPayload[]>> {
    const byTenant = new Map<string, CheckpointPayload[]>();
    for (const [i, c] of (options.checkpoints ?? []).entries()) {
      const check = await checkAuditJws<CheckpointPayload>(typeof c.jws === "string" ? c.jws : "", CHECKPOINT_JWS_TYPE, options.keys);
      const p = check.payload;
      const claimedTenant = isObject(p) && typeof p.tenantId === "string" ? p.tenantId : null;
      const claimedSequence = isObject(p) && Number.isSafeInteger(p.sequence) ? p.sequence : Number.isSafeInteger(c.sequence) ? c.sequence! : null;
      const name = claimedSequence === null ? `checkpoint ${i + 1}` : `the checkpoint at ${claimedSequence}`;
      const refuse = (message: string, tenantId = this.only ?? claimedTenant) =>
        this.problem({ kind: "checkpoint-signature", tenantId, sequence: claimedSequence, message: `${name} ${message}` });
      if (!check.ok) {
        refuse(`is forged: ${check.reason}`);
        continue;
      }
      if (!isObject(p) || claimedTenant === null || !Number.isSafeInteger(p.sequence) || p.sequence < 1 || typeof p.chainHash !== "string") {
        refuse("signs no tenant, sequence or chain hash");
        continue;
      }
      const said = (["sequence", "chainHash", "previousSignature", "signedAt", "kid"] as const).find(
        (field) => c[field] !== undefined && c[field] !== (field === "kid" ? check.kid : (p[field] ?? null)),
      );
      if (said) {
        refuse(`says a ${said} other than the signed one`);
        continue;
      }
      if (this.only !== undefined && claimedTenant !== this.only) {
        refuse(`was signed for tenant ${claimedTenant}, not ${this.only}`);
        continue;
      }
      byTenant.set(claimedTenant, [...(byTenant.get(claimedTenant) ?? []), p]);
    }
    return byTenant;
  }

  private verifyTenant(tenant: TenantEvents, given: CheckpointPayload[], options: VerifyDeliveredOptions): DeliveredTenantReport {
    const { tenantId } = tenant;
    const problem = (kind: DeliveredProblemKind, sequence: number | null, message: string) => tenant.problems.push({ kind, tenantId, sequence, message });
    const at = (s: number) => copiesOf(tenant.copies.get(s)!);
    const sequences = [...tenant.copies.keys()].sort((a, b) => a - b);
    const first = sequences[0] ?? null;
    const last = sequences.at(-1) ?? null;
    // Keyplane signs one checkpoint per sequence: the first given one of each counts.
    const checkpointAt = new Map<number, CheckpointPayload>();
    for (const c of [...given].sort((a, b) => a.sequence - b.sequence)) if (!checkpointAt.has(c.sequence)) checkpointAt.set(c.sequence, c);
    const checkpoints = [...checkpointAt.values()];

    // Each event's content against its content hash; different records claiming one sequence.
    for (const s of sequences) {
      const copies = at(s);
      if (copies.length > 1) {
        problem(
          "conflict",
          s,
          `${copies.length} different records claim sequence ${s} (${copies.map((c) => this.where(c.at)).join(", ")}): at most one of them is Keyplane's`,
        );
      }
      for (const c of copies) {
        if (c.recomputed === undefined) continue;
        const what = c.recomputed.startsWith("unhashable:")
          ? "cannot be hashed (a field has the wrong type)"
          : c.recomputed.startsWith("audit:")
            ? "has audit fields that do not match its content"
            : `does not match its content hash ${c.contentHash}`;
        problem("modified", s, `${this.where(c.at)}: the content of event ${s} ${what}`);
      }
    }

    // Density: contiguous runs, and what lies between them.
    const runs: Array<{ from: number; to: number }> = [];
    for (const s of sequences) {
      const run = runs.at(-1);
      if (run && run.to === s - 1) run.to = s;
      else runs.push({ from: s, to: s });
    }
    let missing = 0;
    for (let i = 1; i < runs.length; i++) {
      const from = runs[i - 1]!.to + 1;
      const to = runs[i]!.from - 1;
      missing += to - from + 1;
      if (options.allowGaps) continue;
      let firstMissing = from;
      while (firstMissing <= to && tenant.malformedAt.has(firstMissing)) firstMissing++;
      if (firstMissing <= to) problem("missing", firstMissing, `${span(firstMissing, to)} ${firstMissing === to ? "was" : "were"} not received`);
    }

    // The chain, run by run: each event's chain hash from the one before it and its own content hash.
    const chainAtCheckpoint = new Map<number, string>();
    let unlinked = 0;
    let chainFrom: DeliveredTenantReport["chainFrom"] = null;
    let stopped = false;
    for (const run of runs) {
      if (stopped) break;
      let previous: string | null = run.from === 1 ? genesisHash(tenantId) : (checkpointAt.get(run.from - 1)?.chainHash ?? null);
      chainFrom ??= run.from === 1 ? "genesis" : previous !== null ? "checkpoint" : "first-event";
      if (previous === null) unlinked++;
      let beforePrevious: string | null = null;
      for (let s = run.from; s <= run.to; s++) {
        const copies = at(s);
        const p = previous;
        // Of different records claiming s, the one that continues the chain (if any) is followed.
        const copy = (p === null ? undefined : copies.find((c) => chainHash(p, s, c.contentHash) === c.chainHash)) ?? copies[0]!;
        if (checkpointAt.has(s)) chainAtCheckpoint.set(s, copy.chainHash);
        if (p === null || chainHash(p, s, copy.contentHash) === copy.chainHash) {
          beforePrevious = p;
          previous = copy.chainHash;
          continue;
        }
        const next = s < run.to ? at(s + 1)[0] : undefined;
        const verdict = chainBreak(s, p, beforePrevious, copy, next);
        problem(verdict.kind, verdict.sequence, verdict.message);
        if (verdict.resume === "stop") {
          stopped = true;
          break;
        }
        beforePrevious = p;
        if (verdict.resume === "expected") previous = chainHash(p, s, copy.contentHash);
        else if (verdict.resume === "claimed") previous = copy.chainHash;
        else {
          // s and s+1 swapped: after both, the chain is the one the record at s claims.
          if (checkpointAt.has(s + 1)) chainAtCheckpoint.set(s + 1, next!.chainHash);
          beforePrevious = next!.chainHash;
          previous = copy.chainHash;
          s++;
        }
      }
    }

    // The checkpoints: each against the received chain hash at its sequence.
    const outcomes: DeliveredTenantReport["checkpoints"] = [];
    let anchoredThrough: number | null = null;
    const runOf = (s: number) => runs.find((r) => r.from <= s && s <= r.to)!;
    const runStarts = new Set(runs.map((r) => r.from));
    for (const c of checkpoints) {
      const s = c.sequence;
      let outcome: CheckpointOutcome;
      if (last === null || s > last) outcome = "after";
      else if (tenant.copies.has(s)) {
        const received = chainAtCheckpoint.get(s) ?? at(s)[0]!.chainHash;
        if (received === c.chainHash) {
          outcome = "matched";
          anchoredThrough = s;
        } else {
          outcome = "mismatch";
          const run = runOf(s);
          const from = anchoredThrough !== null && anchoredThrough >= run.from ? anchoredThrough + 1 : run.from;
          problem(
            "checkpoint-mismatch",
            from,
            `the chain hash at ${s} is ${received}, not the one Keyplane signed (${c.chainHash}): ${span(from, s)} ${from === s ? "was" : "were"} rewritten with recomputed hashes, or ${from === s ? "is" : "are"} not Keyplane's`,
          );
        }
      } else if (runStarts.has(s + 1)) outcome = "chain-start";
      else if (first !== null && s < first) outcome = "before";
      else outcome = "gap";
      outcomes.push({ sequence: s, outcome });
    }
    const beyond = checkpoints.filter((c) => last === null || c.sequence > last).at(-1);
    if (last === null) {
      problem("missing", null, `no events of tenant ${tenantId} were received${beyond ? ` (a checkpoint at ${beyond.sequence} was given)` : ""}`);
    } else if (beyond && options.requireCheckpoint) {
      problem(
        "truncated",
        last + 1,
        `the events end at ${last}, before the checkpoint at ${beyond.sequence}: ${span(last + 1, beyond.sequence)} ${last + 1 === beyond.sequence ? "was" : "were"} not received`,
      );
    }

    const after = sequences.filter((s) => anchoredThrough === null || s > anchoredThrough);
    tenant.problems.sort((a, b) => (a.sequence ?? 0) - (b.sequence ?? 0));
    return {
      tenantId,
      ok: tenant.problems.length === 0,
      firstSequence: first,
      lastSequence: last,
      events: sequences.length,
      duplicates: tenant.duplicates,
      missing,
      runs: runs.length,
      chainFrom,
      unlinked,
      checkpoints: outcomes,
      anchoredThrough,
      onlyChained: after.length ? { from: after[0]!, to: after.at(-1)!, events: after.length } : null,
      problems: tenant.problems.slice(0, MAX_LISTED_PROBLEMS),
      problemsNotListed: Math.max(0, tenant.problems.length - MAX_LISTED_PROBLEMS),
    };
  }
}

/**
 * The event at s does not continue the chain from p (the chain after s-1; pp after s-2): what the
 * next record tells of what happened, and where to go on from. A renumbering (a record inserted or
 * deleted, the ones after it renumbered) shifts every chain after it: the chain is not followed past it.
 */
function chainBreak(
  s: number,
  p: string,
  pp: string | null,
  copy: Copy,
  next: Copy | undefined,
): { kind: DeliveredProblemKind; sequence: number; message: string; resume: "expected" | "claimed" | "swapped" | "stop" } {
  const expected = chainHash(p, s, copy.contentHash);
  const after = ", the records after it renumbered; the chain is not followed past it";
  if (next) {
    if (next.chainHash === chainHash(expected, s + 1, next.contentHash)) {
      return {
        kind: "modified",
        sequence: s,
        message: `event ${s}'s chain hash ${copy.chainHash} was changed (the chain gives ${expected})`,
        resume: "expected",
      };
    }
    if (next.chainHash === chainHash(p, s, next.contentHash)) {
      // The record at s+1 was written at s.
      if (copy.chainHash === chainHash(next.chainHash, s + 1, copy.contentHash)) {
        return { kind: "reordered", sequence: s, message: `events ${s} and ${s + 1} were swapped, and renumbered`, resume: "swapped" };
      }
      return { kind: "inserted", sequence: s, message: `a record Keyplane did not write stands at ${s}${after}`, resume: "stop" };
    }
    if (next.chainHash === chainHash(copy.chainHash, s + 2, next.contentHash)) {
      return { kind: "deleted", sequence: s, message: `event ${s} was deleted (the record at ${s} was written at ${s + 1})${after}`, resume: "stop" };
    }
    if (next.chainHash === chainHash(copy.chainHash, s + 1, next.contentHash)) {
      return {
        kind: "modified",
        sequence: s,
        message: `event ${s} is not the one Keyplane wrote: its content hash ${copy.contentHash} does not continue the chain (content and content hash were changed together)`,
        resume: "claimed",
      };
    }
  }
  if (pp !== null && copy.chainHash === chainHash(pp, s - 1, copy.contentHash)) {
    // This record was written at s-1: the one now at s-1 was put before it, with a chain hash made to fit.
    return { kind: "inserted", sequence: s - 1, message: `a record Keyplane did not write stands at ${s - 1}${after}`, resume: "stop" };
  }
  return {
    kind: "modified",
    sequence: s,
    message: `the chain breaks at ${s}: event ${s} does not continue from event ${s - 1} (one of them was changed with its hashes recomputed)`,
    resume: "claimed",
  };
}
