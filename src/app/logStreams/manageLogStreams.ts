import { retainedStart } from "../retention/retainedLog.ts";
import { randomUUID } from "node:crypto";
import { eventMetadata, type Actor, type RequestMeta } from "../../auth/actor.ts";
import type { LogStreamCommand } from "../../domain/logStream/decide.ts";
import { logStreamDecider, logStreamStream } from "../../domain/logStream/decider.ts";
import type { LogStreamKind, LogStreamSettings } from "../../domain/logStream/events.ts";
import { truncateWellFormed } from "../../domain/wellFormedInput.ts";
import { BadInputError, ConflictError, NotFoundError } from "../../errors.ts";
import type { DestinationSecrets } from "../../logStreams/destinations.ts";
import type { LookupAll } from "../../logStreams/addressPolicy.ts";
import { withTenant, type Tx } from "../../store/db.ts";
import { readTenantHead } from "../../store/audit/checkpointQueries.ts";
import { countLogStreams, readLogStreams, type LogStreamRow } from "../../store/queries/logStreamQueries.ts";
import type { AppDeps } from "../deps.ts";
import { decideAndAppend } from "../handleCommand.ts";
import {
  checkedUrl,
  destinationPolicy,
  newWebhookSecret,
  parseFilter,
  parseLogStreamSettings,
  parseSecret,
  secretFingerprint,
  shownDestination,
  urlOf,
} from "./destinationInput.ts";
import { forgetStreamSecrets, readStreamSecrets, storeStreamSecrets } from "./streamSecrets.ts";

// A tenant's log streams, as its admins manage them. Each change is an event of the stream, appended
// in the transaction that writes the encrypted destination beside it and tells the deliverer (a new
// `generation` of log_stream_deliveries: whatever a process holds of the stream is out of date).

type Deps = Pick<AppDeps, "db" | "keyring" | "config" | "now"> & { lookup?: LookupAll };

export interface LogStreamInput {
  name: string;
  kind: LogStreamKind;
  /** The receiver's https URL (Splunk: the HEC base; Datadog: optional, the site's intake by default). */
  url?: string | null;
  /** Splunk HEC token or Datadog API key; none for a webhook (its secret is generated). */
  secret?: string | null;
  settings?: unknown;
  filter?: unknown;
}

export type LogStreamChange = { [K in keyof Omit<LogStreamInput, "kind">]?: LogStreamInput[K] | null };

/** A stream and, once, the webhook signing secret Keyplane made for it (never shown again). */
export interface LogStreamWithSecret {
  logStream: LogStreamRow;
  secret: string | null;
}

export async function createLogStream(deps: Deps, actor: Actor, input: LogStreamInput, request: RequestMeta = {}): Promise<LogStreamWithSecret> {
  const kind = input.kind;
  const settings = parseLogStreamSettings(kind, input.settings);
  const filter = parseFilter(input.filter);
  const given = parseSecret(kind, input.secret, true);
  const url = await checkedUrl(urlOf(kind, input.url, settings), destinationPolicy(deps.config), deps.lookup);
  const secrets: DestinationSecrets = { url: url.href, secret: given ?? newWebhookSecret() };
  const logStreamId = randomUUID();
  const tenantId = actor.tenantId;
  const logStream = await withTenant(deps.db, tenantId, async (trx) => {
    const max = deps.config.logStreams.maxPerTenant;
    if ((await countLogStreams(trx, tenantId)) >= max) {
      throw new ConflictError(`the tenant has ${max} log streams, the most allowed (LOG_STREAM_MAX_PER_TENANT); delete one first`);
    }
    const { stored } = await decide(deps, trx, actor, request, logStreamId, {
      type: "CreateLogStream",
      logStreamId,
      kind,
      name: input.name,
      destination: shownDestination(kind, url),
      settings,
      filter,
      secretFingerprint: secretFingerprint(secrets),
    });
    await storeStreamSecrets(trx, deps.keyring, tenantId, logStreamId, secrets, deps.now());
    // Delivery starts with the event that created the stream.
    await trx
      .insertInto("log_stream_deliveries")
      .values({ tenant_id: tenantId, log_stream_id: logStreamId, delivered_seq: stored[0]!.sequence - 1 })
      .execute();
    return (await readLogStreams(trx, tenantId, logStreamId))[0]!;
  });
  return { logStream, secret: kind === "webhook" ? secrets.secret : null };
}

/** Changes what is given (a new URL is checked again); an unchanged stream records nothing. */
export async function updateLogStream(
  deps: Deps,
  actor: Actor,
  logStreamId: string,
  change: LogStreamChange,
  request: RequestMeta = {},
): Promise<LogStreamRow> {
  const tenantId = actor.tenantId;
  const current = await findStream(deps, tenantId, logStreamId);
  const kind = current.kind;
  const settings = change.settings == null ? current.settings : parseLogStreamSettings(kind, change.settings);
  const filter = change.filter == null ? current.filter : parseFilter(change.filter);
  const secret = parseSecret(kind, change.secret, false);
  const url = await newUrl(deps, current, change.url, settings);
  return changing(deps, tenantId, async (trx) => {
    const stored = await readStreamSecrets(trx, deps.keyring, tenantId, logStreamId, true);
    if (!stored) throw new NotFoundError("log stream");
    const secrets: DestinationSecrets = {
      ...stored,
      ...(url ? { url: url.href } : {}),
      ...(secret ? { secret } : {}),
    };
    const { decided } = await decide(deps, trx, actor, request, logStreamId, {
      type: "UpdateLogStream",
      name: change.name ?? current.name,
      destination: url ? shownDestination(kind, url) : current.destination,
      settings,
      filter,
      secretFingerprint: secretFingerprint(secrets),
    });
    if (decided.length > 0) {
      await storeStreamSecrets(trx, deps.keyring, tenantId, logStreamId, secrets, deps.now());
      await nextGeneration(trx, tenantId, logStreamId, { retryNow: true });
    }
    return (await readLogStreams(trx, tenantId, logStreamId))[0]!;
  });
}

/**
 * A webhook's new signing secret, shown once. The previous one keeps signing beside it (two
 * signatures per message) for `overlapSeconds`, so receivers can switch without losing a message.
 */
export async function rotateLogStreamSecret(
  deps: Deps,
  actor: Actor,
  logStreamId: string,
  overlapSeconds: number,
  request: RequestMeta = {},
): Promise<LogStreamWithSecret> {
  if (!Number.isInteger(overlapSeconds) || overlapSeconds < 0 || overlapSeconds > 7 * 86400) {
    throw new BadInputError("overlapSeconds: from 0 to 604800 (7 days)", "overlapSeconds");
  }
  const tenantId = actor.tenantId;
  const secret = newWebhookSecret();
  const logStream = await changing(deps, tenantId, async (trx) => {
    const stored = await readStreamSecrets(trx, deps.keyring, tenantId, logStreamId, true);
    if (!stored) throw new NotFoundError("log stream");
    const now = deps.now();
    const until = new Date(now.getTime() + overlapSeconds * 1000).toISOString();
    const secrets: DestinationSecrets = { url: stored.url, secret, ...(overlapSeconds > 0 ? { previous: { secret: stored.secret, until } } : {}) };
    await decide(deps, trx, actor, request, logStreamId, {
      type: "RotateLogStreamSecret",
      secretFingerprint: secretFingerprint(secrets),
      previousFingerprint: secretFingerprint(stored),
      previousValidUntil: overlapSeconds > 0 ? until : now.toISOString(),
    });
    await storeStreamSecrets(trx, deps.keyring, tenantId, logStreamId, secrets, now);
    await nextGeneration(trx, tenantId, logStreamId);
    return (await readLogStreams(trx, tenantId, logStreamId))[0]!;
  });
  return { logStream, secret };
}

export const pauseLogStream = (deps: Deps, actor: Actor, logStreamId: string, request: RequestMeta = {}) =>
  control(deps, actor, logStreamId, { type: "PauseLogStream" }, request, (trx) => nextGeneration(trx, actor.tenantId, logStreamId));

/** Resumes a paused stream, or retries at once one a receiver's refusal stopped. */
export const resumeLogStream = (deps: Deps, actor: Actor, logStreamId: string, request: RequestMeta = {}) =>
  control(deps, actor, logStreamId, { type: "ResumeLogStream" }, request, (trx) => nextGeneration(trx, actor.tenantId, logStreamId, { retryNow: true }));

/** Redelivers from `fromSequence` on (at least once: receivers deduplicate by event id); a pruned `from` is PRUNED. */
export async function replayLogStream(deps: Deps, actor: Actor, logStreamId: string, fromSequence: number, request: RequestMeta = {}): Promise<LogStreamRow> {
  return control(deps, actor, logStreamId, { type: "ReplayLogStream", fromSequence }, request, async (trx) => {
    const head = (await readTenantHead(trx, actor.tenantId))?.lastSequence ?? 0;
    if (fromSequence > head) throw new BadInputError(`from: the tenant's log ends at sequence ${head}`, "from");
    await retainedStart(trx, actor.tenantId, { what: "from", sequence: fromSequence });
    await nextGeneration(trx, actor.tenantId, logStreamId, { retryNow: true, cursor: fromSequence - 1 });
  });
}

/** Deletes the stream and forgets its destination and secrets; its events stay in the log. */
export async function deleteLogStream(deps: Deps, actor: Actor, logStreamId: string, request: RequestMeta = {}): Promise<boolean> {
  await changing(deps, actor.tenantId, async (trx) => {
    await decide(deps, trx, actor, request, logStreamId, { type: "DeleteLogStream" });
    await forgetStreamSecrets(trx, actor.tenantId, logStreamId);
    await trx.deleteFrom("log_stream_deliveries").where("tenant_id", "=", actor.tenantId).where("log_stream_id", "=", logStreamId).execute();
  });
  return true;
}

export async function listLogStreams(deps: Pick<AppDeps, "db">, actor: Actor, logStreamId?: string): Promise<LogStreamRow[]> {
  return withTenant(deps.db, actor.tenantId, (trx) => readLogStreams(trx, actor.tenantId, logStreamId));
}

async function control(
  deps: Deps,
  actor: Actor,
  logStreamId: string,
  command: LogStreamCommand,
  request: RequestMeta,
  after: (trx: Tx) => Promise<void>,
): Promise<LogStreamRow> {
  return changing(deps, actor.tenantId, async (trx) => {
    const { decided } = await decide(deps, trx, actor, request, logStreamId, command);
    if (decided.length > 0) await after(trx);
    return (await readLogStreams(trx, actor.tenantId, logStreamId))[0]!;
  });
}

/**
 * A change to an existing stream in one tenant transaction. The deliverer records the stream's health
 * on the same stream as it delivers, so an admin's change can meet a concurrent append (a version
 * conflict): the whole transaction is then decided again on what the stream is now, as the deliverer
 * does on its side.
 */
async function changing<T>(deps: Pick<Deps, "db">, tenantId: string, work: (trx: Tx) => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await withTenant(deps.db, tenantId, work);
    } catch (error) {
      const concurrent = error instanceof ConflictError && typeof error.extensions.actualVersion === "number";
      if (!concurrent || attempt >= 3) throw error;
    }
  }
}

function decide(deps: Deps, trx: Tx, actor: Actor, request: RequestMeta, logStreamId: string, command: LogStreamCommand) {
  return decideAndAppend(trx, {
    tenantId: actor.tenantId,
    ...logStreamStream(logStreamId),
    decider: logStreamDecider,
    command,
    metadata: eventMetadata(actor, request),
    occurredAt: deps.now(),
    newStream: command.type === "CreateLogStream",
  });
}

/** Out of date for whoever delivers it; optionally retried at once and moved to another position. */
async function nextGeneration(trx: Tx, tenantId: string, logStreamId: string, options: { retryNow?: boolean; cursor?: number } = {}): Promise<void> {
  await trx
    .updateTable("log_stream_deliveries")
    .set((eb) => ({
      generation: eb("generation", "+", 1),
      ...(options.retryNow ? { attempts: 0, next_attempt_at: null } : {}),
      ...(options.cursor !== undefined ? { delivered_seq: options.cursor } : {}),
    }))
    .where("tenant_id", "=", tenantId)
    .where("log_stream_id", "=", logStreamId)
    .execute();
}

async function findStream(deps: Pick<AppDeps, "db">, tenantId: string, logStreamId: string): Promise<LogStreamRow> {
  const [row] = await withTenant(deps.db, tenantId, (trx) => readLogStreams(trx, tenantId, truncateWellFormed(logStreamId, 64)));
  if (!row) throw new NotFoundError("log stream");
  return row;
}

/** The URL to check when the change names one, or when a Datadog stream on its site's intake (not a proxy) changes site. */
async function newUrl(deps: Deps, current: LogStreamRow, given: string | null | undefined, settings: LogStreamSettings): Promise<URL | null> {
  if (given != null) return checkedUrl(given, destinationPolicy(deps.config), deps.lookup);
  const onSiteIntake = current.destination === shownDestination("datadog", new URL(urlOf("datadog", null, current.settings)));
  if (current.kind === "datadog" && current.settings.site !== settings.site && onSiteIntake) {
    return checkedUrl(urlOf("datadog", null, settings), destinationPolicy(deps.config), deps.lookup);
  }
  return null;
}
