import { isDeepStrictEqual } from "node:util";
import { z } from "zod";
import { BadInputError, NotFoundError } from "../../errors.ts";
import { parseInput } from "../validation.ts";
import {
  LogStreamCreated,
  LogStreamDeleted,
  LogStreamHealthChanged,
  LogStreamPaused,
  LogStreamReplayed,
  LogStreamResumed,
  LogStreamSecretRotated,
  LogStreamUpdated,
  type LogStreamEvent,
  type LogStreamFilter,
  type LogStreamHealth,
  type LogStreamKind,
  type LogStreamSettings,
} from "./events.ts";
import type { LogStreamState } from "./evolve.ts";

/** Datadog's sites (https://docs.datadoghq.com/getting_started/site/): the intake is http-intake.logs.<site>. */
export const DATADOG_SITES = ["datadoghq.com", "us3.datadoghq.com", "us5.datadoghq.com", "datadoghq.eu", "ap1.datadoghq.com", "ddog-gov.com"] as const;

const EVENT_TYPE = /^[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)+$/;
const label = (max: number) => z.string().trim().min(1, "must not be empty").max(max);

export const logStreamNameSchema = label(100);
export const LogStreamFilterInput = z
  .object({
    types: z.array(z.string().regex(EVENT_TYPE, "must be event types such as agent.created")).max(50).optional(),
    securityOnly: z.boolean().default(false),
  })
  .strict();

/** Each kind's options; a webhook has none. */
const SETTINGS: Record<LogStreamKind, z.ZodType<LogStreamSettings>> = {
  webhook: z.object({}).strict(),
  splunk: z
    .object({
      index: z
        .string()
        .regex(/^[a-z0-9_][a-z0-9_-]{0,79}$/, "must be a Splunk index name (a-z, 0-9, _ and -)")
        .optional(),
      source: label(200).optional(),
      sourcetype: label(200).optional(),
    })
    .strict(),
  datadog: z
    .object({
      site: z.enum(DATADOG_SITES).optional(),
      service: label(100).optional(),
      ddsource: label(100).optional(),
      ddtags: label(1000).optional(),
    })
    .strict(),
};

export function parseLogStreamSettings(kind: LogStreamKind, settings: unknown): LogStreamSettings {
  const parsed = SETTINGS[kind].safeParse(settings ?? {});
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  const path = issue.path.join(".");
  const message = issue.code === "unrecognized_keys" ? `${issue.keys.join(", ")}: not an option of ${kind} streams` : `${path}: ${issue.message}`;
  throw new BadInputError(`settings.${message}`, "settings");
}

/** What a stream sends to, as decided: the app has checked the URL and stored the secret already. */
export interface LogStreamDestination {
  name: string;
  destination: string;
  settings: LogStreamSettings;
  filter: LogStreamFilter;
  secretFingerprint: string;
}

export type LogStreamCommand =
  | ({ type: "CreateLogStream"; logStreamId: string; kind: LogStreamKind } & LogStreamDestination)
  | ({ type: "UpdateLogStream" } & LogStreamDestination)
  | { type: "RotateLogStreamSecret"; secretFingerprint: string; previousFingerprint: string; previousValidUntil: string }
  | { type: "PauseLogStream" }
  | { type: "ResumeLogStream" }
  | { type: "DeleteLogStream" }
  | { type: "ReplayLogStream"; fromSequence: number }
  | { type: "RecordLogStreamHealth"; health: LogStreamHealth; error?: string; deliveredSequence: number };

const DESTINATION_FIELDS = ["name", "destination", "settings", "filter", "secretFingerprint"] as const;

export function decideLogStream(command: LogStreamCommand, state: LogStreamState): LogStreamEvent[] {
  if (command.type === "CreateLogStream") {
    const { type: _, ...data } = command;
    return [LogStreamCreated({ ...data, name: parseInput(logStreamNameSchema, data.name) })];
  }
  if (!state.exists || state.deleted) throw new NotFoundError("log stream");
  const logStreamId = state.logStreamId;
  switch (command.type) {
    case "UpdateLogStream": {
      const { type: _, ...next } = command;
      const changed = DESTINATION_FIELDS.filter((field) => !isDeepStrictEqual(next[field], state[field]));
      if (changed.length === 0) return [];
      return [LogStreamUpdated({ logStreamId, ...next, changed: [...changed] })];
    }
    case "RotateLogStreamSecret":
      if (state.kind !== "webhook") throw new BadInputError(`a ${state.kind} stream's token is replaced with updateLogStream`, "id");
      return [LogStreamSecretRotated({ logStreamId, ...withoutType(command) })];
    case "PauseLogStream":
      return state.paused ? [] : [LogStreamPaused({ logStreamId })];
    case "ResumeLogStream":
      // Resuming also retries a stream that a receiver's refusal stopped.
      return state.paused || state.health === "error" ? [LogStreamResumed({ logStreamId })] : [];
    case "DeleteLogStream":
      return [LogStreamDeleted({ logStreamId })];
    case "ReplayLogStream":
      if (!Number.isInteger(command.fromSequence) || command.fromSequence < 1) throw new BadInputError("from: a sequence, 1 or more", "from");
      return [LogStreamReplayed({ logStreamId, fromSequence: command.fromSequence })];
    case "RecordLogStreamHealth":
      if (state.health === command.health) return [];
      return [
        LogStreamHealthChanged({
          logStreamId,
          from: state.health,
          to: command.health,
          deliveredSequence: command.deliveredSequence,
          ...(command.error ? { error: command.error } : {}),
        }),
      ];
  }
}

function withoutType<T extends { type: string }>(command: T): Omit<T, "type"> {
  const { type: _, ...rest } = command;
  return rest;
}
