import { randomBytes, randomUUID } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { buildSchema, graphql, GraphQLError, type GraphQLFieldResolver, type GraphQLSchema } from "graphql";
import { useServer } from "graphql-ws/use/ws";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { keepCommandLog, scratchDirectory } from "../testkit/scratch.ts";
import { WebSocketServer, type WebSocket } from "ws";
import { classifyDisconnect, backoffDelay, DEFAULT_WORKER_TIMING } from "../../src/referenceAgent/worker.ts";
import { parseAgentRunArgs, runAgentRun } from "../../src/referenceAgent/run.ts";
import { runTask, unknownKindMessage } from "../../src/referenceAgent/taskKinds.ts";
import { ApiError } from "../../src/referenceAgent/keyplaneApi.ts";
import { USAGE } from "../../src/cli/main.ts";
import { loadConfig } from "../../src/config.ts";
import { killKeyplaneProcesses, logLines, runKeyplane, spawnKeyplane, type CliResult, type KeyplaneProcess } from "../testkit/keyplaneCli.ts";
import { freePort } from "../testkit/providerWorld.ts";
import { registerSecret } from "../testkit/secrets.ts";
import { killServedProcesses, serveProcess, type Served } from "../testkit/servedProcess.ts";
import { waitFor } from "../testkit/waitFor.ts";

// `keyplane agent run`, the reference agent. What its operator sees: it enrolls once and keeps a 0600
// credential, never logs a token or the key, tells a bad configuration (2) from a refusal (3) from an
// outage (4), and stops cleanly on SIGTERM. What Keyplane sees: every task dispatched to it is claimed
// once, run, and reported, across reconnects, token expiry and server restarts.
//
// Two servers: a scripted Keyplane in this process (the contract, with outages and refusals on demand),
// and the real one (`node bin/keyplane.mjs serve` on a temp data dir), restarted mid-run.

const scratchDir = scratchDirectory("keyplane-agent-");
const freshDir = scratchDir.fresh;
const keepLog = (name: string, text: string) => keepCommandLog("agent", name, text);

const mode = (file: string) => statSync(file).mode & 0o777;
const readJson = (file: string) => JSON.parse(readFileSync(file, "utf8")) as Record<string, any>;

// ------------------------------------------------------------------------------------------------
// A scripted Keyplane: the agent contract over HTTP and graphql-ws, in memory.

const CONTRACT = `
  scalar JSON
  input EnrollAgentInput { key: String!, hostname: String!, os: String!, arch: String!, agentVersion: String! }
  type EnrolledAgent { agentId: ID!, tenantId: ID!, accessToken: String!, refreshToken: String!, expiresAt: String!, refreshExpiresAt: String }
  type Session { accessToken: String!, refreshToken: String!, expiresAt: String!, refreshExpiresAt: String }
  input AgentFactsInput { hostname: String, os: String, arch: String, agentVersion: String, uptimeSeconds: Int }
  input AgentHeartbeatInput { status: String!, facts: AgentFactsInput }
  type Presence { agentId: ID!, connection: String!, lastSeenAt: String! }
  type Task { id: ID!, kind: String!, payload: JSON, status: String!, timeoutSeconds: Int, dispatchedAt: String }
  type TaskRef { id: ID! }
  type Query { pendingTasks(first: Int!): [Task!]! }
  type Mutation {
    enrollAgent(input: EnrollAgentInput!): EnrolledAgent!
    refreshSession(refreshToken: String!): Session!
    agentHeartbeat(input: AgentHeartbeatInput!): Presence!
    claimTask(id: ID!): Task!
    reportTaskProgress(id: ID!, progress: JSON, message: String): TaskRef!
    completeTask(id: ID!, result: JSON!): Task!
    failTask(id: ID!, error: String!): Task!
  }
  type IdentityEvent { type: String!, data: JSON, occurredAt: String! }
  type Subscription { agentTasks: Task!, identityEvents(after: String): IdentityEvent! }
`;

interface FakeTask {
  id: string;
  agentId: string;
  kind: string;
  payload: unknown;
  status: "pending" | "claimed" | "completed" | "failed";
  timeoutSeconds: number;
  dispatchedAt: string;
  result?: unknown;
  error?: string;
  progress: Array<{ progress: unknown; message: string | null }>;
  claims: number;
  reports: number;
}

interface Ctx {
  agentId: string | null;
  token: string | null;
}

const refuse = (code: string, message: string) => new GraphQLError(message, { extensions: { code } });

class FakeKeyplane {
  port = 0;
  /** Enrollment keys still usable (single use). */
  readonly keys = new Set<string>();
  readonly tasks = new Map<string, FakeTask>();
  readonly heartbeats: Array<{ agentId: string; input: any }> = [];
  /** Operation names as they arrived (HTTP and WebSocket). */
  readonly operations: string[] = [];
  /** Access tokens live this long. */
  accessTtlMs = 3_600_000;
  /** Operation name -> error code the next calls get (counted down). */
  readonly failures = new Map<string, { code: string; times: number }>();
  /** Answer completeTask/failTask with a 503 while true. */
  refuseReports = false;
  /** Send every pending task on subscribe (the contract); off to prove the poll finds them. */
  replayOnSubscribe = true;
  private readonly access = new Map<string, { agentId: string; expiresAt: number; family: string }>();
  private readonly refresh = new Map<string, { agentId: string; family: string; spent: boolean }>();
  private readonly deadFamilies = new Set<string>();
  private readonly agents = new Map<string, { family: string }>();
  private readonly subscribers = new Map<string, Set<(t: FakeTask) => void>>();
  private readonly sockets = new Set<Socket>();
  private readonly wsClients = new Set<WebSocket>();
  private http?: Server;
  private wss?: WebSocketServer;
  private readonly schema: GraphQLSchema;
  private readonly idempotent = new Map<string, unknown>();

  constructor() {
    this.schema = buildSchema(CONTRACT);
    const field = (type: "Query" | "Mutation" | "Subscription", name: string) => {
      const t = type === "Query" ? this.schema.getQueryType() : type === "Mutation" ? this.schema.getMutationType() : this.schema.getSubscriptionType();
      return t!.getFields()[name]!;
    };
    const resolvers: Record<string, GraphQLFieldResolver<unknown, Ctx & { idempotencyKey?: string }, any>> = {
      pendingTasks: (_r, { first }, ctx) =>
        this.agentOf(ctx) && [...this.tasks.values()].filter((t) => t.agentId === ctx.agentId && t.status === "pending").slice(0, first),
      enrollAgent: (_r, { input }) => this.enroll(input),
      refreshSession: (_r, { refreshToken }) => this.refreshPair(refreshToken),
      agentHeartbeat: (_r, { input }, ctx) => {
        const agentId = this.agentOf(ctx);
        this.heartbeats.push({ agentId, input });
        return { agentId, connection: "online", lastSeenAt: new Date().toISOString() };
      },
      claimTask: (_r, { id }, ctx) => {
        const task = this.ownTask(ctx, id);
        if (task.status !== "pending") throw refuse("CONFLICT", `task ${id} is ${task.status}`);
        task.status = "claimed";
        task.claims++;
        return task;
      },
      reportTaskProgress: (_r, { id, progress, message }, ctx) => {
        const task = this.ownTask(ctx, id);
        task.progress.push({ progress, message: message ?? null });
        return { id };
      },
      completeTask: (_r, { id, result }, ctx) => this.finish(ctx, id, { status: "completed", result }),
      failTask: (_r, { id, error }, ctx) => this.finish(ctx, id, { status: "failed", error }),
    };
    for (const [name, resolve] of Object.entries(resolvers)) {
      const type = name === "pendingTasks" ? "Query" : "Mutation";
      const f = field(type, name);
      f.resolve = (root, args, ctx: Ctx & { idempotencyKey?: string }, info) => {
        const failure = this.failures.get(name);
        if (failure && failure.times > 0) {
          failure.times--;
          throw refuse(failure.code, `scripted ${failure.code}`);
        }
        // Idempotency-Key: the same key gets the first answer again.
        const key = ctx.idempotencyKey ? `${ctx.agentId}:${ctx.idempotencyKey}` : undefined;
        if (key && this.idempotent.has(key)) return this.idempotent.get(key);
        const answer = resolve(root, args, ctx, info);
        if (key) this.idempotent.set(key, answer);
        return answer;
      };
    }
    const sub = field("Subscription", "agentTasks");
    sub.subscribe = (_root, _args, ctx: Ctx) => this.stream(this.agentOf(ctx));
    sub.resolve = (task: FakeTask) => task;
    const identity = field("Subscription", "identityEvents");
    identity.subscribe = (_root, _args, ctx: Ctx) => this.identityStream(this.agentOf(ctx));
    identity.resolve = (event: unknown) => event;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(port = 0): Promise<void> {
    const http = createServer((req, res) => void this.onRequest(req, res));
    http.on("connection", (socket) => {
      this.sockets.add(socket);
      socket.on("close", () => this.sockets.delete(socket));
    });
    const wss = new WebSocketServer({ noServer: true });
    http.on("upgrade", (req, socket, head) => {
      if (!req.url?.startsWith("/graphql")) return socket.destroy();
      wss.handleUpgrade(req, socket, head, (ws) => {
        this.wsClients.add(ws);
        ws.on("close", () => this.wsClients.delete(ws));
        wss.emit("connection", ws, req);
      });
    });
    useServer<{ authorization?: string }, { ctx?: Ctx }>(
      {
        schema: this.schema,
        onConnect: (ctx) => {
          const token = /^Bearer (.+)$/.exec(ctx.connectionParams?.authorization ?? "")?.[1];
          if (!token) {
            ctx.extra.socket.close(4401, "Unauthorized");
            return false;
          }
          const session = this.access.get(token);
          if (!session || session.expiresAt <= Date.now() || this.deadFamilies.has(session.family)) return false; // 4403 Forbidden
          ctx.extra.ctx = { agentId: session.agentId, token };
          const timer = setTimeout(() => ctx.extra.socket.close(4403, "Token expired"), session.expiresAt - Date.now());
          ctx.extra.socket.once("close", () => clearTimeout(timer));
          return true;
        },
        context: (ctx) => ctx.extra.ctx ?? { agentId: null, token: null },
        onSubscribe: (_ctx, _id, payload) => {
          this.operations.push(`ws:${payload.operationName ?? "anonymous"}`);
        },
      },
      wss,
    );
    await new Promise<void>((resolve) => http.listen(port, "127.0.0.1", resolve));
    this.port = (http.address() as AddressInfo).port;
    this.http = http;
    this.wss = wss;
  }

  /** As a Keyplane process going away: sockets closed 1001, nothing listening until start(). */
  async stop(): Promise<void> {
    for (const ws of this.wsClients) ws.close(1001, "Going away");
    for (const ws of this.wsClients) ws.terminate();
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.wss?.close(() => resolve()) ?? resolve());
    await new Promise<void>((resolve) => this.http?.close(() => resolve()) ?? resolve());
  }

  /** A network blip: every WebSocket dropped without a close frame. */
  dropConnections(): void {
    for (const ws of this.wsClients) ws.terminate();
  }

  get connections(): number {
    return this.wsClients.size;
  }

  issueKey(): string {
    const key = `kpe_${randomBytes(5).toString("hex")}_${randomBytes(32).toString("base64url")}`;
    registerSecret(key);
    this.keys.add(key);
    return key;
  }

  /** Revokes the agent's session: access and refresh tokens stop working. */
  revoke(agentId: string): void {
    const agent = this.agents.get(agentId);
    if (agent) this.deadFamilies.add(agent.family);
    for (const ws of this.wsClients) ws.close(4403, "Forbidden");
  }

  dispatch(agentId: string, kind: string, payload: unknown, timeoutSeconds = 30): FakeTask {
    const task: FakeTask = {
      id: randomUUID(),
      agentId,
      kind,
      payload,
      status: "pending",
      timeoutSeconds,
      dispatchedAt: new Date().toISOString(),
      progress: [],
      claims: 0,
      reports: 0,
    };
    this.tasks.set(task.id, task);
    for (const push of this.subscribers.get(agentId) ?? []) push(task);
    return task;
  }

  /** Sends a task again on every subscription, whatever its status (a server that redelivers too much). */
  redeliver(task: FakeTask, status: FakeTask["status"] = "pending"): void {
    for (const push of this.subscribers.get(task.agentId) ?? []) push({ ...task, status });
  }

  onlyAgent(): string {
    const [agentId] = [...this.agents.keys()];
    if (!agentId) throw new Error("no agent enrolled");
    return agentId;
  }

  private async onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== "POST" || req.url !== "/graphql") {
      res.writeHead(404).end();
      return;
    }
    let body = "";
    for await (const chunk of req) body += chunk;
    const { query, variables } = JSON.parse(body) as { query: string; variables?: Record<string, unknown> };
    const name = /(?:query|mutation|subscription)\s+(\w+)/.exec(query)?.[1] ?? "anonymous";
    this.operations.push(`http:${name}`);
    if (this.refuseReports && (name === "CompleteTask" || name === "FailTask")) {
      res.writeHead(503, { "content-type": "text/plain" }).end("busy");
      return;
    }
    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? "")?.[1] ?? null;
    let ctx: Ctx & { idempotencyKey?: string } = { agentId: null, token: null };
    if (token) {
      const session = this.access.get(token);
      if (!session || session.expiresAt <= Date.now() || this.deadFamilies.has(session.family)) {
        res
          .writeHead(401, { "content-type": "application/json" })
          .end(JSON.stringify({ errors: [{ message: "invalid or expired access token", extensions: { code: "UNAUTHENTICATED" } }] }));
        return;
      }
      ctx = { agentId: session.agentId, token };
    }
    const key = req.headers["idempotency-key"];
    if (typeof key === "string") ctx.idempotencyKey = key;
    const result = await graphql({ schema: this.schema, source: query, variableValues: variables, contextValue: ctx });
    const unauthenticated = result.errors?.some((e) => e.extensions?.code === "UNAUTHENTICATED");
    res.writeHead(unauthenticated ? 401 : 200, { "content-type": "application/json" }).end(JSON.stringify(result));
  }

  private agentOf(ctx: Ctx): string {
    if (!ctx.agentId) throw refuse("UNAUTHENTICATED", "authentication required");
    return ctx.agentId;
  }

  private ownTask(ctx: Ctx, id: string): FakeTask {
    const agentId = this.agentOf(ctx);
    const task = this.tasks.get(id);
    if (!task || task.agentId !== agentId) throw refuse("NOT_FOUND", "task not found");
    return task;
  }

  private finish(ctx: Ctx, id: string, outcome: { status: "completed"; result: unknown } | { status: "failed"; error: string }): FakeTask {
    const task = this.ownTask(ctx, id);
    if (task.status !== "claimed") throw refuse("CONFLICT", `task ${id} is ${task.status}`);
    Object.assign(task, outcome);
    task.reports++;
    return task;
  }

  private enroll(input: { key: string }): unknown {
    if (!this.keys.delete(input.key)) throw refuse("UNAUTHENTICATED", "invalid enrollment key");
    const agentId = randomUUID();
    const family = randomUUID();
    this.agents.set(agentId, { family });
    return { agentId, tenantId: "default", ...this.mint(agentId, family) };
  }

  private refreshPair(refreshToken: string): unknown {
    const entry = this.refresh.get(refreshToken);
    if (!entry || this.deadFamilies.has(entry.family)) throw refuse("UNAUTHENTICATED", "invalid session");
    if (entry.spent) {
      this.deadFamilies.add(entry.family);
      throw refuse("UNAUTHENTICATED", "invalid session");
    }
    entry.spent = true;
    return this.mint(entry.agentId, entry.family);
  }

  private mint(agentId: string, family: string) {
    const accessToken = `kpa_${randomBytes(24).toString("base64url")}`;
    const refreshToken = `kpr_${randomBytes(24).toString("base64url")}`;
    registerSecret(accessToken);
    registerSecret(refreshToken);
    const expiresAt = Date.now() + this.accessTtlMs;
    this.access.set(accessToken, { agentId, expiresAt, family });
    this.refresh.set(refreshToken, { agentId, family, spent: false });
    return { accessToken, refreshToken, expiresAt: new Date(expiresAt).toISOString(), refreshExpiresAt: new Date(Date.now() + 86_400_000).toISOString() };
  }

  private readonly identityListeners = new Map<string, Set<(event: unknown) => void>>();

  /** Whether the agent listens to its identity events now. */
  hearsIdentityEvents(agentId: string): boolean {
    return (this.identityListeners.get(agentId)?.size ?? 0) > 0;
  }

  /** An identity.* event of the agent's own, as identityEvents delivers it. */
  identityEvent(agentId: string, type: string, data: Record<string, unknown>): void {
    for (const push of this.identityListeners.get(agentId) ?? []) push({ type, data, occurredAt: new Date().toISOString() });
  }

  private async *identityStream(agentId: string): AsyncGenerator<unknown> {
    const queue: unknown[] = [];
    let wake: (() => void) | null = null;
    const push = (event: unknown) => {
      queue.push(event);
      wake?.();
    };
    let set = this.identityListeners.get(agentId);
    if (!set) this.identityListeners.set(agentId, (set = new Set()));
    set.add(push);
    try {
      for (;;) {
        while (queue.length) yield queue.shift();
        await new Promise<void>((resolve) => (wake = resolve));
        wake = null;
      }
    } finally {
      set.delete(push);
    }
  }

  private async *stream(agentId: string): AsyncGenerator<FakeTask> {
    const queue: FakeTask[] = [];
    let wake: (() => void) | null = null;
    const push = (task: FakeTask) => {
      queue.push(task);
      wake?.();
    };
    let set = this.subscribers.get(agentId);
    if (!set) this.subscribers.set(agentId, (set = new Set()));
    set.add(push);
    try {
      if (this.replayOnSubscribe) for (const task of this.tasks.values()) if (task.agentId === agentId && task.status === "pending") queue.push(task);
      for (;;) {
        while (queue.length) yield queue.shift()!;
        await new Promise<void>((resolve) => (wake = resolve));
        wake = null;
      }
    } finally {
      set.delete(push);
    }
  }
}

// ------------------------------------------------------------------------------------------------
// Running the agent: in this process (runAgentRun, stopped through a signal) or as bin/keyplane.mjs.

const FAST = ["--heartbeat-seconds", "0.5", "--poll-seconds", "1", "--reconnect-max-seconds", "0.5"];

interface InProcessAgent {
  done: Promise<number>;
  err(): string;
  stop(): Promise<number>;
}

function startAgent(args: string[], env: Record<string, string> = {}): InProcessAgent {
  let err = "";
  const controller = new AbortController();
  const config = loadConfig({ NODE_ENV: "test", LOG_LEVEL: "debug", ...env });
  const done = runAgentRun(args, config, { out: (s) => void (err += `stdout: ${s}`), err: (s) => void (err += s) }, { signal: controller.signal }).finally(() =>
    keepLog("in-process", err),
  );
  return {
    done,
    err: () => err,
    stop: async () => {
      controller.abort();
      return done;
    },
  };
}

const running: InProcessAgent[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((a) => a.stop().catch(() => 1)));
});

function agent(args: string[], env?: Record<string, string>): InProcessAgent {
  const a = startAgent(args, env);
  running.push(a);
  return a;
}

// The commands' stderr (and the agent's stdout) is kept for the secret scan: no token or key in it.

function cli(args: string[], env: Record<string, string> = { NODE_ENV: "test", LOG_LEVEL: "info" }): Promise<CliResult> {
  return runKeyplane(args, env, { command: "agent", name: "cli" });
}

afterAll(async () => {
  await killKeyplaneProcesses();
  await killServedProcesses();
});

/** bin/keyplane.mjs agent run …, as an operator (or a container) runs it; at debug level, so the log shows what it did. */
function agentProcess(args: string[], env: Record<string, string> = {}): KeyplaneProcess {
  return spawnKeyplane(
    ["agent", "run", ...args],
    { HOME: process.env.HOME ?? tmpdir(), LOG_LEVEL: "debug", ...env },
    { log: { command: "agent", name: "process", streams: "both" } },
  );
}

async function exitOf(p: KeyplaneProcess, timeoutMs = 20_000): Promise<number | null> {
  const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`agent still running after ${timeoutMs} ms:\n${p.err()}`)), timeoutMs));
  return (await Promise.race([p.exited, timeout])).code;
}

/** A local HTTP service for http-check tasks. */
async function checkTarget(): Promise<{ url: string; close(): Promise<void>; requests: string[] }> {
  const requests: string[] = [];
  const hanging = new Set<ServerResponse>();
  const server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    const url = new URL(req.url ?? "/", "http://x").pathname;
    if (url === "/ok") return res.writeHead(200).end("fine");
    if (url === "/created") return res.writeHead(201).end();
    if (url === "/broken") return res.writeHead(500).end("broken");
    if (url === "/moved") return res.writeHead(301, { location: "/ok" }).end();
    if (url === "/hang") return void hanging.add(res);
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    close: async () => {
      for (const res of hanging) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

// ------------------------------------------------------------------------------------------------

describe("keyplane agent run: usage and configuration (exit 2)", () => {
  it.each([
    { argv: ["agent"], message: "agent needs a command: run or link-github" },
    { argv: ["agent", "walk"], message: "unknown agent command: walk" },
    { argv: ["agent", "run"], message: "agent run needs --server" },
    { argv: ["agent", "run", "--server", "keyplane:4000"], message: "--server is an http(s) URL (got 'keyplane:4000')" },
    { argv: ["agent", "run", "--server", "ftp://keyplane"], message: "--server is an http(s) URL" },
    { argv: ["agent", "run", "--server", "https://user:pw@keyplane"], message: "--server must not carry credentials" },
    {
      argv: ["agent", "run", "--server", "http://k", "--heartbeat-seconds", "soon"],
      message: "--heartbeat-seconds is a positive number up to 86400 (got 'soon')",
    },
    { argv: ["agent", "run", "--server", "http://k", "--heartbeat-seconds", "0"], message: "--heartbeat-seconds is a positive number" },
    { argv: ["agent", "run", "--server", "http://k", "--concurrency", "2.5"], message: "--concurrency is a positive whole number up to 64 (got '2.5')" },
    { argv: ["agent", "run", "--server", "http://k", "--key", "kpe_abcdefgh12_x", "--key-file", "/k"], message: "--key and --key-file are alternatives" },
    { argv: ["agent", "run", "--server", "http://k", "--colour"], message: "Unknown option '--colour'" },
    { argv: ["agent", "run", "--server", "http://k", "extra"], message: "Unexpected argument 'extra'" },
    { argv: ["agent", "link-github", "--app", "no such app"], message: "--app is the name of a GitHub App configured on Keyplane (got 'no such app')" },
    { argv: ["agent", "link-github", "--server", "ftp://keyplane"], message: "--server is an http(s) URL" },
    { argv: ["agent", "link-github", "--wait"], message: "Unknown option '--wait'" },
  ])("$argv.1 $argv.2 $argv.3 $argv.4 $argv.5 → 2: $message", async ({ argv, message }) => {
    const { code, out, err } = await cli(argv);
    expect(code).toBe(2);
    expect(out).toBe("");
    expect(err).toContain(message);
    expect(err).toContain(USAGE);
  });

  it("a malformed --key is refused without echoing it", async () => {
    const secretish = "not-a-key-but-maybe-a-password-9f8e7d";
    const { code, err } = await cli(["agent", "run", "--server", "http://k", "--key", secretish]);
    expect(code).toBe(2);
    expect(err).toContain("--key is an enrollment key: kpe_ followed by its secret");
    expect(err).not.toContain(secretish);
  });

  it("parses the defaults: state dir ./.keyplane-agent, 30 s heartbeats, a /graphql endpoint, retrying forever", () => {
    const options = parseAgentRunArgs(["--server", "https://keyplane.example.com/"]);
    expect(options).toMatchObject({ server: "https://keyplane.example.com/graphql", stateDir: ".keyplane-agent", exitOnUnreachable: false, concurrency: 4 });
    expect(options.timing).toEqual(DEFAULT_WORKER_TIMING);
    expect(options.timing.heartbeatMs).toBe(30_000);
    expect(parseAgentRunArgs(["--server", "http://k:4000/graphql", "--heartbeat-seconds", "5"]).timing.heartbeatMs).toBe(5_000);
  });

  it("no credential and no key: 2, naming what to do", async () => {
    const stateDir = freshDir();
    const { code, err } = await cli(["agent", "run", "--server", "http://127.0.0.1:9", "--state-dir", stateDir]);
    expect(code).toBe(2);
    expect(logLines(err).at(-1)).toMatchObject({
      level: "error",
      msg: `no credential in ${stateDir}: enroll the agent once with --key (or --key-file) and an enrollment key (kpe_…)`,
    });
  });

  it("agent link-github without an enrolled agent in --state-dir: 2, naming what to do", async () => {
    const stateDir = freshDir();
    const { code, out, err } = await cli(["agent", "link-github", "--state-dir", stateDir]);
    expect(code).toBe(2);
    expect(out).toBe("");
    expect(err).toBe(
      `keyplane agent link-github: no credential in ${stateDir}: enroll the agent first (keyplane agent run --key kpe_… --state-dir ${stateDir})\n`,
    );
  });

  it("a state dir that is a file, or a credential.json that is not one: 2", async () => {
    const file = path.join(freshDir(), "not-a-dir");
    writeFileSync(file, "x");
    const asFile = await cli(["agent", "run", "--server", "http://127.0.0.1:9", "--state-dir", file]);
    expect(asFile.code).toBe(2);
    expect(asFile.err).toContain(`--state-dir is not a directory: ${file}`);

    const stateDir = freshDir();
    writeFileSync(path.join(stateDir, "credential.json"), "{ half");
    const broken = await cli(["agent", "run", "--server", "http://127.0.0.1:9", "--state-dir", stateDir]);
    expect(broken.code).toBe(2);
    expect(broken.err).toContain(`${path.join(stateDir, "credential.json")} is not JSON; remove it and enroll again with --key`);
  });
});

describe("keyplane agent run: the pieces", () => {
  it("backs off exponentially from 1 s to 30 s, jittered between half and all of it", () => {
    const timing = DEFAULT_WORKER_TIMING;
    expect([1, 2, 3, 4, 5, 6, 7, 20].map((n) => backoffDelay(n, timing, () => 0.999999))).toEqual([1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
    expect(backoffDelay(1, timing, () => 0)).toBe(500);
    expect(backoffDelay(9, timing, () => 0)).toBe(15000);
  });

  it("tells a refused token (4401, 4403, UNAUTHENTICATED) from an outage", () => {
    expect(classifyDisconnect({ code: 4403, reason: "Token expired" })).toEqual({ auth: true, reason: "closed with 4403 Token expired" });
    expect(classifyDisconnect({ code: 4401, reason: "Unauthorized" }).auth).toBe(true);
    expect(classifyDisconnect({ code: 1001, reason: "Going away" })).toEqual({ auth: false, reason: "closed with 1001 Going away" });
    expect(classifyDisconnect([{ message: "authentication required", extensions: { code: "UNAUTHENTICATED" } }]).auth).toBe(true);
    expect(classifyDisconnect({ type: "error", message: "connect ECONNREFUSED 127.0.0.1:9", error: { code: "ECONNREFUSED" } })).toEqual({
      auth: false,
      reason: "connect ECONNREFUSED 127.0.0.1:9",
    });
  });

  it("runs echo and http-check, fails unknown kinds and honours timeoutSeconds", async () => {
    const target = await checkTarget();
    const closed = await freePort();
    const stop = new AbortController();
    const run = (kind: string, payload: unknown, timeoutSeconds: number | null = 10) =>
      runTask({ id: "t", kind, payload, status: "pending", timeoutSeconds, dispatchedAt: null }, { stop: stop.signal, progress: () => {} });
    try {
      expect(await run("echo", { hello: ["world", 1] })).toEqual({ outcome: "completed", result: { hello: ["world", 1] } });
      expect(await run("echo", "text")).toEqual({ outcome: "completed", result: "text" });
      expect(await run("http-check", { url: `${target.url}/ok` })).toMatchObject({
        outcome: "completed",
        result: { status: 200, ok: true, durationMs: expect.any(Number) },
      });
      expect(await run("http-check", { url: `${target.url}/broken` })).toMatchObject({ outcome: "completed", result: { status: 500, ok: false } });
      expect(await run("http-check", { url: `${target.url}/broken`, expectStatus: 500 })).toMatchObject({
        outcome: "completed",
        result: { status: 500, ok: true },
      });
      expect(await run("http-check", { url: `${target.url}/moved` })).toMatchObject({ outcome: "completed", result: { status: 301, ok: false } });
      expect(await run("http-check", { url: `${target.url}/created`, method: "HEAD" })).toMatchObject({
        outcome: "completed",
        result: { status: 201, ok: true },
      });
      expect(target.requests).toContain("HEAD /created");
      expect(await run("http-check", { url: `${target.url}/hang?token=sekrit`, timeoutMs: 200 })).toEqual({
        outcome: "failed",
        error: `http-check GET ${target.url}/hang: no answer within 200 ms`,
      });
      expect(await run("http-check", { url: `${target.url}/hang` }, 1)).toEqual({ outcome: "failed", error: "timed out after 1 s (timeoutSeconds)" });
      expect(await run("http-check", { url: `http://127.0.0.1:${closed}/` })).toEqual({
        outcome: "failed",
        error: `http-check GET http://127.0.0.1:${closed}/: request failed (ECONNREFUSED)`,
      });
      expect(await run("http-check", { url: "file:///etc/passwd" })).toEqual({
        outcome: "failed",
        error: "invalid http-check payload: url must be an http(s) URL",
      });
      expect(await run("http-check", { url: `${target.url}/ok`, method: "POST" })).toEqual({
        outcome: "failed",
        error: "invalid http-check payload: method must be GET or HEAD",
      });
      expect(await run("http-check", { url: `${target.url}/ok`, expectStatus: 2000 })).toEqual({
        outcome: "failed",
        error: "invalid http-check payload: expectStatus must be an HTTP status (100-599)",
      });
      expect(await run("http-check", "http://x")).toMatchObject({
        outcome: "failed",
        error: expect.stringContaining("invalid http-check payload: expected an object"),
      });
      expect(await run("shell", { cmd: "rm -rf /" })).toEqual({
        outcome: "failed",
        error: "unknown task kind: shell (this agent runs: echo, http-check, github-fork, github-commit, github-pull-request, github-contribute)",
      });
      expect(unknownKindMessage("x")).toBe(
        "unknown task kind: x (this agent runs: echo, http-check, github-fork, github-commit, github-pull-request, github-contribute)",
      );
      stop.abort();
      expect(await run("echo", {})).toEqual({ outcome: "failed", error: "the agent stopped before the task finished" });
    } finally {
      await target.close();
    }
  });
});

describe("keyplane agent run: the GitHub task kinds (Keyplane acts; the agent asks)", () => {
  /** A stand-in for Keyplane's API: answers per field, records what was asked, in order. */
  function stubKeyplane(answer: (field: string, input: any, call: number) => unknown) {
    const calls: Array<{ field: string; input: any; idempotencyKey?: string }> = [];
    const keyplane = async <T>(query: string, variables: Record<string, unknown>, options: { idempotencyKey?: string } = {}): Promise<T> => {
      const field = /\{\s*(github\w+)\(/.exec(query)![1]!;
      calls.push({ field, input: variables.input, idempotencyKey: options.idempotencyKey });
      const value = answer(field, variables.input, calls.length);
      if (value instanceof Error) throw value;
      return { [field]: value } as T;
    };
    return { keyplane, calls };
  }
  const progress: Array<{ progress: any; message?: string }> = [];
  const run = (kind: string, payload: unknown, keyplane?: Parameters<typeof runTask>[1]["keyplane"]) =>
    runTask(
      { id: "t", kind, payload, status: "pending", timeoutSeconds: 10, dispatchedAt: null },
      { stop: new AbortController().signal, progress: (p, message) => void progress.push({ progress: p, message }), keyplane },
    );
  const FORK = {
    repository: "up/project",
    fork: "molty/project",
    url: "https://github.test/molty/project",
    owner: "molty",
    defaultBranch: "main",
    via: "identity",
    actedAs: "molty",
  };
  const commitOf = (n: number) => ({
    repository: "molty/project",
    branch: "b",
    createdFrom: null,
    path: "p",
    commitSha: String(n).repeat(40),
    via: "identity",
    actedAs: "molty",
  });
  const PULL = {
    repository: "up/project",
    number: 7,
    url: "https://github.test/up/project/pull/7",
    head: "molty:b",
    base: "main",
    via: "identity",
    actedAs: "molty",
  };

  it("github-contribute: forks, commits each file to the branch of the fork (the first from base), opens the pull request from owner:branch, reporting each step", async () => {
    progress.length = 0;
    const { keyplane, calls } = stubKeyplane((field, _input, n) => (field === "githubFork" ? FORK : field === "githubCommitFile" ? commitOf(n) : PULL));
    const outcome = await run(
      "github-contribute",
      {
        repository: "up/project",
        branch: "b",
        files: [
          { path: "a.md", content: "A" },
          { path: "docs/b.md", content: "" },
        ],
        message: "m",
        title: "t",
        base: "dev",
        app: "rex",
      },
      keyplane,
    );
    expect(outcome).toEqual({
      outcome: "completed",
      result: { fork: "molty/project", branch: "b", commits: ["2".repeat(40), "3".repeat(40)], pullRequest: { number: 7, url: PULL.url }, actedAs: "molty" },
    });
    expect(calls.map((c) => [c.field, c.input])).toEqual([
      ["githubFork", { repository: "up/project", app: "rex" }],
      ["githubCommitFile", { repository: "molty/project", branch: "b", fromBranch: "dev", path: "a.md", content: "A", message: "m", app: "rex" }],
      ["githubCommitFile", { repository: "molty/project", branch: "b", path: "docs/b.md", content: "", message: "m", app: "rex" }],
      ["githubCreatePullRequest", { repository: "up/project", head: "molty:b", base: "dev", title: "t", app: "rex" }],
    ]);
    // Each step has an Idempotency-Key of its own: a retry is answered, not done twice.
    expect(new Set(calls.map((c) => c.idempotencyKey)).size).toBe(4);
    expect(progress.map((p) => p.progress.step)).toEqual(["forking", "committing", "committing", "opening"]);
  });

  it("Keyplane's refusal is the task's error, as Keyplane said it; a fork GitHub is still making is waited for; no answer is tried again", async () => {
    const forbidden = stubKeyplane(
      () => new ApiError("refused", "agent:x has no linked GitHub identity for the app default: link one (startIdentityLink) (FORBIDDEN)", "FORBIDDEN"),
    );
    expect(await run("github-fork", { repository: "up/project" }, forbidden.keyplane)).toEqual({
      outcome: "failed",
      error: "github-fork: githubFork refused: agent:x has no linked GitHub identity for the app default: link one (startIdentityLink) (FORBIDDEN)",
    });
    // The second commit is refused by GitHub: the error says what was done before.
    const exists = stubKeyplane((field, _input, n) =>
      field === "githubFork"
        ? FORK
        : n === 3
          ? new ApiError("refused", "github answered conflict_sha (HTTP 422) (PROVIDER_ERROR)", "PROVIDER_ERROR")
          : commitOf(n),
    );
    const payload = {
      repository: "up/project",
      branch: "b",
      files: [
        { path: "a", content: "" },
        { path: "b", content: "" },
      ],
      message: "m",
      title: "t",
    };
    expect(await run("github-contribute", payload, exists.keyplane)).toEqual({
      outcome: "failed",
      error: "github-contribute: githubCommitFile refused: github answered conflict_sha (HTTP 422) (PROVIDER_ERROR) (after 1 commit(s) to molty/project:b)",
    });
    // Right after the fork, GitHub may not have the fork's content yet (404): the first commit waits for it.
    const young = stubKeyplane((field, _input, n) =>
      field === "githubFork"
        ? FORK
        : field === "githubCommitFile" && n === 2
          ? new ApiError("refused", "github answered not_found (HTTP 404) (PROVIDER_ERROR)", "PROVIDER_ERROR")
          : field === "githubCommitFile"
            ? commitOf(n)
            : PULL,
    );
    expect(await run("github-contribute", { ...payload, files: [{ path: "a", content: "" }] }, young.keyplane)).toMatchObject({ outcome: "completed" });
    expect(young.calls.map((c) => c.field)).toEqual(["githubFork", "githubCommitFile", "githubCommitFile", "githubCreatePullRequest"]);
    expect(young.calls[1]!.idempotencyKey).toBe(young.calls[2]!.idempotencyKey);
    const unreachable = stubKeyplane((_field, _input, n) => (n === 1 ? new ApiError("unavailable", "Keyplane did not answer (timeout)", "timeout") : PULL));
    expect(await run("github-pull-request", { repository: "up/project", head: "molty:b", base: "main", title: "t" }, unreachable.keyplane)).toEqual({
      outcome: "completed",
      result: PULL,
    });
  });

  it("refuses payloads that cannot be right before asking Keyplane, saying what is wrong", async () => {
    const { keyplane, calls } = stubKeyplane(() => FORK);
    const files = (n: number) => Array.from({ length: n }, (_, i) => ({ path: `f${i}`, content: "" }));
    const base = { repository: "up/project", branch: "b", message: "m", title: "t" };
    const cases: Array<[string, unknown, string]> = [
      ["github-fork", "up/project", "invalid github-fork payload: expected an object { repository: owner/name, organization?, app?, as? }"],
      ["github-fork", { repository: "no-slash" }, "invalid github-fork payload: repository must be owner/name"],
      ["github-fork", { repository: "up/project", as: "root" }, "invalid github-fork payload: as must be identity or installation"],
      [
        "github-commit",
        { repository: "o/r", branch: "b", path: "p", message: "m" },
        "invalid github-commit payload: content must be a string (the file's new content)",
      ],
      [
        "github-commit",
        { repository: "o/r", branch: "", path: "p", content: "", message: "m" },
        "invalid github-commit payload: branch must be a non-empty string",
      ],
      [
        "github-pull-request",
        { repository: "o/r", base: "main", title: "t" },
        "invalid github-pull-request payload: head must be a branch, or owner:branch of a fork",
      ],
      ["github-contribute", { ...base, files: [] }, "invalid github-contribute payload: files must be a list of 1 to 20 { path, content }"],
      ["github-contribute", { ...base, files: files(21) }, "invalid github-contribute payload: files must be a list of 1 to 20 { path, content }"],
      [
        "github-contribute",
        { ...base, files: [{ path: "a" }] },
        "invalid github-contribute payload: files[0] must be { path: non-empty string, content: string }",
      ],
      [
        "github-contribute",
        {
          ...base,
          files: [
            { path: "a", content: "" },
            { path: "a", content: "x" },
          ],
        },
        'invalid github-contribute payload: files[1].path "a" is listed twice',
      ],
      ["github-contribute", { ...base, title: undefined, files: files(1) }, "invalid github-contribute payload: title must be a non-empty string"],
    ];
    for (const [kind, payload, error] of cases) expect(await run(kind, payload, keyplane), JSON.stringify(payload)).toEqual({ outcome: "failed", error });
    expect(calls).toEqual([]);
    // Outside keyplane agent run (no session to ask with): said, not crashed.
    expect(await run("github-fork", { repository: "up/project" })).toEqual({
      outcome: "failed",
      error: "github-fork needs Keyplane's API: it runs under keyplane agent run",
    });
  });
});

describe("keyplane agent run against a scripted Keyplane", () => {
  let kp: FakeKeyplane;
  beforeAll(async () => {
    kp = new FakeKeyplane();
    await kp.start();
  });
  afterAll(() => kp.stop());

  /** An enrolled agent in a fresh state dir, running in this process. */
  async function enrolled(extra: string[] = []): Promise<{ a: InProcessAgent; stateDir: string; agentId: string }> {
    const stateDir = path.join(freshDir(), "state");
    const a = agent(["--server", kp.url, "--key", kp.issueKey(), "--state-dir", stateDir, ...FAST, ...extra]);
    const credential = await waitFor(
      "credential.json",
      () => existsSync(path.join(stateDir, "credential.json")) && readJson(path.join(stateDir, "credential.json")),
      10_000,
      a.err,
    );
    await waitFor("the subscription", () => a.err().includes('"connected; subscribed to tasks"'), 10_000, a.err);
    return { a, stateDir, agentId: credential.agentId as string };
  }

  const settled = (task: FakeTask, a?: InProcessAgent) =>
    waitFor(`task ${task.kind} to finish`, () => (task.status === "completed" || task.status === "failed") && task, 15_000, a?.err);

  it("a bad key: exit 3 with a clear message, nothing written, the key never printed", async () => {
    const stateDir = freshDir();
    const key = `kpe_abcdefghij_${randomBytes(32).toString("base64url")}`;
    registerSecret(key);
    const a = startAgent(["--server", kp.url, "--key", key, "--state-dir", stateDir]);
    expect(await a.done).toBe(3);
    expect(logLines(a.err()).at(-1)).toMatchObject({
      level: "error",
      msg: "Keyplane refused the enrollment key: it is wrong, expired, revoked or used up; ask for a new one",
      code: "UNAUTHENTICATED",
    });
    expect(a.err()).not.toContain(key);
    expect(readdirSync(stateDir)).toEqual([]);
  });

  it("enrolls: credential.json 0600 without the key; heartbeats carry the host facts; a second run reuses the credential and ignores --key", async () => {
    const key = kp.issueKey();
    const stateDir = path.join(freshDir(), "agent", "state");
    const first = agent(["--server", kp.url, "--key", key, "--state-dir", stateDir, ...FAST]);
    const file = path.join(stateDir, "credential.json");
    await waitFor("credential.json", () => existsSync(file), 10_000, first.err);
    expect(mode(file)).toBe(0o600);
    expect(mode(stateDir) & 0o077).toBe(0);
    const text = readFileSync(file, "utf8");
    expect(text).not.toContain(key);
    const credential = JSON.parse(text);
    expect(credential).toMatchObject({
      agentId: expect.any(String),
      tenantId: "default",
      accessToken: expect.stringMatching(/^kpa_/),
      refreshToken: expect.stringMatching(/^kpr_/),
      expiresAt: expect.any(String),
    });
    const beat = await waitFor("a heartbeat", () => kp.heartbeats.find((h) => h.agentId === credential.agentId), 10_000, first.err);
    expect(beat.input).toMatchObject({
      status: "ready",
      facts: { hostname: expect.any(String), os: process.platform, arch: process.arch, agentVersion: expect.any(String), uptimeSeconds: expect.any(Number) },
    });
    expect(await first.stop()).toBe(0);
    expect(existsSync(path.join(stateDir, "agent.pid"))).toBe(false);

    const enrollsBefore = kp.operations.filter((o) => o === "http:EnrollAgent").length;
    const second = agent(["--server", kp.url, "--key", kp.issueKey(), "--state-dir", stateDir, ...FAST]);
    await waitFor("the subscription", () => second.err().includes('"connected; subscribed to tasks"'), 10_000, second.err);
    expect(kp.operations.filter((o) => o === "http:EnrollAgent").length).toBe(enrollsBefore);
    expect(logLines(second.err()).find((l) => l.msg.startsWith("already enrolled"))).toMatchObject({
      level: "info",
      msg: "already enrolled; --key is ignored (remove credential.json to enroll again)",
    });
    expect(await second.stop()).toBe(0);
    const lines = logLines(first.err() + second.err());
    expect(lines.every((l) => !JSON.stringify(l).includes(credential.accessToken) && !JSON.stringify(l).includes(credential.refreshToken))).toBe(true);
  });

  it("a second agent on the same state dir: 2 (one credential, one process)", async () => {
    const { stateDir } = await enrolled();
    const second = agentProcess(["--server", kp.url, "--state-dir", stateDir]);
    expect(await exitOf(second)).toBe(2);
    expect(logLines(second.err()).at(-1)).toMatchObject({
      level: "error",
      msg: `another agent (process ${process.pid}) is running on --state-dir ${stateDir}; one credential serves one agent process`,
    });
  });

  it("runs echo, http-check and an unknown kind, and reports each result", async () => {
    const { a, agentId } = await enrolled();
    const target = await checkTarget();
    try {
      const echo = kp.dispatch(agentId, "echo", { greeting: "hello", n: [1, 2, 3] });
      const check = kp.dispatch(agentId, "http-check", { url: `${target.url}/ok`, expectStatus: 200 });
      const failing = kp.dispatch(agentId, "http-check", { url: `${target.url}/broken` });
      const unknown = kp.dispatch(agentId, "reboot", {});
      await settled(echo, a);
      expect(echo).toMatchObject({ status: "completed", result: { greeting: "hello", n: [1, 2, 3] }, claims: 1, reports: 1 });
      await settled(check, a);
      expect(check).toMatchObject({ status: "completed", result: { status: 200, ok: true, durationMs: expect.any(Number) } });
      expect(check.progress[0]).toEqual({ progress: { step: "requesting" }, message: `GET ${target.url}/ok` });
      await settled(failing, a);
      expect(failing).toMatchObject({ status: "completed", result: { status: 500, ok: false } });
      await settled(unknown, a);
      expect(unknown).toMatchObject({
        status: "failed",
        error: "unknown task kind: reboot (this agent runs: echo, http-check, github-fork, github-commit, github-pull-request, github-contribute)",
      });
    } finally {
      await target.close();
    }
    // The agent logs a completion once Keyplane has answered its completeTask: wait for the last one.
    await waitFor("three completions logged", () => logLines(a.err()).filter((l) => l.msg === "task completed").length >= 3, 10_000, a.err);
  });

  it("a task delivered twice (subscription and poll, or redelivered after it finished) runs once", async () => {
    const { a, agentId } = await enrolled();
    const task = kp.dispatch(agentId, "echo", { once: true });
    await settled(task, a);
    // Keyplane sends it again as if pending (a replay after a reconnect that raced the completion).
    kp.redeliver(task, "pending");
    await waitFor("the redelivery", () => a.err().includes(`"task already taken care of"`), 5_000, a.err);
    const after = kp.dispatch(agentId, "echo", { after: true });
    await settled(after, a);
    expect(task.claims).toBe(1);
    expect(task.reports).toBe(1);
  });

  it("finds pending tasks by polling when the subscription does not send them", async () => {
    kp.replayOnSubscribe = false;
    try {
      const stateDir = freshDir();
      const first = agent(["--server", kp.url, "--key", kp.issueKey(), "--state-dir", stateDir, ...FAST]);
      const agentId = (
        await waitFor(
          "credential",
          () => existsSync(path.join(stateDir, "credential.json")) && readJson(path.join(stateDir, "credential.json")),
          10_000,
          first.err,
        )
      ).agentId as string;
      await first.stop();
      // Dispatched while the agent is not running, and not replayed on subscribe: the poll after connect finds it.
      const task = kp.dispatch(agentId, "echo", { polled: true });
      const second = agent(["--server", kp.url, "--state-dir", stateDir, ...FAST]);
      await settled(task, second);
      expect(task).toMatchObject({ status: "completed", result: { polled: true } });
      expect(logLines(second.err()).find((l) => l.msg === "task received" && l.taskId === task.id)).toMatchObject({ via: "poll" });
    } finally {
      kp.replayOnSubscribe = true;
    }
  });

  it("reconnects after dropped connections and after a Keyplane restart, and misses no task dispatched meanwhile", async () => {
    const { a, agentId } = await enrolled();
    kp.dropConnections();
    await waitFor("a reconnect", () => logLines(a.err()).filter((l) => l.msg === "connected; subscribed to tasks").length >= 2, 10_000, a.err);
    const afterDrop = kp.dispatch(agentId, "echo", { afterDrop: true });
    await settled(afterDrop, a);

    const port = kp.port;
    await kp.stop();
    const whileDown = kp.dispatch(agentId, "echo", { whileDown: true });
    await waitFor("a failed reconnect", () => a.err().includes('"could not connect to Keyplane; retrying"'), 10_000, a.err);
    await kp.start(port);
    await settled(whileDown, a);
    expect(whileDown).toMatchObject({ status: "completed", result: { whileDown: true }, claims: 1 });
    const afterRestart = kp.dispatch(agentId, "echo", { afterRestart: true });
    await settled(afterRestart, a);
    expect(logLines(a.err()).find((l) => l.msg === "disconnected from Keyplane; reconnecting")).toMatchObject({
      level: "warn",
      reason: expect.any(String),
      retryInMs: expect.any(Number),
    });
  });

  it("keeps a result Keyplane cannot take yet, retries it, and delivers it after an agent restart", async () => {
    const { a, stateDir, agentId } = await enrolled();
    kp.refuseReports = true;
    try {
      const task = kp.dispatch(agentId, "echo", { kept: "for later" });
      await waitFor("the task to run", () => a.err().includes('"could not report the task\'s result; retrying"'), 10_000, a.err);
      const journal = readJson(path.join(stateDir, "tasks.json"));
      expect(mode(path.join(stateDir, "tasks.json"))).toBe(0o600);
      expect(journal.outbox).toEqual([expect.objectContaining({ taskId: task.id, outcome: "completed", result: { kept: "for later" } })]);
      expect(await a.stop()).toBe(0);
      expect(task.status).toBe("claimed");

      kp.refuseReports = false;
      const again = agent(["--server", kp.url, "--state-dir", stateDir, ...FAST]);
      await settled(task, again);
      expect(task).toMatchObject({ status: "completed", result: { kept: "for later" }, claims: 1, reports: 1 });
      await waitFor("the outbox to empty", () => readJson(path.join(stateDir, "tasks.json")).outbox.length === 0, 5_000, again.err);
      expect(readJson(path.join(stateDir, "tasks.json")).done).toContain(task.id);
    } finally {
      kp.refuseReports = false;
    }
  });

  it("skips a task another attempt claimed (CONFLICT) and retries a claim Keyplane could not answer", async () => {
    const { a, agentId } = await enrolled();
    kp.failures.set("claimTask", { code: "CONFLICT", times: 1 });
    const taken = kp.dispatch(agentId, "echo", { taken: true });
    await waitFor("the skip", () => a.err().includes('"task taken by another attempt or no longer pending; skipped"'), 10_000, a.err);
    expect(taken.status).toBe("pending");
    expect(taken.claims).toBe(0);

    kp.failures.set("claimTask", { code: "INTERNAL_SERVER_ERROR", times: 1 });
    const retried = kp.dispatch(agentId, "echo", { retried: true });
    await settled(retried, a);
    expect(retried.claims).toBe(1);
  });

  it("refreshes its token before it expires, stores the new pair atomically, and reconnects when the socket is closed for expiry", async () => {
    kp.accessTtlMs = 3_000;
    try {
      const { a, stateDir, agentId } = await enrolled();
      const file = path.join(stateDir, "credential.json");
      const firstToken = readJson(file).accessToken as string;
      await waitFor("a refresh", () => readJson(file).accessToken !== firstToken, 10_000, a.err);
      expect(mode(file)).toBe(0o600);
      await waitFor("a second refresh", () => logLines(a.err()).filter((l) => l.msg === "session refreshed").length >= 2, 10_000, a.err);
      const task = kp.dispatch(agentId, "echo", { fresh: true });
      await settled(task, a);
      expect(task.status).toBe("completed");
      // A write may be in flight (results are saved after each task); none may be left behind.
      await waitFor("no temporary state files", () => readdirSync(stateDir).filter((f) => f.endsWith(".tmp")).length === 0, 5_000);
    } finally {
      kp.accessTtlMs = 3_600_000;
    }
  });

  it("says in its log when its GitHub identity is linked, and warns when Keyplane says it must be linked again (identity.expiring)", async () => {
    const { a, agentId } = await enrolled();
    await waitFor("the identity events subscription", () => kp.hearsIdentityEvents(agentId), 10_000, a.err);
    kp.identityEvent(agentId, "identity.linked", { identityId: "i1", subject: `agent:${agentId}`, app: "default", login: "molty" });
    kp.identityEvent(agentId, "identity.expiring", {
      identityId: "i1",
      subject: `agent:${agentId}`,
      app: "default",
      login: "molty",
      reason: "refresh_token_expiring",
      refreshExpiresAt: "2030-01-02T00:00:00.000Z",
    });
    const warning = await waitFor(
      "the warning",
      () => logLines(a.err()).find((l) => l.level === "warn" && l.msg.startsWith("the agent's GitHub identity must be linked again")),
      10_000,
      a.err,
    );
    expect(warning).toMatchObject({
      msg: "the agent's GitHub identity must be linked again (keyplane agent link-github); until then GitHub tasks acting as it will fail",
      login: "molty",
      app: "default",
      reason: "refresh_token_expiring",
      refreshExpiresAt: "2030-01-02T00:00:00.000Z",
    });
    expect(logLines(a.err()).find((l) => l.msg === "GitHub identity linked")).toMatchObject({ level: "info", login: "molty", app: "default" });
    // The task subscription on the same connection goes on.
    const task = kp.dispatch(agentId, "echo", { still: "working" });
    expect(await settled(task, a)).toMatchObject({ status: "completed", result: { still: "working" } });
    expect(await a.stop()).toBe(0);
  });

  it("a revoked session: exit 3, telling the operator to enroll again", async () => {
    const { a, agentId, stateDir } = await enrolled();
    kp.revoke(agentId);
    expect(await a.done).toBe(3);
    const last = logLines(a.err()).at(-1)!;
    expect(last).toMatchObject({ level: "error", exitCode: 3 });
    expect(last.msg).toContain(`Enroll it again: remove ${stateDir}/credential.json and run with --key and a new enrollment key`);
  });

  it("--exit-on-unreachable: 4 after a bounded number of attempts, enrolling or not; without it, it keeps trying", async () => {
    const closed = await freePort();
    const nowhere = `http://127.0.0.1:${closed}`;
    const enrolling = startAgent([
      "--server",
      nowhere,
      "--key",
      kp.issueKey(),
      "--state-dir",
      freshDir(),
      "--exit-on-unreachable",
      "--reconnect-max-seconds",
      "0.05",
    ]);
    expect(await enrolling.done).toBe(4);
    expect(logLines(enrolling.err()).at(-1)!.msg).toBe(
      `Keyplane could not be reached after 5 attempts (Keyplane at ${nowhere} did not answer (network_error: ECONNREFUSED)); giving up (--exit-on-unreachable)`,
    );

    const { stateDir } = await enrolled();
    await running.pop()!.stop();
    const connecting = startAgent(["--server", nowhere, "--state-dir", stateDir, "--exit-on-unreachable", "--reconnect-max-seconds", "0.05"]);
    expect(await connecting.done).toBe(4);

    const patient = agent(["--server", nowhere, "--state-dir", stateDir, "--reconnect-max-seconds", "0.05"]);
    await waitFor(
      "ten attempts",
      () => logLines(patient.err()).filter((l) => l.msg === "could not connect to Keyplane; retrying").length >= 10,
      10_000,
      patient.err,
    );
    expect(await patient.stop()).toBe(0);
  });

  it("as a process: JSON lines on stderr, nothing on stdout, no token or key anywhere, exit 0 on SIGTERM", async () => {
    const stateDir = freshDir();
    const key = kp.issueKey();
    const p = agentProcess(["--server", kp.url, "--key", key, "--state-dir", stateDir, ...FAST]);
    await waitFor("the subscription", () => p.err().includes('"connected; subscribed to tasks"'), 30_000, p.err);
    const credential = readJson(path.join(stateDir, "credential.json"));
    const task = kp.dispatch(credential.agentId, "echo", { from: "a process" });
    await settled(task);
    p.child.kill("SIGTERM");
    expect(await exitOf(p)).toBe(0);
    expect(p.out()).toBe("");
    const lines = logLines(p.err());
    expect(lines.map((l) => l.msg)).toEqual(expect.arrayContaining(["enrolled", "task claimed", "task completed", "SIGTERM received, stopping", "stopped"]));
    for (const secret of [key, credential.accessToken, credential.refreshToken]) expect(p.err()).not.toContain(secret);
  });
});

// ------------------------------------------------------------------------------------------------
// The real Keyplane: `keyplane serve` on the embedded database, restarted mid-run.

/** On a fixed port: a restart on the same data dir must be found where the agent left it. */
const serve = (dataDir: string, port: number, env: Record<string, string> = {}) =>
  serveProcess("agent-e2e", { KEYPLANE_DATA_DIR: dataDir, LOG_LEVEL: "debug", NODE_ENV: "test", ...env }, { port });

async function gql(port: number, token: string, query: string, variables: Record<string, unknown> = {}): Promise<any> {
  const res = await fetch(`http://127.0.0.1:${port}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await res.json()) as { data?: any; errors?: Array<{ message: string }> };
  if (body.errors?.length) throw new Error(`${query.slice(0, 60)}…: ${JSON.stringify(body.errors)}`);
  return body.data;
}

describe("keyplane agent run against keyplane serve (restarted mid-run)", () => {
  let dataDir: string;
  let port: number;
  let server: Served;
  let admin: string;
  let editor: string;

  beforeAll(async () => {
    // A tenant, an admin (enrollment keys) and an editor (dispatch) made with the CLI before Keyplane serves.
    dataDir = freshDir();
    const env = { NODE_ENV: "test", LOG_LEVEL: "warn", KEYPLANE_DATA_DIR: dataDir };
    expect((await cli(["tenant", "create", "--id", "acme", "--name", "Acme"], env)).code).toBe(0);
    const mint = async (role: string, sub: string) => {
      const { code, out, err } = await cli(["token", "mint", "--tenant", "acme", "--role", role, "--sub", sub, "--ttl", "7200"], env);
      expect(code, err).toBe(0);
      const token = out.trim();
      registerSecret(token);
      return token;
    };
    admin = await mint("admin", "admin@acme.example");
    editor = await mint("editor", "dispatcher@acme.example");
    port = await freePort();
    server = await serve(dataDir, port);
  }, 120_000);

  afterAll(async () => {
    await server?.stop();
  });

  /** A new enrollment key (created by the admin), registered with the log scan. */
  async function enrollmentKey(): Promise<string> {
    const data = await gql(port, admin, `mutation { createEnrollmentKey(input: { description: "agent e2e", expiresIn: 3600 }) { key } }`);
    const key = data.createEnrollmentKey.key as string;
    registerSecret(key);
    return key;
  }

  async function dispatch(agentId: string, kind: string, payload: unknown, timeoutSeconds = 30): Promise<string> {
    const data = await gql(port, editor, `mutation ($input: DispatchTaskInput!) { dispatchTask(input: $input) { id status } }`, {
      input: { agentId, kind, payload, timeoutSeconds },
    });
    return data.dispatchTask.id as string;
  }

  async function finished(id: string, p?: KeyplaneProcess): Promise<{ status: string; result: unknown; error: string | null }> {
    return waitFor(
      `task ${id} to finish`,
      async () => {
        const { task } = await gql(port, editor, `query ($id: ID!) { task(id: $id) { id status result error } }`, { id });
        return task && ["completed", "failed", "timed_out"].includes(task.status) && task;
      },
      30_000,
      p?.err,
    );
  }

  it("a bad key: exit 3, nothing written", async () => {
    const stateDir = freshDir();
    const key = `kpe_abcdefghij_${randomBytes(32).toString("base64url")}`;
    registerSecret(key);
    const p = agentProcess(["--server", `http://127.0.0.1:${port}`, "--key", key, "--state-dir", stateDir]);
    expect(await exitOf(p)).toBe(3);
    expect(p.err()).toContain("Keyplane refused the enrollment key");
    expect(p.err()).not.toContain(key);
    expect(readdirSync(stateDir)).toEqual([]);
  });

  it("enrolls, runs echo, http-check and an unknown kind, keeps working across a Keyplane restart, and never logs a token", async () => {
    const stateDir = freshDir();
    const key = await enrollmentKey();
    const target = await checkTarget();
    const p = agentProcess(["--server", `http://127.0.0.1:${port}`, "--key", key, "--state-dir", stateDir, ...FAST]);
    try {
      await waitFor("the subscription", () => p.err().includes('"connected; subscribed to tasks"'), 30_000, p.err);
      const file = path.join(stateDir, "credential.json");
      expect(mode(file)).toBe(0o600);
      expect(readFileSync(file, "utf8")).not.toContain(key);
      const credential = readJson(file);
      registerSecret(credential.accessToken);
      registerSecret(credential.refreshToken);
      const agentId = credential.agentId as string;

      const echo = await finished(await dispatch(agentId, "echo", { hello: "world" }), p);
      expect(echo).toMatchObject({ status: "completed", result: { hello: "world" } });
      const check = await finished(await dispatch(agentId, "http-check", { url: `${target.url}/ok` }), p);
      expect(check).toMatchObject({ status: "completed", result: { status: 200, ok: true, durationMs: expect.any(Number) } });
      const unknown = await finished(await dispatch(agentId, "reboot", {}), p);
      expect(unknown).toMatchObject({
        status: "failed",
        error: "unknown task kind: reboot (this agent runs: echo, http-check, github-fork, github-commit, github-pull-request, github-contribute)",
      });

      // Keyplane restarts on the same data dir and port; the agent reconnects by itself.
      expect((await server.stop()).code).toBe(0);
      await waitFor("the agent to notice", () => p.err().includes('"disconnected from Keyplane; reconnecting"'), 15_000, p.err);
      server = await serve(dataDir, port);
      const connects = () => logLines(p.err()).filter((l) => l.msg === "connected; subscribed to tasks").length;
      await waitFor("the agent to reconnect", () => connects() >= 2, 30_000, p.err);
      const afterRestart = await finished(await dispatch(agentId, "echo", { after: "restart" }), p);
      expect(afterRestart).toMatchObject({ status: "completed", result: { after: "restart" } });

      p.child.kill("SIGTERM");
      expect(await exitOf(p)).toBe(0);
      expect(p.out()).toBe("");
      const now = readJson(file);
      for (const secret of [key, credential.accessToken, credential.refreshToken, now.accessToken, now.refreshToken]) expect(p.err()).not.toContain(secret);
      logLines(p.err());

      // A task dispatched while the agent is stopped is waiting for it when it starts again (same credential, no key).
      const waiting = await dispatch(agentId, "echo", { waited: true });
      const again = agentProcess(["--server", `http://127.0.0.1:${port}`, "--state-dir", stateDir, ...FAST]);
      try {
        expect(await finished(waiting, again)).toMatchObject({ status: "completed", result: { waited: true } });
        expect(again.err()).not.toContain('"enrolled"');
        again.child.kill("SIGTERM");
        expect(await exitOf(again)).toBe(0);
        const last = readJson(file);
        for (const secret of [key, now.accessToken, now.refreshToken, last.accessToken, last.refreshToken]) expect(again.err()).not.toContain(secret);
      } finally {
        again.child.kill("SIGKILL");
      }
    } finally {
      p.child.kill("SIGKILL");
      await target.close();
    }
  });

  it("with 6-second agent tokens: rotates its refresh token again and again (never presenting a spent one) and rides out sockets closed at expiry", async () => {
    await server.stop();
    server = await serve(dataDir, port, { SERVICE_TOKEN_TTL_SECONDS: "6" });

    const stateDir = freshDir();
    const p = agentProcess(["--server", `http://127.0.0.1:${port}`, "--key", await enrollmentKey(), "--state-dir", stateDir, ...FAST]);
    try {
      await waitFor("the subscription", () => p.err().includes('"connected; subscribed to tasks"'), 30_000, p.err);
      const file = path.join(stateDir, "credential.json");
      const seen = new Set<string>();
      const refreshes = () => logLines(p.err()).filter((l) => l.msg === "session refreshed").length;
      await waitFor(
        "three refreshes and a socket closed for expiry",
        () => {
          const { accessToken, refreshToken } = readJson(file);
          for (const secret of [accessToken, refreshToken]) {
            if (!seen.has(secret)) registerSecret(secret);
            seen.add(secret);
          }
          return (
            refreshes() >= 3 &&
            logLines(p.err()).some(
              (l) => l.msg === "the connection's token expired; reconnecting with the current one" && l.reason === "closed with 4403 Token expired",
            )
          );
        },
        30_000,
        p.err,
      );
      expect(seen.size).toBeGreaterThanOrEqual(6);
      expect(mode(file)).toBe(0o600);
      const { agentId } = readJson(file);
      expect(await finished(await dispatch(agentId, "echo", { rotated: true }), p)).toMatchObject({ status: "completed", result: { rotated: true } });
      p.child.kill("SIGTERM");
      expect(await exitOf(p)).toBe(0);
      expect(logLines(p.err()).filter((l) => l.level === "error")).toEqual([]);
      for (const secret of seen) expect(p.err()).not.toContain(secret);
    } finally {
      p.child.kill("SIGKILL");
    }
  });
});
