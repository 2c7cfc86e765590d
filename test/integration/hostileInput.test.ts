import { sql } from "kysely";
import { createClient, type Client } from "graphql-ws";
import WebSocket from "ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MAX_INPUT_DEPTH } from "../../src/domain/wellFormedInput.ts";
import { withPlatform } from "../../src/store/db.ts";
import { registerSecret } from "../testkit/secrets.ts";
import { createTestApp, type SeededTenant, type TestApp } from "../testkit/testApp.ts";

// Input that PostgreSQL cannot store (a NUL, a lone surrogate) or that overflows the stack when it is
// serialized (JSON nested 10,000 deep) is refused as BAD_USER_INPUT naming the field, before anything
// touches it: over HTTP (POST, GET, batches) and graphql-ws, as variables and as document literals.
// A refusal stores nothing: the event log, the read tables and the idempotency keys stay as they were.

interface Answer {
  status?: number;
  data?: any;
  errors?: Array<{ message: string; extensions?: Record<string, any> }>;
}

let app: TestApp;
let tenant: SeededTenant;
let agentId: string;
let enrollmentKey: string;
const sockets = new Map<string, Client>();

const CREATE_AGENT = "mutation ($input: CreateAgentInput!) { createAgent(input: $input) { id name config } }";
const DISPATCH = "mutation ($input: DispatchTaskInput!) { dispatchTask(input: $input) { id payload } }";
const ENROLL = "mutation ($input: EnrollAgentInput!) { enrollAgent(input: $input) { agentId accessToken refreshToken } }";

const HOSTILE = { NUL: { value: "bad\u0000name", reason: "NUL_CHARACTER" }, "a lone surrogate": { value: "bad\ud800name", reason: "LONE_SURROGATE" } } as const;

const wsUrl = () => `${app.url.replace(/^http/, "ws")}/graphql`;

beforeAll(async () => {
  app = await createTestApp({ name: "hostile-input" });
  // Enterprise: no daily agent quota, so every operation reaches the point where the input matters.
  tenant = await app.seedTenant({ tier: "enterprise" });
  const agent = await app.gql(CREATE_AGENT, { input: { name: "worker", type: "bot" } }, { token: tenant.tokens.editor });
  expect(agent.errors, JSON.stringify(agent.errors)).toBeUndefined();
  agentId = agent.data.createAgent.id;
  const key = await app.gql("mutation { createEnrollmentKey(input: { reusable: true, maxUses: 100 }) { key } }", {}, { token: tenant.tokens.admin });
  expect(key.errors, JSON.stringify(key.errors)).toBeUndefined();
  enrollmentKey = key.data.createEnrollmentKey.key;
  registerSecret(enrollmentKey);
});
afterAll(async () => {
  await Promise.all([...sockets.values()].map((c) => c.dispose()));
  await app?.close();
});

/** What a refusal must leave unchanged: the whole log, the tenant's read tables, its idempotency keys, the key's uses. */
function snapshot() {
  return withPlatform(app.database.db, async (trx) => {
    const count = async (table: string, tenantOnly = true) =>
      Number(
        (
          await sql<{
            n: number;
          }>`select count(*)::int as n from ${sql.table(table)} ${tenantOnly ? sql`where tenant_id = ${tenant.tenantId}` : sql``}`.execute(trx)
        ).rows[0]!.n,
      );
    const uses = await sql<{ n: number }>`select coalesce(sum(uses), 0)::int as n from enrollment_keys where tenant_id = ${tenant.tenantId}`.execute(trx);
    return {
      events: await count("events", false),
      agents: await count("agents"),
      tasks: await count("tasks"),
      idempotencyKeys: await count("idempotency_keys"),
      enrollmentKeyUses: Number(uses.rows[0]!.n),
    };
  });
}

/** Runs `send`, expects one BAD_USER_INPUT naming `field` (HTTP 400 when over HTTP), and that nothing was stored. */
async function expectRefused(send: () => Promise<Answer>, expected: { field?: string; reason: string; status?: number | null }) {
  const before = await snapshot();
  const res = await send();
  expect(
    res.errors?.map((e) => e.extensions?.code),
    JSON.stringify(res.errors),
  ).toEqual(["BAD_USER_INPUT"]);
  const error = res.errors![0]!;
  expect(error.extensions).toMatchObject({ reason: expected.reason, ...(expected.field ? { field: expected.field } : {}) });
  // The message names the field, never the value.
  if (expected.field) expect(error.message).toContain(expected.field);
  expect(error.message.includes("\u0000") || !error.message.isWellFormed() || error.message.includes("bad")).toBe(false);
  // Over HTTP (graphql-ws has no status); GraphQL's own syntax errors keep Yoga's status (200 for application/json).
  if (res.status !== undefined && expected.status !== null) expect(res.status).toBe(expected.status ?? 400);
  expect(res.data ?? null).toBeNull();
  expect(await snapshot()).toEqual(before);
  return error;
}

async function post(body: string, headers: Record<string, string> = {}): Promise<Answer> {
  const res = await fetch(`${app.url}/graphql`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body });
  const answer = (await res.json()) as Answer | Answer[];
  return Array.isArray(answer)
    ? { status: res.status, errors: answer.flatMap((a) => a.errors ?? []), data: answer.some((a) => a.data) ? answer.map((a) => a.data) : null }
    : { status: res.status, ...answer };
}

const http = (token: string | undefined, query: string, variables?: Record<string, unknown>, headers: Record<string, string> = {}): Promise<Answer> =>
  app.gql(query, variables, { token, headers });

/** One graphql-ws connection per token, kept open across tests: a refused operation must not close it. */
function socketFor(token: string): Client {
  let c = sockets.get(token);
  if (!c) {
    c = createClient({ url: wsUrl(), webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${token}` }, retryAttempts: 0, lazy: true });
    sockets.set(token, c);
  }
  return c;
}

function ws(token: string, query: string, variables?: Record<string, unknown>, extensions?: Record<string, unknown>): Promise<Answer> {
  return new Promise((resolve, reject) => {
    let result: Answer = {};
    socketFor(token).subscribe(
      { query, variables, extensions },
      { next: (r) => (result = r as Answer), error: (e) => (Array.isArray(e) ? resolve({ errors: e }) : reject(e)), complete: () => resolve(result) },
    );
  });
}

/** A graphql-ws operation sent as raw text (a client's JSON.stringify cannot even write 10,000 levels). */
function wsRaw(token: string, payloadJson: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(wsUrl(), ["graphql-transport-ws"]);
    let result: Answer = {};
    socket.on("error", reject);
    socket.on("open", () => socket.send(JSON.stringify({ type: "connection_init", payload: { authorization: `Bearer ${token}` } })));
    socket.on("close", (code) => reject(new Error(`socket closed ${code}`)));
    socket.on("message", (data) => {
      const message = JSON.parse(data.toString()) as { type: string; payload?: any };
      if (message.type === "connection_ack") socket.send(`{"id":"1","type":"subscribe","payload":${payloadJson}}`);
      if (message.type === "next") result = message.payload;
      if (message.type === "error" || message.type === "complete") {
        socket.removeAllListeners("close");
        socket.close();
        resolve(message.type === "error" ? { errors: message.payload } : result);
      }
    });
  });
}

/** A JS value written as a GraphQL literal (keys must be GraphQL names). */
function literal(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(literal).join(", ")}]`;
  if (value && typeof value === "object")
    return `{${Object.entries(value)
      .map(([k, v]) => `${k}: ${literal(v)}`)
      .join(", ")}}`;
  return String(value);
}

/** `levels` objects nested in each other: {a: {a: ... {leaf: "ok"}}}. */
function nested(levels: number): Record<string, unknown> {
  let value: Record<string, unknown> = { leaf: "ok" };
  for (let i = 1; i < levels; i++) value = { a: value };
  return value;
}

/** JSON text of `levels` lists nested in each other, written without JSON.stringify. */
const deepList = (levels: number) => "[".repeat(levels) + "]".repeat(levels);

interface Target {
  name: string;
  /** The token over HTTP (enrollment needs none); over graphql-ws every connection has one. */
  token: () => string | undefined;
  asVariables(bad: string): { query: string; variables: Record<string, unknown>; field: string };
  /** GraphQL names (object keys in literals) cannot hold these characters, so a key has no literal case. */
  asLiteral?(bad: string): { query: string; field: string };
}

const TARGETS: Target[] = [
  {
    name: "an agent name",
    token: () => tenant.tokens.editor,
    asVariables: (bad) => ({ query: CREATE_AGENT, variables: { input: { name: bad, type: "bot" } }, field: "variables.input.name" }),
    asLiteral: (bad) => ({ query: `mutation { createAgent(input: { name: ${literal(bad)}, type: "bot" }) { id } }`, field: "createAgent.input.name" }),
  },
  {
    name: "a config key",
    token: () => tenant.tokens.editor,
    asVariables: (bad) => ({
      query: CREATE_AGENT,
      variables: { input: { name: "cfg", type: "bot", config: { fine: 1, [`key-${bad}`]: 1 } } },
      field: "variables.input.config",
    }),
  },
  {
    name: "a config value",
    token: () => tenant.tokens.editor,
    asVariables: (bad) => ({
      query: CREATE_AGENT,
      variables: { input: { name: "cfg", type: "bot", config: { nested: { value: bad } } } },
      field: "variables.input.config.nested.value",
    }),
    asLiteral: (bad) => ({
      query: `mutation { createAgent(input: { name: "cfg", type: "bot", config: { nested: { value: ${literal(bad)} } } }) { id } }`,
      field: "createAgent.input.config.nested.value",
    }),
  },
  {
    name: "a task payload",
    token: () => tenant.tokens.editor,
    asVariables: (bad) => ({
      query: DISPATCH,
      variables: { input: { agentId, kind: "run", payload: { items: ["fine", bad] } } },
      field: "variables.input.payload.items[1]",
    }),
    asLiteral: (bad) => ({
      query: `mutation { dispatchTask(input: { agentId: "${agentId}", kind: "run", payload: { items: ["fine", ${literal(bad)}] } }) { id } }`,
      field: "dispatchTask.input.payload.items[1]",
    }),
  },
  {
    name: "an enrollment host name",
    token: () => undefined,
    asVariables: (bad) => ({
      query: ENROLL,
      variables: { input: { key: enrollmentKey, hostname: bad, os: "linux", arch: "x64", agentVersion: "1.0.0" } },
      field: "variables.input.hostname",
    }),
    asLiteral: (bad) => ({
      query: `mutation { enrollAgent(input: { key: "${enrollmentKey}", hostname: ${literal(bad)}, os: "linux", arch: "x64", agentVersion: "1.0.0" }) { agentId } }`,
      field: "enrollAgent.input.hostname",
    }),
  },
];

describe.each([
  ["HTTP", (target: Target, query: string, variables?: Record<string, unknown>) => http(target.token(), query, variables)],
  ["graphql-ws", (target: Target, query: string, variables?: Record<string, unknown>) => ws(target.token() ?? tenant.tokens.viewer, query, variables)],
] as const)("over %s", (_transport, send) => {
  describe.each(TARGETS.map((t) => [t.name, t] as const))("%s", (_name, target) => {
    for (const [what, bad] of Object.entries(HOSTILE)) {
      it(`with ${what}, as a variable: BAD_USER_INPUT naming the field, nothing stored`, async () => {
        const { query, variables, field } = target.asVariables(bad.value);
        await expectRefused(() => send(target, query, variables), { field, reason: bad.reason });
      });
    }
    if (target.asLiteral) {
      it("with a NUL written in the document (an escape, a raw character, a block string): BAD_USER_INPUT naming the argument", async () => {
        const { query, field } = target.asLiteral!("bad\u0000name");
        await expectRefused(() => send(target, query), { field, reason: "NUL_CHARACTER" });
        await expectRefused(() => send(target, query.replace("bad\\u0000name", "bad\u0000name")), { field, reason: "NUL_CHARACTER" });
        await expectRefused(() => send(target, query.replace('"bad\\u0000name"', '"""bad\u0000name"""')), { field, reason: "NUL_CHARACTER" });
      });
      it("with a lone surrogate written in the document: graphql-js's lexer refuses it (an escape or a raw character), nothing stored", async () => {
        const { query } = target.asLiteral!("bad\ud800name");
        await expectRefused(() => send(target, query), { reason: "GRAPHQL_PARSE_FAILED", status: null });
        await expectRefused(() => send(target, query.replace("bad\\ud800name", "bad\ud800name")), { reason: "GRAPHQL_PARSE_FAILED", status: null });
      });
    }
  });

  it("a literal nested past the limit is refused with its path; one level less is stored", async () => {
    const target = TARGETS[0]!;
    const deep = nested(MAX_INPUT_DEPTH - 1);
    // The field's arguments are level 1, input 2, config 3: config may hold MAX - 2 levels.
    await expectRefused(() => send(target, `mutation { createAgent(input: { name: "deep", type: "bot", config: ${literal(deep)} }) { id } }`), {
      field: `createAgent.input.config${".a".repeat(MAX_INPUT_DEPTH - 2)}`,
      reason: "TOO_DEEP",
    });
    const allowed = nested(MAX_INPUT_DEPTH - 2);
    const res = await send(target, `mutation { createAgent(input: { name: "deep enough", type: "bot", config: ${literal(allowed)} }) { id config } }`);
    expect(res.errors, JSON.stringify(res.errors)).toBeUndefined();
    expect(res.data.createAgent.config).toEqual(allowed);
  });

  it("valid input with emoji (surrogate pairs, raw and escaped) and nesting up to the limit still works", async () => {
    const target = TARGETS[0]!;
    const config = { "emoji 😀": "ok 👍", list: ["🚀", { ключ: "значение 🤖" }], deep: nested(MAX_INPUT_DEPTH - 3) };
    const res = await send(target, CREATE_AGENT, { input: { name: "Build 🤖 bot", type: "bot", config } });
    expect(res.errors, JSON.stringify(res.errors)).toBeUndefined();
    expect(res.data.createAgent).toMatchObject({ name: "Build 🤖 bot", config });
    const escaped = await send(
      target,
      'mutation { createAgent(input: { name: "Escaped \\uD83E\\uDD16", type: "bot", config: { rocket: "\\u{1F680}" } }) { name config } }',
    );
    expect(escaped.errors, JSON.stringify(escaped.errors)).toBeUndefined();
    expect(escaped.data.createAgent).toEqual({ name: "Escaped 🤖", config: { rocket: "🚀" } });
    const enrolled = await send(TARGETS[4]!, ENROLL, { input: { key: enrollmentKey, hostname: "höst-🖥", os: "linux", arch: "x64", agentVersion: "1.0.0" } });
    expect(enrolled.errors, JSON.stringify(enrolled.errors)).toBeUndefined();
    registerSecret(enrolled.data.enrollAgent.accessToken);
    registerSecret(enrolled.data.enrollAgent.refreshToken);
  });
});

describe("JSON nested 10,000 levels deep", () => {
  const LEVELS = 10_000;
  const valid = '{"name":"deep","type":"bot"';

  it("in a config, with an Idempotency-Key: BAD_USER_INPUT at the level past the limit, nothing stored, no key kept", async () => {
    const body = `{"query":${JSON.stringify(CREATE_AGENT)},"variables":{"input":${valid},"config":{"a":${deepList(LEVELS)}}}}}`;
    // variables 1, input 2, config 3, config.a 4: the list at config.a + [0] x 29 is level 33.
    await expectRefused(() => post(body, { authorization: `Bearer ${tenant.tokens.editor}`, "idempotency-key": "deep-config-0001" }), {
      field: `variables.input.config.a${"[0]".repeat(MAX_INPUT_DEPTH - 3)}`,
      reason: "TOO_DEEP",
    });
  });

  it("in a task payload, with an Idempotency-Key", async () => {
    const body = `{"query":${JSON.stringify(DISPATCH)},"variables":{"input":{"agentId":"${agentId}","kind":"run","payload":{"a":${deepList(LEVELS)}}}}}`;
    await expectRefused(() => post(body, { authorization: `Bearer ${tenant.tokens.editor}`, "idempotency-key": "deep-payload-0001" }), {
      field: `variables.input.payload.a${"[0]".repeat(MAX_INPUT_DEPTH - 3)}`,
      reason: "TOO_DEEP",
    });
  });

  it("in a variable the operation does not even use, with an Idempotency-Key (the key's request hash serializes every variable)", async () => {
    const body = `{"query":${JSON.stringify(CREATE_AGENT)},"variables":{"input":${valid}},"junk":${deepList(LEVELS)}}}`;
    await expectRefused(() => post(body, { authorization: `Bearer ${tenant.tokens.editor}`, "idempotency-key": "deep-junk-0001" }), {
      field: `variables.junk${"[0]".repeat(MAX_INPUT_DEPTH - 1)}`,
      reason: "TOO_DEEP",
    });
  });

  it("in the variables over graphql-ws, with an Idempotency-Key in the extensions", async () => {
    const payload = `{"query":${JSON.stringify(CREATE_AGENT)},"variables":{"input":${valid},"config":{"a":${deepList(LEVELS)}}}},"extensions":{"idempotencyKey":"deep-ws-000001"}}`;
    await expectRefused(() => wsRaw(tenant.tokens.editor, payload), {
      field: `variables.input.config.a${"[0]".repeat(MAX_INPUT_DEPTH - 3)}`,
      reason: "TOO_DEEP",
    });
  });

  it("in the extensions", async () => {
    const body = `{"query":"{ me { subject } }","extensions":{"trace":${deepList(LEVELS)}}}`;
    await expectRefused(() => post(body, { authorization: `Bearer ${tenant.tokens.viewer}` }), {
      field: `extensions.trace${"[0]".repeat(MAX_INPUT_DEPTH - 1)}`,
      reason: "TOO_DEEP",
    });
  });

  it("nesting exactly at the limit, with an Idempotency-Key, is stored once and replayed", async () => {
    const config = nested(MAX_INPUT_DEPTH - 2);
    const headers = { "idempotency-key": "deep-enough-0001" };
    const first = await http(tenant.tokens.editor, CREATE_AGENT, { input: { name: "at the limit", type: "bot", config } }, headers);
    expect(first.errors, JSON.stringify(first.errors)).toBeUndefined();
    expect(first.data.createAgent.config).toEqual(config);
    const before = await snapshot();
    const again = await http(tenant.tokens.editor, CREATE_AGENT, { input: { name: "at the limit", type: "bot", config } }, headers);
    expect(again.data).toEqual(first.data);
    expect(await snapshot()).toEqual(before);
  });
});

describe("every way a request can carry input", () => {
  it("a batch with one bad operation is refused whole: the good one does not run either", async () => {
    const good = { query: CREATE_AGENT, variables: { input: { name: "batched-good", type: "bot" } } };
    const bad = { query: CREATE_AGENT, variables: { input: { name: "bad\u0000name", type: "bot" } } };
    await expectRefused(() => post(JSON.stringify([good, bad]), { authorization: `Bearer ${tenant.tokens.editor}` }), {
      field: "[1].variables.input.name",
      reason: "NUL_CHARACTER",
    });
  });

  it("a GET query's variables (a tag filter that reaches SQL)", async () => {
    const query = "query ($tag: String) { agents(first: 5, filter: { tag: $tag }) { pageInfo { hasNextPage } } }";
    for (const [, bad] of Object.entries(HOSTILE)) {
      const url = `${app.url}/graphql?${new URLSearchParams({ query, variables: JSON.stringify({ tag: bad.value }) })}`;
      await expectRefused(
        async () => {
          const res = await fetch(url, { headers: { authorization: `Bearer ${tenant.tokens.viewer}`, accept: "application/graphql-response+json" } });
          return { status: res.status, ...((await res.json()) as Answer) };
        },
        { field: "variables.tag", reason: bad.reason },
      );
    }
  });

  it("an operationName with a NUL", async () => {
    const body = JSON.stringify({ query: "query Me { me { subject } }", operationName: "Me\u0000" });
    await expectRefused(() => post(body, { authorization: `Bearer ${tenant.tokens.viewer}` }), { field: "operationName", reason: "NUL_CHARACTER" });
  });

  it("extensions with a lone surrogate, over HTTP and graphql-ws", async () => {
    const body = JSON.stringify({ query: "{ me { subject } }", extensions: { note: "bad\ud800name" } });
    await expectRefused(() => post(body, { authorization: `Bearer ${tenant.tokens.viewer}` }), { field: "extensions.note", reason: "LONE_SURROGATE" });
    await expectRefused(() => ws(tenant.tokens.viewer, "{ me { subject } }", undefined, { note: "bad\ud800name" }), {
      field: "extensions.note",
      reason: "LONE_SURROGATE",
    });
  });

  it("a variable's default value written in the document", async () => {
    const query = 'mutation ($config: JSON = { a: "bad\\u0000name" }) { createAgent(input: { name: "defaults", type: "bot", config: $config }) { id } }';
    await expectRefused(() => http(tenant.tokens.editor, query), { field: "variables.config.a", reason: "NUL_CHARACTER" });
  });

  it("an odd object key is named in the path without echoing a bad one", async () => {
    await expectRefused(
      () => http(tenant.tokens.editor, CREATE_AGENT, { input: { name: "keys", type: "bot", config: { "two words": { "key-\u0000": 1 } } } }),
      {
        field: 'variables.input.config["two words"]',
        reason: "NUL_CHARACTER",
      },
    );
  });
});

describe("a document nested deeper than the parser's stack (a raised GRAPHQL_MAX_TOKENS)", () => {
  let roomy: TestApp;
  let token: string;
  beforeAll(async () => {
    roomy = await createTestApp({ name: "hostile-input-tokens", env: { GRAPHQL_MAX_TOKENS: "1000000" } });
    token = (await roomy.seedTenant()).tokens.editor;
  });
  afterAll(() => roomy?.close());

  const query = `mutation { createAgent(input: { name: "deep", type: "bot", config: { a: ${deepList(20_000)} } }) { id } }`;

  it("is BAD_USER_INPUT over HTTP, not a stack overflow", async () => {
    // A refusal at parse is a GraphQL-over-HTTP "spec" error to Yoga: 400 for application/graphql-response+json (200 for application/json).
    const res = await roomy.gql(query, {}, { token, headers: { accept: "application/graphql-response+json" } });
    expect(res.status, JSON.stringify(res.errors)).toBe(400);
    expect(res.errors?.map((e) => e.extensions?.code)).toEqual(["BAD_USER_INPUT"]);
    expect(res.errors?.[0]?.extensions).toMatchObject({ field: "query", reason: "TOO_DEEP" });
  });

  it("and over graphql-ws", async () => {
    const c = createClient({
      url: `${roomy.url.replace(/^http/, "ws")}/graphql`,
      webSocketImpl: WebSocket,
      connectionParams: { authorization: `Bearer ${token}` },
      retryAttempts: 0,
      lazy: true,
    });
    try {
      const res = await new Promise<Answer>((resolve, reject) => {
        let result: Answer = {};
        c.subscribe(
          { query },
          { next: (r) => (result = r as Answer), error: (e) => (Array.isArray(e) ? resolve({ errors: e }) : reject(e)), complete: () => resolve(result) },
        );
      });
      expect(res.errors?.map((e) => e.extensions?.code)).toEqual(["BAD_USER_INPUT"]);
      // websocket.ts keeps the whole refusal of a parse, as HTTP does.
      expect(res.errors?.[0]?.extensions).toMatchObject({ field: "query", reason: "TOO_DEEP" });
    } finally {
      await c.dispose();
    }
  });
});

describe("input that Keyplane shortens before storing it", () => {
  // 99 characters and an emoji: a plain slice(0, 100) cuts the emoji's surrogate pair in half, and the
  // lone half cannot be stored (the cross-tenant probe's access.denied event was lost).
  const long = `${"a".repeat(99)}\u{1F600}`;

  it("keeps a cross-tenant probe's security event when the id it names is cut", async () => {
    const before = await snapshot();
    const res = await app.gql("query ($id: ID!) { tenant(id: $id) { id } }", { id: long }, { token: tenant.tokens.viewer });
    expect(res.errors?.[0]?.extensions?.code).toBe("NOT_FOUND");
    const denied = await withPlatform(app.database.db, (trx) =>
      trx
        .selectFrom("events")
        .select(["event_type", "data"])
        .where("tenant_id", "=", tenant.tenantId)
        .orderBy("tenant_seq", "desc")
        .limit(1)
        .executeTakeFirstOrThrow(),
    );
    expect(denied.event_type).toBe("access.denied");
    expect((denied.data as { details: { requested: string } }).details.requested).toBe("a".repeat(99));
    expect((await snapshot()).events).toBe(before.events + 1);
  });

  it("deletes a token policy whose long name is cut between a surrogate pair", async () => {
    const res = await app.gql("mutation ($n: String!) { deleteTokenPolicy(name: $n) }", { n: `${"p".repeat(62)}\u{1F600}` }, { token: tenant.tokens.admin });
    expect(res.errors?.map((e) => e.extensions?.code) ?? []).not.toContain("INTERNAL_SERVER_ERROR");
  });
});
