import { randomUUID } from "node:crypto";
import { sql } from "kysely";
import { createClient } from "graphql-ws";
import WebSocket from "ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rebuildProjections } from "../../src/app/rebuildProjections.ts";
import { taskNotifier } from "../../src/app/tasks/taskNotifier.ts";
import { AGENT_TASKS_POLL_MS } from "../../src/app/tasks/watchAgentTasks.ts";
import { timeOutTasks } from "../../src/app/tasks/timeOutTasks.ts";
import { openDatabase, withPlatform, type DatabaseHandle } from "../../src/store/db.ts";
import { enroll as enrollAgent, seedAgent } from "../testkit/fixtures.ts";
import { onPostgres } from "../testkit/testDatabase.ts";
import { createTestApp, type GraphQLResponse, type SeededTenant, type TestApp } from "../testkit/testApp.ts";
import { testClock } from "../testkit/testClock.ts";
import { waitFor } from "../testkit/waitFor.ts";

// Tasks: an editor dispatches work to one agent; the agent receives it (subscription or polling),
// claims it once, reports progress and finishes it; the deadline times it out. Agents are created and
// enrolled through the real API, and act with the credential enrollment gave them.

const TASK =
  "id agentId kind payload status timeoutSeconds dispatchedAt dispatchedBy claimedAt finishedAt deadlineAt progress progressMessage result error version";
const DISPATCH = `mutation ($input: DispatchTaskInput!) { dispatchTask(input: $input) { ${TASK} } }`;
const PENDING = `query ($first: Int!) { pendingTasks(first: $first) { ${TASK} } }`;
const CLAIM = `mutation ($id: ID!) { claimTask(id: $id) { ${TASK} } }`;
const PROGRESS = `mutation ($id: ID!, $progress: JSON, $message: String) { reportTaskProgress(id: $id, progress: $progress, message: $message) { ${TASK} } }`;
const COMPLETE = `mutation ($id: ID!, $result: JSON!) { completeTask(id: $id, result: $result) { ${TASK} } }`;
const FAIL = `mutation ($id: ID!, $error: String!) { failTask(id: $id, error: $error) { ${TASK} } }`;
const TASK_BY_ID = `query ($id: ID!) { task(id: $id) { ${TASK} } }`;
const TASKS = `query ($filter: TaskFilter, $first: Int!, $after: String) { tasks(filter: $filter, first: $first, after: $after) {
  edges { cursor node { id kind status agentId } } nodes { id } pageInfo { hasNextPage endCursor } } }`;
const AGENT_TASKS = "subscription { agentTasks { id agentId kind payload status } }";

interface EnrolledAgent {
  agentId: string;
  token: string;
}

let app: TestApp;
// Deadlines are judged by the server's clock: a test moves it past one rather than waiting for it.
const clock = testClock();
let tenant: SeededTenant;
let other: SeededTenant;
let agentA: EnrolledAgent;
let agentB: EnrolledAgent;
let foreignAgent: EnrolledAgent;

beforeAll(async () => {
  // The suite runs the sweeps itself (timeOutTasks): a background one landing between a deadline and
  // the test's own sweeps would take their work, and hide a missing check.
  app = await createTestApp({ name: "tasks", now: clock.now, env: { AGENT_SWEEP_INTERVAL_SECONDS: "3600" } });
  // Enterprise: this suite creates more agents than the free tier allows per day.
  tenant = await app.seedTenant({ tier: "enterprise" });
  other = await app.seedTenant();
  agentA = await enroll(tenant);
  agentB = await enroll(tenant);
  foreignAgent = await enroll(other);
});
afterAll(async () => {
  await app?.close();
});

function ok<T = any>(res: GraphQLResponse<T>): T {
  expect(res.errors, JSON.stringify(res.errors)).toBeUndefined();
  return res.data;
}
const codeOf = (res: GraphQLResponse) => res.errors?.map((e) => e.extensions?.code);

/** A machine enrolls with a single-use key an admin created: a new agent and its own credential. */
async function enroll(t: SeededTenant, target: TestApp = app): Promise<EnrolledAgent> {
  const enrolled = await enrollAgent(target, t, { reusable: false });
  return { agentId: enrolled.agentId, token: enrolled.accessToken };
}

/** An agent that exists (a draft) and was never enrolled: a valid target no one polls. */
const createAgent = (t: SeededTenant): Promise<string> => seedAgent(app, t, { name: "Build box", type: "builder", tags: ["ci"] });

async function dispatch(agentId: string, input: Record<string, unknown> = {}, token = tenant.tokens.editor) {
  return app.gql(DISPATCH, { input: { agentId, kind: "echo", ...input } }, { token });
}
async function dispatched(agentId: string, input: Record<string, unknown> = {}, token = tenant.tokens.editor) {
  return ok(await dispatch(agentId, input, token)).dispatchTask;
}

async function auditOf(taskId: string, t: SeededTenant = tenant) {
  const res = await app.gql(
    "query ($streamId: String) { auditLog(first: 100, filter: { streamId: $streamId }) { edges { node { type data metadata } } } }",
    { streamId: taskId },
    { token: t.tokens.admin },
  );
  return ok(res).auditLog.edges.map((e: any) => e.node);
}

/**
 * Moves the server's clock past `deadlineAt` (an ISO time the server computed from it): what the
 * server does at the deadline is then asserted once. Polling the API for the outcome instead would
 * let the background sweep (every AGENT_SWEEP_INTERVAL_SECONDS) hide a missing check.
 */
const pastDeadline = (...tasks: Array<{ deadlineAt: string }>) => clock.advanceTo(Math.max(...tasks.map((t) => Date.parse(t.deadlineAt))) + 1);

describe("a task's life", () => {
  it("dispatch -> the agent polls it -> claim -> progress -> complete: each step an event, the task shows the result", async () => {
    const task = await dispatched(agentA.agentId, { kind: "echo", payload: { say: "hi", n: [1, 2] }, timeoutSeconds: 120 });
    expect(task).toMatchObject({
      agentId: agentA.agentId,
      kind: "echo",
      payload: { say: "hi", n: [1, 2] },
      status: "pending",
      timeoutSeconds: 120,
      dispatchedBy: `editor@${tenant.tenantId}`,
      claimedAt: null,
      finishedAt: null,
      version: 1,
    });
    expect(Date.parse(task.deadlineAt) - Date.parse(task.dispatchedAt)).toBeGreaterThan(119_000);
    expect(Date.parse(task.deadlineAt) - Date.parse(task.dispatchedAt)).toBeLessThanOrEqual(120_000);

    const polled = ok(await app.gql(PENDING, { first: 10 }, { token: agentA.token })).pendingTasks;
    expect(polled.map((t: any) => t.id)).toContain(task.id);

    const claimed = ok(await app.gql(CLAIM, { id: task.id }, { token: agentA.token })).claimTask;
    expect(claimed).toMatchObject({ id: task.id, status: "claimed", version: 2 });
    expect(claimed.claimedAt).toBeTruthy();
    expect(ok(await app.gql(PENDING, { first: 10 }, { token: agentA.token })).pendingTasks.map((t: any) => t.id)).not.toContain(task.id);

    const half = ok(await app.gql(PROGRESS, { id: task.id, progress: { done: 1, of: 2 }, message: "half way" }, { token: agentA.token })).reportTaskProgress;
    expect(half).toMatchObject({ status: "claimed", progress: { done: 1, of: 2 }, progressMessage: "half way" });
    // What a report leaves out keeps its last value.
    const later = ok(await app.gql(PROGRESS, { id: task.id, message: "almost" }, { token: agentA.token })).reportTaskProgress;
    expect(later).toMatchObject({ progress: { done: 1, of: 2 }, progressMessage: "almost" });

    expect((await app.gql(PROGRESS, { id: task.id }, { token: agentA.token })).errors?.[0]?.extensions).toMatchObject({
      code: "BAD_USER_INPUT",
      field: "progress",
    });
    const done = ok(await app.gql(COMPLETE, { id: task.id, result: { echoed: "hi" } }, { token: agentA.token })).completeTask;
    expect(done).toMatchObject({ status: "completed", result: { echoed: "hi" }, error: null, version: 5 });
    expect(Date.parse(done.finishedAt)).toBeGreaterThanOrEqual(Date.parse(done.claimedAt));
    expect(ok(await app.gql(TASK_BY_ID, { id: task.id }, { token: tenant.tokens.viewer })).task).toEqual(done);

    const events = await auditOf(task.id);
    expect(events.map((e: any) => e.type)).toEqual(["task.dispatched", "task.claimed", "task.progressed", "task.progressed", "task.completed"]);
    expect(events[0].data).toMatchObject({
      taskId: task.id,
      agentId: agentA.agentId,
      kind: "echo",
      payload: { say: "hi", n: [1, 2] },
      timeoutSeconds: 120,
      deadlineAt: task.deadlineAt,
    });
    expect(events[1].data).toEqual({ taskId: task.id, agentId: agentA.agentId });
    expect(events[3].data).toEqual({ taskId: task.id, message: "almost" });
    expect(events[4].data).toEqual({ taskId: task.id, result: { echoed: "hi" } });
    expect(events.map((e: any) => e.metadata.actor.subject)).toEqual([`editor@${tenant.tenantId}`, ...Array(4).fill(`agent:${agentA.agentId}`)]);

    // Finished is final.
    for (const res of [
      await app.gql(CLAIM, { id: task.id }, { token: agentA.token }),
      await app.gql(FAIL, { id: task.id, error: "late" }, { token: agentA.token }),
    ]) {
      expect(codeOf(res)).toEqual(["CONFLICT"]);
    }
  });

  it("a claimed task fails with the agent's error; completing, reporting or failing a pending one is CONFLICT", async () => {
    const task = await dispatched(agentA.agentId, { kind: "http-check" });
    expect(task.payload).toBeNull();
    expect(task.timeoutSeconds).toBe(300);
    for (const res of [
      await app.gql(COMPLETE, { id: task.id, result: {} }, { token: agentA.token }),
      await app.gql(PROGRESS, { id: task.id, message: "x" }, { token: agentA.token }),
      await app.gql(FAIL, { id: task.id, error: "x" }, { token: agentA.token }),
    ]) {
      expect(codeOf(res)).toEqual(["CONFLICT"]);
      expect(res.errors?.[0]?.extensions?.status).toBe("pending");
    }
    ok(await app.gql(CLAIM, { id: task.id }, { token: agentA.token }));
    const failed = ok(
      await app.gql(FAIL, { id: task.id, error: "http-check https://example.test: no answer within 5000 ms" }, { token: agentA.token }),
    ).failTask;
    expect(failed).toMatchObject({ status: "failed", error: "http-check https://example.test: no answer within 5000 ms", result: null });
    expect(failed.finishedAt).toBeTruthy();
    expect(codeOf(await app.gql(COMPLETE, { id: task.id, result: {} }, { token: agentA.token }))).toEqual(["CONFLICT"]);
    expect((await auditOf(task.id)).map((e: any) => e.type)).toEqual(["task.dispatched", "task.claimed", "task.failed"]);
  });

  it("two concurrent claims: exactly one wins, the others are CONFLICT and record nothing", async () => {
    const task = await dispatched(agentA.agentId);
    const results = await Promise.all(Array.from({ length: 5 }, () => app.gql(CLAIM, { id: task.id }, { token: agentA.token })));
    const won = results.filter((r) => !r.errors);
    expect(won).toHaveLength(1);
    expect(won[0]!.data.claimTask).toMatchObject({ status: "claimed", version: 2 });
    for (const lost of results.filter((r) => r.errors)) expect(codeOf(lost)).toEqual(["CONFLICT"]);
    expect((await auditOf(task.id)).map((e: any) => e.type)).toEqual(["task.dispatched", "task.claimed"]);
  });
});

describe("timeouts", () => {
  it("tasks past their deadline become timed_out (once, even with two sweeps at a time); the agent's steps after that are CONFLICT", async () => {
    const claimedOne = await dispatched(agentA.agentId, { timeoutSeconds: 1 });
    ok(await app.gql(CLAIM, { id: claimedOne.id }, { token: agentA.token }));
    const pendingOne = await dispatched(agentA.agentId, { timeoutSeconds: 1 });
    const patient = await dispatched(agentA.agentId, { timeoutSeconds: 300 });
    await pastDeadline(claimedOne, pendingOne);

    // Past its deadline, a pending task is no longer offered, even before a sweep.
    const offered = ok(await app.gql(PENDING, { first: 100 }, { token: agentA.token })).pendingTasks.map((t: any) => t.id);
    expect(offered).not.toContain(pendingOne.id);
    expect(offered).toContain(patient.id);

    const [first, second] = await Promise.all([timeOutTasks(app.kp.deps), timeOutTasks(app.kp.deps)]);
    expect(first + second).toBeGreaterThanOrEqual(2);
    expect(await timeOutTasks(app.kp.deps)).toBe(0);

    for (const [task, was] of [
      [claimedOne, "claimed"],
      [pendingOne, "pending"],
    ] as const) {
      const now = ok(await app.gql(TASK_BY_ID, { id: task.id }, { token: tenant.tokens.viewer })).task;
      expect(now.status).toBe("timed_out");
      expect(now.finishedAt).toBeTruthy();
      const events = await auditOf(task.id);
      expect(events.filter((e: any) => e.type === "task.timed_out")).toHaveLength(1);
      expect(events.at(-1)).toMatchObject({
        type: "task.timed_out",
        data: { taskId: task.id, status: was },
        metadata: { actor: { subject: "task-timeouts" } },
      });
    }
    const late = await app.gql(COMPLETE, { id: claimedOne.id, result: { too: "late" } }, { token: agentA.token });
    expect(codeOf(late)).toEqual(["CONFLICT"]);
    expect(late.errors?.[0]?.extensions?.status).toBe("timed_out");
    expect(codeOf(await app.gql(CLAIM, { id: pendingOne.id }, { token: agentA.token }))).toEqual(["CONFLICT"]);
    expect(ok(await app.gql(TASK_BY_ID, { id: patient.id }, { token: tenant.tokens.viewer })).task.status).toBe("pending");
  });

  it("an agent that acts after the deadline, before any sweep, gets CONFLICT and the timeout is recorded on the spot", async () => {
    const task = await dispatched(agentA.agentId, { timeoutSeconds: 1 });
    ok(await app.gql(CLAIM, { id: task.id }, { token: agentA.token }));
    await pastDeadline(task);
    const late = await app.gql(COMPLETE, { id: task.id, result: { too: "late" } }, { token: agentA.token });
    expect(codeOf(late)).toEqual(["CONFLICT"]);
    expect(ok(await app.gql(TASK_BY_ID, { id: task.id }, { token: tenant.tokens.viewer })).task).toMatchObject({ status: "timed_out", result: null });
    expect((await auditOf(task.id)).map((e: any) => e.type)).toEqual(["task.dispatched", "task.claimed", "task.timed_out"]);
  });
});

describe("who sees and does what", () => {
  it("another agent cannot see, claim or finish a task (NOT_FOUND); another tenant sees nothing", async () => {
    const task = await dispatched(agentA.agentId);
    expect(ok(await app.gql(PENDING, { first: 100 }, { token: agentB.token })).pendingTasks.map((t: any) => t.id)).not.toContain(task.id);
    for (const token of [agentB.token, foreignAgent.token]) {
      expect(codeOf(await app.gql(CLAIM, { id: task.id }, { token }))).toEqual(["NOT_FOUND"]);
      expect(codeOf(await app.gql(PROGRESS, { id: task.id, message: "mine now" }, { token }))).toEqual(["NOT_FOUND"]);
    }
    ok(await app.gql(CLAIM, { id: task.id }, { token: agentA.token }));
    for (const token of [agentB.token, foreignAgent.token]) {
      expect(codeOf(await app.gql(COMPLETE, { id: task.id, result: {} }, { token }))).toEqual(["NOT_FOUND"]);
      expect(codeOf(await app.gql(FAIL, { id: task.id, error: "no" }, { token }))).toEqual(["NOT_FOUND"]);
    }
    // An id that is no task at all looks the same.
    expect(codeOf(await app.gql(CLAIM, { id: randomUUID() }, { token: agentA.token }))).toEqual(["NOT_FOUND"]);
    expect(codeOf(await app.gql(CLAIM, { id: "not-a-uuid" }, { token: agentA.token }))).toEqual(["BAD_USER_INPUT"]);

    expect(ok(await app.gql(TASK_BY_ID, { id: task.id }, { token: other.tokens.admin })).task).toBeNull();
    expect(ok(await app.gql(TASKS, { first: 100 }, { token: other.tokens.admin })).tasks.nodes).toEqual([]);
    expect(ok(await app.gql(TASKS, { filter: { agentId: agentA.agentId }, first: 100 }, { token: other.tokens.admin })).tasks.nodes).toEqual([]);
    // Nor can it dispatch to this tenant's agent.
    expect(codeOf(await dispatch(agentA.agentId, {}, other.tokens.editor))).toEqual(["NOT_FOUND"]);
    expect((await auditOf(task.id)).map((e: any) => e.type)).toEqual(["task.dispatched", "task.claimed"]);
  });

  it("editors and admins dispatch; viewers, services and agents do not (FORBIDDEN); only an enrolled agent acts on tasks", async () => {
    expect(codeOf(await dispatch(agentA.agentId, {}, tenant.tokens.viewer))).toEqual(["FORBIDDEN"]);
    expect(codeOf(await dispatch(agentA.agentId, {}, tenant.tokens.service))).toEqual(["FORBIDDEN"]);
    expect(codeOf(await dispatch(agentA.agentId, {}, agentA.token))).toEqual(["FORBIDDEN"]);
    expect(codeOf(await app.gql(DISPATCH, { input: { agentId: agentA.agentId, kind: "echo" } }))).toEqual(["UNAUTHENTICATED"]);
    const task = await dispatched(agentA.agentId, {}, tenant.tokens.admin);
    expect(task.dispatchedBy).toBe(`admin@${tenant.tenantId}`);

    // People and services hold no agent identity: the service role's agent:act alone is not enough.
    for (const token of [tenant.tokens.admin, tenant.tokens.editor, tenant.tokens.service]) {
      expect(codeOf(await app.gql(CLAIM, { id: task.id }, { token }))).toEqual(["FORBIDDEN"]);
      expect(codeOf(await app.gql(PENDING, { first: 1 }, { token }))).toEqual(["FORBIDDEN"]);
    }
    // An agent reads its own tasks only; the dashboards are for people.
    expect(codeOf(await app.gql(TASKS, { first: 1 }, { token: agentA.token }))).toEqual(["FORBIDDEN"]);
    expect(codeOf(await app.gql(TASK_BY_ID, { id: task.id }, { token: agentA.token }))).toEqual(["FORBIDDEN"]);
    expect(ok(await app.gql(TASK_BY_ID, { id: task.id }, { token: tenant.tokens.viewer })).task.id).toBe(task.id);
  });

  it("dispatches only to an agent of the tenant that is not deleted, and checks its input, recording nothing refused", async () => {
    const draft = await createAgent(tenant);
    expect((await dispatched(draft)).status).toBe("pending");
    expect(codeOf(await dispatch(randomUUID()))).toEqual(["NOT_FOUND"]);
    const doomed = await createAgent(tenant);
    ok(await app.gql("mutation ($id: ID!) { deleteAgent(id: $id) }", { id: doomed }, { token: tenant.tokens.admin }));
    expect(codeOf(await dispatch(doomed))).toEqual(["NOT_FOUND"]);

    const big = "x".repeat(64 * 1024);
    for (const [input, field] of [
      [{ kind: "Run Script" }, "kind"],
      [{ kind: "" }, "kind"],
      [{ kind: "k".repeat(61) }, "kind"],
      [{ timeoutSeconds: 0 }, "timeoutSeconds"],
      [{ timeoutSeconds: 86_401 }, "timeoutSeconds"],
      [{ payload: { big } }, "payload"],
    ] as const) {
      const res = await dispatch(draft, input);
      expect(codeOf(res), JSON.stringify(input).slice(0, 80)).toEqual(["BAD_USER_INPUT"]);
      expect(res.errors?.[0]?.extensions?.field).toBe(field);
    }
    expect((await dispatched(draft, { kind: "k".repeat(60), timeoutSeconds: 86_400, payload: "x".repeat(60 * 1024) })).timeoutSeconds).toBe(86_400);
    expect(ok(await app.gql(TASKS, { filter: { agentId: draft }, first: 100 }, { token: tenant.tokens.viewer })).tasks.nodes).toHaveLength(2);

    const task = await dispatched(agentA.agentId);
    ok(await app.gql(CLAIM, { id: task.id }, { token: agentA.token }));
    const tooBig = await app.gql(COMPLETE, { id: task.id, result: { big } }, { token: agentA.token });
    expect(tooBig.errors?.[0]?.extensions).toMatchObject({ code: "BAD_USER_INPUT", field: "result" });
    const longError = await app.gql(FAIL, { id: task.id, error: "e".repeat(4097) }, { token: agentA.token });
    expect(longError.errors?.[0]?.extensions).toMatchObject({ code: "BAD_USER_INPUT", field: "error" });
    expect((await auditOf(task.id)).map((e: any) => e.type)).toEqual(["task.dispatched", "task.claimed"]);
  });
});

describe("tasks for dashboards", () => {
  it("lists newest first with a keyset cursor, filtered by agent, status and kind", async () => {
    const agentId = await createAgent(tenant);
    // Newest first is by dispatch time: each dispatch after the clock has moved past the one before.
    const clockPast = (task: { dispatchedAt: string }) => clock.advanceTo(Date.parse(task.dispatchedAt) + 1);
    const t1 = await dispatched(agentId, { kind: "deploy" });
    await clockPast(t1);
    const t2 = await dispatched(agentId, { kind: "backup" });
    await clockPast(t2);
    const t3 = await dispatched(agentId, { kind: "deploy" });

    const page1 = ok(await app.gql(TASKS, { filter: { agentId }, first: 2 }, { token: tenant.tokens.viewer })).tasks;
    expect(page1.nodes.map((n: any) => n.id)).toEqual([t3.id, t2.id]);
    expect(page1.pageInfo.hasNextPage).toBe(true);
    expect(page1.pageInfo.endCursor).toBe(page1.edges[1].cursor);
    const page2 = ok(await app.gql(TASKS, { filter: { agentId }, first: 2, after: page1.pageInfo.endCursor }, { token: tenant.tokens.viewer })).tasks;
    expect(page2.nodes.map((n: any) => n.id)).toEqual([t1.id]);
    expect(page2.pageInfo.hasNextPage).toBe(false);

    const deploys = ok(await app.gql(TASKS, { filter: { agentId, kind: "deploy" }, first: 10 }, { token: tenant.tokens.viewer })).tasks;
    expect(deploys.nodes.map((n: any) => n.id)).toEqual([t3.id, t1.id]);
    const pending = ok(await app.gql(TASKS, { filter: { agentId, status: "pending" }, first: 10 }, { token: tenant.tokens.viewer })).tasks;
    expect(pending.nodes).toHaveLength(3);
    expect(ok(await app.gql(TASKS, { filter: { agentId, status: "completed" }, first: 10 }, { token: tenant.tokens.viewer })).tasks.nodes).toEqual([]);

    expect(codeOf(await app.gql(TASKS, { first: 0 }, { token: tenant.tokens.viewer }))).toEqual(["BAD_USER_INPUT"]);
    expect(codeOf(await app.gql(TASKS, { first: 1, after: "bm9wZQ" }, { token: tenant.tokens.viewer }))).toEqual(["BAD_USER_INPUT"]);
  });
});

// ---------------------------------------------------------------------------------------------
// agentTasks: the subscription, over SSE (Yoga's HTTP transport) and graphql-ws.
// ---------------------------------------------------------------------------------------------

interface Stream {
  /** The next result, or a failure after timeoutMs. */
  next(timeoutMs?: number): Promise<{ data?: any; errors?: Array<{ message: string; extensions?: Record<string, any> }> }>;
  close(): void;
}

/** A GraphQL subscription over SSE, read as it arrives. */
function sse(target: TestApp, token: string | undefined, query: string): Stream {
  const abort = new AbortController();
  const queue: any[] = [];
  const waiters: Array<(value: any) => void> = [];
  const deliver = (value: any) => (waiters.length ? waiters.shift()!(value) : queue.push(value));
  void (async () => {
    const res = await fetch(`${target.url}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "text/event-stream", ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify({ query }),
      signal: abort.signal,
    });
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end: number;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const message = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = message
          .split("\n")
          .filter((line) => line.startsWith("data:"))
          .map((line) => line.slice(5).trim())
          .join("");
        if (data) deliver(JSON.parse(data));
      }
    }
  })().catch(() => {});
  return streamOf(queue, waiters, () => abort.abort());
}

/** The same over graphql-ws (the token in connectionParams). */
function ws(target: TestApp, token: string, query: string): Stream {
  const queue: any[] = [];
  const waiters: Array<(value: any) => void> = [];
  const deliver = (value: any) => (waiters.length ? waiters.shift()!(value) : queue.push(value));
  const client = createClient({
    url: `${target.url.replace(/^http/, "ws")}/graphql`,
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${token}` },
    retryAttempts: 0,
    lazy: true,
  });
  const unsubscribe = client.subscribe(
    { query },
    { next: deliver, error: (error) => deliver({ errors: Array.isArray(error) ? error : [{ message: String(error) }] }), complete: () => {} },
  );
  return streamOf(queue, waiters, () => {
    unsubscribe();
    void client.dispose();
  });
}

function streamOf(queue: any[], waiters: Array<(value: any) => void>, close: () => void): Stream {
  const next = (timeoutMs = 5000) =>
    queue.length
      ? Promise.resolve(queue.shift())
      : new Promise<any>((resolve, reject) => {
          const timer = setTimeout(() => {
            waiters.splice(waiters.indexOf(settle), 1);
            reject(new Error(`no result within ${timeoutMs} ms`));
          }, timeoutMs);
          const settle = (value: any) => {
            clearTimeout(timer);
            resolve(value);
          };
          waiters.push(settle);
        });
  return { next, close };
}

/** Until `count` agentTasks subscriptions of the agent are open in this process (the test's app). */
const watching = (agent: EnrolledAgent, count: number) =>
  waitFor(
    `${count} agentTasks subscription(s) of agent ${agent.agentId}`,
    () => taskNotifier(app.kp.deps.db).watching(tenant.tenantId, agent.agentId) === count,
  );

/**
 * A negative check made positive: `marker`, dispatched to the stream's agent after everything that
 * must not arrive, is the next result. A repeat or another agent's task would arrive before it.
 */
async function nextIsOnly(stream: Stream, marker: { id: string }, timeoutMs?: number) {
  expect((await stream.next(timeoutMs)).data?.agentTasks).toMatchObject({ id: marker.id });
}

describe("agentTasks", () => {
  it("over SSE: first the agent's pending tasks oldest first, then each new one at once; never another agent's; it stops when the client goes away", async () => {
    const agent = await enroll(tenant);
    const first = await dispatched(agent.agentId, { kind: "first", payload: { n: 1 } });
    const taken = await dispatched(agent.agentId, { kind: "taken" });
    ok(await app.gql(CLAIM, { id: taken.id }, { token: agent.token }));
    const second = await dispatched(agent.agentId, { kind: "second" });
    await dispatched(agentB.agentId, { kind: "not-yours" });

    const stream = sse(app, agent.token, AGENT_TASKS);
    try {
      expect((await stream.next()).data.agentTasks).toEqual({ id: first.id, agentId: agent.agentId, kind: "first", payload: { n: 1 }, status: "pending" });
      expect((await stream.next()).data.agentTasks).toMatchObject({ id: second.id, kind: "second" });
      await watching(agent, 1);

      await dispatched(agentB.agentId, { kind: "not-yours" });
      const started = Date.now();
      const third = await dispatched(agent.agentId, { kind: "third" });
      expect((await stream.next(1500)).data.agentTasks).toMatchObject({ id: third.id, kind: "third", status: "pending" });
      // Woken by the dispatch itself, not by the next poll.
      expect(Date.now() - started).toBeLessThan(1500);
      // Nothing else: no repeat, no other agent's task, across a poll. A wake-up without a dispatch
      // makes the subscription read the log as its poll (every AGENT_TASKS_POLL_MS) does, at once.
      taskNotifier(app.kp.deps.db).notify(tenant.tenantId, agent.agentId);
      await dispatched(agentB.agentId, { kind: "not-yours" });
      await nextIsOnly(stream, await dispatched(agent.agentId, { kind: "marker" }));
    } finally {
      stream.close();
    }
    await watching(agent, 0);
  });

  it("over SSE: refused to anyone but an enrolled agent", async () => {
    for (const [token, code] of [
      [undefined, "UNAUTHENTICATED"],
      [tenant.tokens.viewer, "FORBIDDEN"],
      [tenant.tokens.admin, "FORBIDDEN"],
      [tenant.tokens.service, "FORBIDDEN"],
    ] as const) {
      const stream = sse(app, token, AGENT_TASKS);
      try {
        const result = await stream.next();
        expect(result.errors?.map((e) => e.extensions?.code)).toEqual([code]);
        expect(result.data?.agentTasks ?? null).toBeNull();
      } finally {
        stream.close();
      }
    }
  });

  it("over graphql-ws: the same stream", async () => {
    const agent = await enroll(tenant);
    const waiting = await dispatched(agent.agentId, { kind: "waiting" });
    const stream = ws(app, agent.token, AGENT_TASKS);
    try {
      expect((await stream.next()).data.agentTasks).toMatchObject({ id: waiting.id, kind: "waiting" });
      await watching(agent, 1);
      await dispatched(agentB.agentId, { kind: "not-yours" });
      const fresh = await dispatched(agent.agentId, { kind: "fresh" });
      expect((await stream.next(1500)).data.agentTasks).toMatchObject({ id: fresh.id, kind: "fresh" });
      // Nothing else: no repeat, no other agent's task.
      await dispatched(agentB.agentId, { kind: "not-yours" });
      await nextIsOnly(stream, await dispatched(agent.agentId, { kind: "marker" }));
    } finally {
      stream.close();
    }
    await watching(agent, 0);
  });
});

/** A second connection pool to the test database: another Keyplane process sharing it. */
async function secondPool(database: DatabaseHandle): Promise<DatabaseHandle> {
  const { rows } = await sql<{ name: string }>`select current_database() as name`.execute(database.db);
  const url = new URL(process.env.TEST_DATABASE_URL!);
  url.pathname = `/${rows[0]!.name}`;
  return openDatabase({ url: url.toString(), poolMax: 4 });
}

describe.skipIf(!onPostgres)("agentTasks across two Keyplane processes on one PostgreSQL", () => {
  it("a task dispatched through the other process arrives with the next poll", async () => {
    const pool = await secondPool(app.database);
    const otherProcess = await createTestApp({ database: pool, name: "tasks-process-b", now: clock.now, env: { AGENT_SWEEP_INTERVAL_SECONDS: "3600" } });
    try {
      const agent = await enroll(tenant);
      const stream = sse(app, agent.token, AGENT_TASKS);
      try {
        await watching(agent, 1);
        const editorB = await otherProcess.mintToken({ tenantId: tenant.tenantId, roles: ["editor"], subject: `editor-b@${tenant.tenantId}` });
        const dispatchThroughB = async (kind: string) =>
          ok(await otherProcess.gql(DISPATCH, { input: { agentId: agent.agentId, kind } }, { token: editorB })).dispatchTask;
        const task = await dispatchThroughB("elsewhere");
        expect((await stream.next(4000)).data.agentTasks).toMatchObject({ id: task.id, kind: "elsewhere" });
        // No repeat at a later poll: a second dispatch through the other process arrives only with a
        // later poll, and nothing before it.
        await nextIsOnly(stream, await dispatchThroughB("marker"), 4000 + AGENT_TASKS_POLL_MS);
      } finally {
        stream.close();
      }
    } finally {
      await otherProcess.close();
      await pool.close();
    }
  });
});

describe("the tasks read model", () => {
  it("is rebuilt from the log row for row", async () => {
    const rows = () => withPlatform(app.kp.deps.db, (trx) => trx.selectFrom("tasks").selectAll().orderBy("tenant_id").orderBy("task_id").execute());
    const live = await rows();
    expect(new Set(live.map((r) => r.status))).toEqual(new Set(["pending", "claimed", "completed", "failed", "timed_out"]));
    await rebuildProjections(app.kp.deps.db);
    expect(await rows()).toEqual(live);
  });
});
