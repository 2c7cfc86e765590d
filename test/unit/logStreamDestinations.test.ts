import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EventRecord } from "../../src/audit/exportFormat.ts";
import { buildRequest, endpointOf, verdictOf, type Batch } from "../../src/logStreams/destinations.ts";
import { safePost } from "../../src/logStreams/safeRequest.ts";
import { newWebhookSecret, startLogReceivers, type LogReceivers } from "../fakes/logReceivers.ts";

// Each destination's request as the real receiver checks it (the local fakes of a Standard Webhooks
// receiver, Splunk HEC and Datadog's intake), and what its answers mean.

let receivers: LogReceivers;
const policy = () => ({ allowedHosts: ["127.0.0.1"], ca: receivers.caPem });
const now = () => new Date();

beforeAll(async () => {
  receivers = await startLogReceivers();
});
afterAll(async () => {
  await receivers?.close();
});

const record = (sequence: number): EventRecord => ({
  kind: "event",
  sequence,
  eventId: `00000000-0000-4000-8000-${String(sequence).padStart(12, "0")}`,
  tenantId: "acme",
  streamType: "agent",
  streamId: "a1",
  streamVersion: sequence,
  type: "agent.updated",
  schemaVersion: 1,
  data: { n: sequence },
  metadata: { actor: { subject: "tests", kind: "system", roles: [] } },
  occurredAt: new Date(Date.UTC(2026, 11, 3, 12, 0, sequence)).toISOString(),
  contentHash: "c".repeat(64),
  chainHash: "h".repeat(64),
});
const batch = (from: number, to: number): Batch => ({
  tenantId: "acme",
  logStreamId: "s1",
  events: Array.from({ length: to - from + 1 }, (_, i) => record(from + i)),
});

async function send(
  kind: "webhook" | "splunk" | "datadog",
  url: string,
  secret: string,
  b: Batch,
  settings = {},
  previous?: { secret: string; until: string },
) {
  const request = buildRequest(kind, settings, { url, secret, ...(previous ? { previous } : {}) }, b, now());
  const response = await safePost(request.url, request, policy());
  return verdictOf(kind, response, now());
}

describe("log stream destinations", () => {
  it("signs a webhook per Standard Webhooks, with both secrets during a rotation and only the new one after it", async () => {
    const old = newWebhookSecret();
    const fresh = newWebhookSecret();
    const url = receivers.webhookEndpoint("rotating", [old]);
    expect(await send("webhook", url, old, batch(1, 3))).toEqual({ outcome: "delivered" });
    // Rotated: the receiver still knows only the old secret, and the overlap lets it through.
    const until = new Date(Date.now() + 60_000).toISOString();
    expect(await send("webhook", url, fresh, batch(4, 4), {}, { secret: old, until })).toEqual({ outcome: "delivered" });
    // The overlap over: only the new secret signs, which this receiver does not know yet.
    const past = new Date(Date.now() - 1000).toISOString();
    expect(await send("webhook", url, fresh, batch(5, 5), {}, { secret: old, until: past })).toMatchObject({ outcome: "refused", reason: /HTTP 400/ });
    receivers.webhookEndpoint("rotating", [fresh]);
    expect(await send("webhook", url, fresh, batch(5, 5))).toEqual({ outcome: "delivered" });
    const got = receivers.accepted("webhook").filter((d) => d.endpoint === "rotating");
    expect(got.map((d) => (d.event as { sequence: number }).sequence)).toEqual([1, 2, 3, 4, 5]);
    expect(got.map((d) => d.webhookId)).toEqual(["msg_s1_1_3", "msg_s1_1_3", "msg_s1_1_3", "msg_s1_4_4", "msg_s1_5_5"]);
    expect(got[0]!.event).toEqual(record(1));
  });

  it("sends Splunk HEC its envelopes with the token, and names a refused token", async () => {
    const base = receivers.splunkUrl.replace("/services/collector/event", "");
    expect(endpointOf("splunk", base).toString()).toBe(receivers.splunkUrl);
    const settings = { index: "main", sourcetype: "keyplane:audit" };
    expect(await send("splunk", base, receivers.splunkToken, batch(1, 2), settings)).toEqual({ outcome: "delivered" });
    const got = receivers.accepted("splunk");
    expect(got.map((d) => [d.index, d.sourcetype, d.source, (d.event as EventRecord).sequence])).toEqual([
      ["main", "keyplane:audit", "keyplane", 1],
      ["main", "keyplane:audit", "keyplane", 2],
    ]);
    expect(got[0]!.time).toBe(Date.parse(record(1).occurredAt) / 1000);
    const refused = await send("splunk", base, "not-the-token", batch(3, 3), settings);
    expect(refused).toMatchObject({ outcome: "refused", reason: expect.stringContaining("HTTP 403") });
    expect(refused.outcome === "refused" && refused.reason).not.toContain("not-the-token");
  });

  it("sends Datadog its log entries with the API key, and retries on 429 after Retry-After and on 5xx", async () => {
    const base = receivers.datadogUrl.replace("/api/v2/logs", "");
    const settings = { service: "keyplane-prod", ddtags: "env:prod" };
    expect(await send("datadog", base, receivers.datadogApiKey, batch(1, 2), settings)).toEqual({ outcome: "delivered" });
    const got = receivers.accepted("datadog");
    expect(got.map((d) => [d.service, d.ddtags, (d.event as EventRecord).sequence])).toEqual([
      ["keyplane-prod", "tenant:acme,env:prod", 1],
      ["keyplane-prod", "tenant:acme,env:prod", 2],
    ]);
    receivers.fail("datadog", { status: 429, retryAfter: 7 }, { status: 503 });
    expect(await send("datadog", base, receivers.datadogApiKey, batch(3, 3), settings)).toMatchObject({ outcome: "retry", retryAfterMs: 7000 });
    expect(await send("datadog", base, receivers.datadogApiKey, batch(3, 3), settings)).toMatchObject({ outcome: "retry", reason: /HTTP 503/ });
    expect(await send("datadog", base, receivers.datadogApiKey, batch(3, 3), settings)).toEqual({ outcome: "delivered" });
    expect(await send("datadog", base, "wrong-key", batch(4, 4), settings)).toMatchObject({ outcome: "refused", reason: /HTTP 403/ });
  });
});
