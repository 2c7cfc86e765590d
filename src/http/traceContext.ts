import { randomFillSync } from "node:crypto";

/**
 * W3C Trace Context (https://www.w3.org/TR/trace-context/): the `traceparent` header
 * `version-traceid-parentid-flags`, e.g. 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01.
 * A request that carries a valid one continues that trace: Keyplane's span is a child of the caller's.
 * Without one (or with a malformed one, which the spec says to ignore) a new trace starts.
 */
export interface TraceContext {
  traceId: string;
  /** This request's span in Keyplane. */
  spanId: string;
  /** The caller's span, when the request carried a traceparent. */
  parentSpanId?: string;
  /** Trace flags (hex), e.g. "01" sampled. */
  traceFlags: string;
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
const ZERO_TRACE = "0".repeat(32);
const ZERO_SPAN = "0".repeat(16);

/** The caller's trace id, span id and flags, or undefined when the header is absent or invalid. */
export function parseTraceparent(header: string | string[] | undefined | null): { traceId: string; parentSpanId: string; traceFlags: string } | undefined {
  if (typeof header !== "string") return undefined;
  const match = TRACEPARENT.exec(header.trim());
  if (!match) return undefined;
  const [, version, traceId, parentSpanId, traceFlags, rest] = match as unknown as [string, string, string, string, string, string | undefined];
  // Version ff is invalid; version 00 has exactly four fields; later versions may add fields after a dash.
  if (version === "ff" || (version === "00" && rest !== undefined)) return undefined;
  if (traceId === ZERO_TRACE || parentSpanId === ZERO_SPAN) return undefined;
  return { traceId, parentSpanId, traceFlags };
}

/** The trace context of one incoming request: the caller's trace continued, or a new one. */
export function traceContextOf(header: string | string[] | undefined | null): TraceContext {
  const parent = parseTraceparent(header);
  const spanId = newId(8, ZERO_SPAN);
  if (parent) return { traceId: parent.traceId, spanId, parentSpanId: parent.parentSpanId, traceFlags: parent.traceFlags };
  return { traceId: newId(16, ZERO_TRACE), spanId, traceFlags: "00" };
}

/** The traceparent header naming this request's span (for calls Keyplane makes while serving it). */
export function formatTraceparent(context: Pick<TraceContext, "traceId" | "spanId" | "traceFlags">): string {
  return `00-${context.traceId}-${context.spanId}-${context.traceFlags}`;
}

// Random bytes drawn in batches (as node's randomUUID does): one getrandom call per 256 ids, not per id.
const pool = Buffer.alloc(4096);
let poolOffset = pool.length;

function newId(bytes: number, zero: string): string {
  for (;;) {
    if (poolOffset + bytes > pool.length) {
      randomFillSync(pool);
      poolOffset = 0;
    }
    const id = pool.toString("hex", poolOffset, (poolOffset += bytes));
    if (id !== zero) return id;
  }
}
