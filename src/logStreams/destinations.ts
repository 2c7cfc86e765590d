import { Webhook } from "standardwebhooks";
import type { EventRecord } from "../audit/exportFormat.ts";
import type { LogStreamKind, LogStreamSettings } from "../domain/logStream/events.ts";
import type { SafeResponse } from "./safeRequest.ts";

// How a batch of events is put to each kind of destination, and what its answer means. Pure: the
// deliverer sends what this builds (safePost) and acts on the verdict.
//
// Each delivered event is the audit export's event record (sequence, content and chain hashes, audit
// fields), so a receiver checks what it got with the auditor's own verifier.

export interface DestinationSecrets {
  /** The full URL as the admin gave it (its query may hold a token), or for Datadog the intake's base. */
  url: string;
  /** Webhook signing secret (whsec_…), Splunk HEC token or Datadog API key. */
  secret: string;
  /** A rotated-out webhook secret that still signs until `until` (ISO 8601). */
  previous?: { secret: string; until: string };
}

export interface Batch {
  tenantId: string;
  logStreamId: string;
  events: EventRecord[];
}

export interface DestinationRequest {
  url: URL;
  headers: Record<string, string>;
  body: string;
}

/** Datadog's public intake for a site, used when no URL is given (a proxy's URL may be). */
export const datadogIntake = (site = "datadoghq.com") => `https://http-intake.logs.${site}`;

/** The endpoint a kind posts to: Splunk's and Datadog's fixed paths under the base the admin gave. */
export function endpointOf(kind: LogStreamKind, base: string): URL {
  const url = new URL(base);
  const path = kind === "splunk" ? "/services/collector/event" : kind === "datadog" ? "/api/v2/logs" : null;
  if (path && !url.pathname.endsWith(path)) url.pathname = `${url.pathname.replace(/\/+$/, "")}${path}`;
  return url;
}

/** The request that carries `batch` to the destination, signed or authorized as the kind requires. */
export function buildRequest(kind: LogStreamKind, settings: LogStreamSettings, secrets: DestinationSecrets, batch: Batch, now: Date): DestinationRequest {
  const url = endpointOf(kind, secrets.url);
  switch (kind) {
    case "webhook": {
      const body = JSON.stringify({ type: "keyplane.audit_events", tenantId: batch.tenantId, logStreamId: batch.logStreamId, events: batch.events });
      // The same id for every attempt at this batch: the receiver's deduplication key for the message.
      const id = `msg_${batch.logStreamId}_${batch.events[0]!.sequence}_${batch.events.at(-1)!.sequence}`;
      const signers = [secrets.secret, ...(secrets.previous && new Date(secrets.previous.until) > now ? [secrets.previous.secret] : [])];
      // Standard Webhooks: several space-separated signatures, one per valid secret, during a rotation.
      const signature = signers.map((secret) => new Webhook(secret).sign(id, now, body)).join(" ");
      return {
        url,
        headers: {
          "content-type": "application/json",
          "webhook-id": id,
          "webhook-timestamp": String(Math.floor(now.getTime() / 1000)),
          "webhook-signature": signature,
        },
        body,
      };
    }
    case "splunk": {
      // HEC's event endpoint takes concatenated JSON objects, one per event.
      const body = batch.events
        .map((event) =>
          JSON.stringify({
            time: Date.parse(event.occurredAt) / 1000,
            host: "keyplane",
            source: settings.source ?? "keyplane",
            sourcetype: settings.sourcetype ?? "keyplane:audit",
            ...(settings.index ? { index: settings.index } : {}),
            event,
          }),
        )
        .join("\n");
      return { url, headers: { "content-type": "application/json", authorization: `Splunk ${secrets.secret}` }, body };
    }
    case "datadog": {
      const tags = [`tenant:${batch.tenantId}`, ...(settings.ddtags ? [settings.ddtags] : [])].join(",");
      const body = JSON.stringify(
        batch.events.map((event) => ({
          ddsource: settings.ddsource ?? "keyplane",
          ddtags: tags,
          hostname: "keyplane",
          service: settings.service ?? "keyplane",
          message: JSON.stringify(event),
        })),
      );
      return { url, headers: { "content-type": "application/json", "dd-api-key": secrets.secret }, body };
    }
  }
}

export type Verdict =
  | { outcome: "delivered" }
  /** Try again later: 408, 429, 5xx (honouring Retry-After), or no answer at all. */
  | { outcome: "retry"; retryAfterMs?: number; reason: string }
  /** The receiver refused what it was sent for good (401, 403, 404, other 4xx): stop until changed or resumed. */
  | { outcome: "refused"; reason: string };

/** What a destination's answer means. `reason` quotes at most 300 characters of its body (never ours). */
export function verdictOf(kind: LogStreamKind, response: SafeResponse, now: Date): Verdict {
  const status = response.status;
  const said = `${kind} answered HTTP ${status}${response.body ? `: ${response.body.slice(0, 300)}` : ""}`;
  if (status >= 200 && status < 300) {
    // HEC reports failures in a 200's body too; code 0 is success.
    if (kind === "splunk" && /"code"\s*:\s*[1-9]/.test(response.body)) return { outcome: "refused", reason: said };
    return { outcome: "delivered" };
  }
  if (status === 408 || status === 429 || status >= 500) {
    const retryAfterMs = retryAfterOf(response.headers["retry-after"], now);
    return { outcome: "retry", reason: said, ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) };
  }
  return { outcome: "refused", reason: said };
}

/** Retry-After as seconds or an HTTP date, in milliseconds from now; undefined when absent or unreadable. */
export function retryAfterOf(value: string | undefined, now: Date): number | undefined {
  if (!value) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now.getTime());
}
