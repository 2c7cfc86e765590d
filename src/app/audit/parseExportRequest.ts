import type { ExportFileFormat } from "../../audit/exportFormat.ts";
import { knownEventTypes } from "../../domain/eventRegistry.ts";
import { BadInputError } from "../../errors.ts";

export interface AuditExportRequest {
  format: ExportFileFormat;
  /** Occurred at or after. */
  from?: Date;
  /** Occurred before. */
  to?: Date;
  fromSequence?: number;
  toSequence?: number;
  /** Only these event types in full; the others as stubs. */
  types?: string[];
}

export interface RawExportRequest {
  from?: string;
  to?: string;
  fromSequence?: string;
  toSequence?: string;
  /** Each may hold several types separated by commas. */
  types?: string[];
  format?: string;
}

/** The same checks for the HTTP query and the CLI flags; errors name the parameter. */
export function parseExportRequest(raw: RawExportRequest): AuditExportRequest {
  const format = raw.format ?? "ndjson";
  if (format !== "ndjson" && format !== "csv") throw new BadInputError(`format: must be ndjson or csv (got '${format}')`, "format");
  const request: AuditExportRequest = { format };
  if (raw.from !== undefined) request.from = instant("from", raw.from);
  if (raw.to !== undefined) request.to = instant("to", raw.to);
  if (raw.fromSequence !== undefined) request.fromSequence = sequence("fromSequence", raw.fromSequence);
  if (raw.toSequence !== undefined) request.toSequence = sequence("toSequence", raw.toSequence);
  if (request.from && request.fromSequence !== undefined) throw new BadInputError("fromSequence: give from or fromSequence, not both", "fromSequence");
  if (request.to && request.toSequence !== undefined) throw new BadInputError("toSequence: give to or toSequence, not both", "toSequence");
  if (request.from && request.to && request.from.getTime() >= request.to.getTime()) throw new BadInputError("to: must be after from", "to");
  if (request.fromSequence !== undefined && request.toSequence !== undefined && request.fromSequence > request.toSequence) {
    throw new BadInputError("toSequence: must not be below fromSequence", "toSequence");
  }
  const types = [
    ...new Set(
      (raw.types ?? [])
        .flatMap((t) => t.split(","))
        .map((t) => t.trim())
        .filter(Boolean),
    ),
  ];
  if (types.length) {
    const known = new Set(knownEventTypes());
    const unknown = types.filter((t) => !known.has(t));
    if (unknown.length) throw new BadInputError(`types: unknown event type ${unknown.slice(0, 5).join(", ")}`, "types");
    request.types = types.sort();
  }
  return request;
}

function instant(field: string, value: string): Date {
  // ISO 8601 with a date, a time and a zone: a bare date or local time would depend on the server's zone.
  const date = new Date(value);
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/.test(value) || Number.isNaN(date.getTime())) {
    throw new BadInputError(`${field}: must be an ISO 8601 timestamp with a zone, e.g. 2026-01-31T00:00:00Z (got '${value.slice(0, 40)}')`, field);
  }
  return date;
}

function sequence(field: string, value: string): number {
  const n = Number(value);
  if (!/^\d{1,15}$/.test(value) || n < 1) throw new BadInputError(`${field}: must be a sequence number of 1 or more (got '${value.slice(0, 20)}')`, field);
  return n;
}
