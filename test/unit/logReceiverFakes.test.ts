import { randomUUID } from "node:crypto";
import { gzipSync } from "node:zlib";
import { Webhook } from "standardwebhooks";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { DestinationPolicy } from "../../src/logStreams/addressPolicy.ts";
import { DeliveryTransportError, type SafeRequest, safePost } from "../../src/logStreams/safeRequest.ts";
import { type LogReceivers, newWebhookSecret, startLogReceivers } from "../fakes/logReceivers.ts";
import { waitFor } from "../testkit/waitFor.ts";

// The fakes are driven through safePost, the sender's own transport, so the two are tested together.

let receivers: LogReceivers;
let policy: DestinationPolicy;
beforeEach(async () => {
  receivers = await startLogReceivers({ splunkIndexes: ["keyplane", "main"] });
  policy = { allowedHosts: ["127.0.0.1"], ca: receivers.caPem };
});
afterEach(async () => {
  await receivers.close();
});

const send = (url: string, headers: Record<string, string>, body: string | Buffer, extra: Partial<SafeRequest> = {}) =>
  safePost(new URL(url), { headers, body, ...extra }, policy);

const auditEvent = (n: number) => ({ id: `evt_${n}`, type: "agent.created", tenantSeq: n, occurredAt: "2026-05-01T10:00:00.000Z", data: { n } });
const webhookBody = (...events: Record<string, unknown>[]) => JSON.stringify({ type: "keyplane.audit_events", tenantId: "t_1", logStreamId: "ls_1", events });

/** Standard Webhooks headers for `body`, signed with each of `secrets` (space-separated signatures). */
function signed(body: string, secrets: string[], options: { id?: string; at?: Date } = {}): Record<string, string> {
  const id = options.id ?? `msg_${randomUUID()}`;
  const at = options.at ?? new Date();
  return {
    "content-type": "application/json",
    "webhook-id": id,
    "webhook-timestamp": String(Math.floor(at.getTime() / 1000)),
    "webhook-signature": secrets.map((s) => new Webhook(s).sign(id, at, body)).join(" "),
  };
}

describe("Standard Webhooks receiver", () => {
  it("accepts a signed message and records each event with its envelope", async () => {
    const secret = newWebhookSecret();
    const url = receivers.webhookEndpoint("ops", [secret]);
    const body = webhookBody(auditEvent(1), auditEvent(2));
    const response = await send(url, signed(body, [secret], { id: "msg_1" }), body);
    expect(response.status).toBe(204);
    const accepted = receivers.accepted("webhook");
    expect(accepted.map((a) => a.event.id)).toEqual(["evt_1", "evt_2"]);
    expect(accepted[0]).toMatchObject({ endpoint: "ops", webhookId: "msg_1", tenantId: "t_1", logStreamId: "ls_1", matchedSecret: secret });
  });

  it("refuses a wrong signature, missing headers and a stale timestamp, and accepts nothing", async () => {
    const secret = newWebhookSecret();
    const url = receivers.webhookEndpoint("ops", [secret]);
    const body = webhookBody(auditEvent(1));
    const wrong = await send(url, signed(body, [newWebhookSecret()]), body);
    const tampered = await send(url, signed(body, [secret]), webhookBody(auditEvent(666)));
    const { "webhook-signature": _dropped, ...unsigned } = signed(body, [secret]);
    const missing = await send(url, unsigned, body);
    const stale = await send(url, signed(body, [secret], { at: new Date(Date.now() - 6 * 60_000) }), body);
    const future = await send(url, signed(body, [secret], { at: new Date(Date.now() + 6 * 60_000) }), body);
    expect([wrong, tampered, missing, stale, future].map((r) => r.status)).toEqual([400, 400, 400, 400, 400]);
    expect(receivers.attempts("webhook").map((a) => a.refusal)).toEqual([
      "bad-signature",
      "bad-signature",
      "missing-headers",
      "stale-timestamp",
      "future-timestamp",
    ]);
    expect(receivers.accepted("webhook")).toEqual([]);
    // Four minutes old is within the five minutes of tolerance.
    expect((await send(url, signed(body, [secret], { at: new Date(Date.now() - 4 * 60_000) }), body)).status).toBe(204);
  });

  it("accepts either secret during a rotation, and only the new one after", async () => {
    const [previous, next] = [newWebhookSecret(), newWebhookSecret()];
    const url = receivers.webhookEndpoint("ops", [previous, next]);
    const body = webhookBody(auditEvent(1));
    expect((await send(url, signed(body, [previous]), body)).status).toBe(204);
    expect((await send(url, signed(body, [next]), body)).status).toBe(204);
    expect((await send(url, signed(body, [previous, next]), body)).status).toBe(204);
    expect(receivers.accepted("webhook").map((a) => a.matchedSecret)).toEqual([previous, next, previous]);

    receivers.webhookEndpoint("ops", [next]);
    expect((await send(url, signed(body, [previous]), body)).status).toBe(400);
    expect((await send(url, signed(body, [previous, next]), body)).status).toBe(204);
    expect(receivers.accepted("webhook").at(-1)!.matchedSecret).toBe(next);
  });

  it("refuses a signed body of another shape, and an unknown endpoint", async () => {
    const secret = newWebhookSecret();
    const url = receivers.webhookEndpoint("ops", [secret]);
    const other = JSON.stringify({ type: "something.else", events: [] });
    expect((await send(url, signed(other, [secret]), other)).status).toBe(400);
    const body = webhookBody(auditEvent(1));
    expect((await send(`${receivers.url}/webhook/nobody`, signed(body, [secret]), body)).status).toBe(404);
    expect(receivers.attempts("webhook").map((a) => a.refusal)).toEqual(["unexpected-body", "unknown-endpoint"]);
  });

  it("makes secrets in the Standard Webhooks format", () => {
    const secret = newWebhookSecret();
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]+=*$/);
    expect(Buffer.from(secret.slice("whsec_".length), "base64")).toHaveLength(32);
    expect(newWebhookSecret()).not.toBe(secret);
  });
});

describe("Splunk HTTP Event Collector", () => {
  const hec = (token: string | undefined) => ({ "content-type": "application/json", ...(token === undefined ? {} : { authorization: `Splunk ${token}` }) });

  it("answers HEC's errors for a missing, malformed or wrong token", async () => {
    const body = JSON.stringify({ event: auditEvent(1) });
    const missing = await send(receivers.splunkUrl, hec(undefined), body);
    expect(missing.status).toBe(401);
    expect(JSON.parse(missing.body)).toEqual({ text: "Token is required", code: 2 });
    const bearer = await send(receivers.splunkUrl, { authorization: `Bearer ${receivers.splunkToken}` }, body);
    expect(bearer.status).toBe(401);
    expect(JSON.parse(bearer.body)).toEqual({ text: "Invalid authorization", code: 3 });
    const wrong = await send(receivers.splunkUrl, hec("00000000-0000-0000-0000-000000000000"), body);
    expect(wrong.status).toBe(403);
    expect(JSON.parse(wrong.body)).toEqual({ text: "Invalid token", code: 4 });
    expect(receivers.accepted("splunk")).toEqual([]);
    expect(receivers.attempts("splunk")[2]!.headers.authorization).toBe("[redacted]");
  });

  it("accepts concatenated event objects and records their metadata", async () => {
    const body = [
      JSON.stringify({ time: 1714557600.123, host: "keyplane", source: "keyplane:t_1", sourcetype: "_json", index: "keyplane", event: auditEvent(1) }),
      JSON.stringify({ event: auditEvent(2), time: "1714557601" }),
      "\n  ",
      JSON.stringify({ event: { text: 'braces } and { quotes " inside' } }),
    ].join("");
    const response = await send(receivers.splunkUrl, hec(receivers.splunkToken), body);
    expect(response.status).toBe(200);
    expect(JSON.parse(response.body)).toEqual({ text: "Success", code: 0 });
    const accepted = receivers.accepted("splunk");
    expect(accepted).toHaveLength(3);
    expect(accepted[0]).toMatchObject({ time: 1714557600.123, host: "keyplane", source: "keyplane:t_1", sourcetype: "_json", index: "keyplane" });
    expect(accepted[0]!.event).toEqual(auditEvent(1));
    expect(accepted[1]!.time).toBe(1714557601);
    expect(accepted[2]!.event).toEqual({ text: 'braces } and { quotes " inside' });
  });

  it("refuses a batch with a missing event field, bad JSON or a wrong index, naming the event", async () => {
    const good = JSON.stringify({ event: auditEvent(1) });
    const noEvent = await send(receivers.splunkUrl, hec(receivers.splunkToken), good + JSON.stringify({ time: 1 }));
    expect(noEvent.status).toBe(400);
    expect(JSON.parse(noEvent.body)).toEqual({ text: "Event field is required", code: 12, "invalid-event-number": 1 });
    const garbled = await send(receivers.splunkUrl, hec(receivers.splunkToken), `${good}${good}{"event": {"n": 1`);
    expect(garbled.status).toBe(400);
    expect(JSON.parse(garbled.body)).toEqual({ text: "Invalid data format", code: 6, "invalid-event-number": 2 });
    const wrongIndex = await send(receivers.splunkUrl, hec(receivers.splunkToken), JSON.stringify({ index: "secret_index", event: auditEvent(1) }));
    expect(wrongIndex.status).toBe(400);
    expect(JSON.parse(wrongIndex.body)).toEqual({ text: "Incorrect index", code: 7, "invalid-event-number": 0 });
    const empty = await send(receivers.splunkUrl, hec(receivers.splunkToken), "");
    expect(JSON.parse(empty.body)).toEqual({ text: "No data", code: 5 });
    expect(receivers.accepted("splunk")).toEqual([]);
  });

  it("accepts a token set later and refuses the one it replaced", async () => {
    const previous = receivers.splunkToken;
    receivers.setSplunkTokens(["11111111-2222-3333-4444-555555555555"]);
    const body = JSON.stringify({ event: auditEvent(1) });
    expect((await send(receivers.splunkUrl, hec(previous), body)).status).toBe(403);
    expect((await send(receivers.splunkUrl, hec("11111111-2222-3333-4444-555555555555"), body)).status).toBe(200);
  });
});

describe("Datadog Logs intake", () => {
  const intake = (key: string | undefined) => ({ "content-type": "application/json", ...(key === undefined ? {} : { "dd-api-key": key }) });
  const entry = (n: number) => ({
    ddsource: "keyplane",
    ddtags: "env:test",
    hostname: "keyplane-1",
    service: "keyplane",
    message: JSON.stringify(auditEvent(n)),
  });

  it("accepts entries with the right key and parses JSON messages", async () => {
    const response = await send(receivers.datadogUrl, intake(receivers.datadogApiKey), JSON.stringify([entry(1), { message: "plain text" }]));
    expect(response.status).toBe(202);
    expect(JSON.parse(response.body)).toEqual({});
    const accepted = receivers.accepted("datadog");
    expect(accepted[0]).toMatchObject({ ddsource: "keyplane", ddtags: "env:test", hostname: "keyplane-1", service: "keyplane", truncated: false });
    expect(accepted[0]!.event).toEqual(auditEvent(1));
    expect(accepted[1]).toMatchObject({ message: "plain text", event: undefined });
  });

  it("refuses a missing or wrong API key", async () => {
    const body = JSON.stringify([entry(1)]);
    for (const key of [undefined, "0123456789abcdef0123456789abcdef"]) {
      const response = await send(receivers.datadogUrl, intake(key), body);
      expect(response.status).toBe(403);
      expect(JSON.parse(response.body)).toEqual({ errors: ["Forbidden"] });
    }
    expect(receivers.accepted("datadog")).toEqual([]);
    expect(receivers.attempts("datadog")[1]!.headers["dd-api-key"]).toBe("[redacted]");
  });

  it("takes at most 1000 entries per request", async () => {
    const thousand = Array.from({ length: 1000 }, (_, n) => entry(n));
    expect((await send(receivers.datadogUrl, intake(receivers.datadogApiKey), JSON.stringify([...thousand, entry(1000)]))).status).toBe(400);
    expect(receivers.accepted("datadog")).toHaveLength(0);
    expect((await send(receivers.datadogUrl, intake(receivers.datadogApiKey), JSON.stringify(thousand))).status).toBe(202);
    expect(receivers.accepted("datadog")).toHaveLength(1000);
  });

  it("refuses a payload over 5 MB, also when it arrives gzipped", async () => {
    const big = JSON.stringify(Array.from({ length: 6 }, () => ({ message: "x".repeat(900 * 1024) })));
    const plain = await send(receivers.datadogUrl, intake(receivers.datadogApiKey), big);
    expect(plain.status).toBe(413);
    expect(JSON.parse(plain.body)).toEqual({ errors: ["Request Entity Too Large"] });
    const zipped = await send(receivers.datadogUrl, { ...intake(receivers.datadogApiKey), "content-encoding": "gzip" }, gzipSync(big));
    expect(zipped.status).toBe(413);
    const small = await send(receivers.datadogUrl, { ...intake(receivers.datadogApiKey), "content-encoding": "gzip" }, gzipSync(JSON.stringify([entry(1)])));
    expect(small.status).toBe(202);
    expect(receivers.accepted("datadog")).toHaveLength(1);
  });

  it("accepts an entry over 1 MB truncated, as Datadog does", async () => {
    const response = await send(receivers.datadogUrl, intake(receivers.datadogApiKey), JSON.stringify([{ message: "y".repeat(1024 * 1024 + 10) }]));
    expect(response.status).toBe(202);
    const [accepted] = receivers.accepted("datadog");
    expect(accepted!.truncated).toBe(true);
    expect(accepted!.message).toHaveLength(1024 * 1024);
  });
});

describe("faults", () => {
  const splunkBody = JSON.stringify({ event: auditEvent(1) });
  const toSplunk = (extra: Partial<SafeRequest> = {}) =>
    send(receivers.splunkUrl, { authorization: `Splunk ${receivers.splunkToken}` }, splunkBody, extra).catch((e: unknown) => e);

  it("are served one per request, in order, and accept nothing", async () => {
    receivers.fail("splunk", { status: 503 }, { status: 429, retryAfter: 30 }, { reset: true }, { status: 403, body: "go away" }, { delayMs: 300 });
    const unavailable = await toSplunk();
    const limited = await toSplunk();
    const reset = await toSplunk();
    const forbidden = await toSplunk();
    const started = Date.now();
    const slow = await toSplunk();
    const slowMs = Date.now() - started;
    const normal = await toSplunk();

    expect(unavailable).toMatchObject({ status: 503 });
    expect(limited).toMatchObject({ status: 429, headers: { "retry-after": "30" } });
    expect(reset).toBeInstanceOf(DeliveryTransportError);
    expect((reset as DeliveryTransportError).kind).toBe("connection");
    expect(forbidden).toMatchObject({ status: 403, body: "go away" });
    expect(slow).toMatchObject({ status: 200 });
    expect(slowMs).toBeGreaterThanOrEqual(290);
    expect(normal).toMatchObject({ status: 200 });
    expect(receivers.attempts("splunk").map((a) => [a.status, a.outcome])).toEqual([
      [503, "answered"],
      [429, "answered"],
      [null, "reset"],
      [403, "answered"],
      [200, "answered"],
      [200, "answered"],
    ]);
    // Only the delayed request and the normal one were accepted.
    expect(receivers.accepted("splunk")).toHaveLength(2);
  });

  it("belong to their route only", async () => {
    receivers.fail("webhook", { status: 500 });
    expect(await toSplunk()).toMatchObject({ status: 200 });
    const secret = newWebhookSecret();
    const url = receivers.webhookEndpoint("ops", [secret]);
    const body = webhookBody(auditEvent(1));
    expect((await send(url, signed(body, [secret]), body)).status).toBe(500);
    expect((await send(url, signed(body, [secret]), body)).status).toBe(204);
  });

  it("can hang a request until the sender gives up, and close() still ends", async () => {
    receivers.fail("datadog", { hang: true });
    const error = await send(receivers.datadogUrl, { "content-type": "application/json", "dd-api-key": receivers.datadogApiKey }, "[]", {
      totalTimeoutMs: 300,
    }).catch((e: unknown) => e);
    expect((error as DeliveryTransportError).kind).toBe("timeout");
    expect(receivers.attempts("datadog")).toMatchObject([{ status: null, outcome: "hung" }]);
    receivers.fail("datadog", { hang: true });
    const pending = send(receivers.datadogUrl, { "content-type": "application/json", "dd-api-key": receivers.datadogApiKey }, "[]").catch((e: unknown) => e);
    await waitFor("the second request to arrive", () => receivers.attempts("datadog").length === 2);
    await receivers.close();
    expect(((await pending) as DeliveryTransportError).kind).toBe("connection");
  });
});
