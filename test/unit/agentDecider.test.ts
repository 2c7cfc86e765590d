import { describe, expect, it } from "vitest";
import type { AgentCommand } from "../../src/domain/agent/decide.ts";
import { agentDecider } from "../../src/domain/agent/decider.ts";
import { AgentCreated, AgentDeleted, AgentEnrolled, AgentOnline, AgentPublished, AgentUpdated, type AgentEvent } from "../../src/domain/agent/events.ts";
import { deciderSpec, stateAfter } from "../testkit/deciderSpec.ts";

const given = deciderSpec(agentDecider);

const tenantId = "acme";
const agentId = "0b4c6c3e-2f4e-4f0a-9d59-5a1e7c7f1a01";
const timestamp = "2026-03-01T12:00:00.000Z";
const meta = { tenantId, timestamp, correlationId: "req-1" };
/** Every command carries the notification facts its events repeat (tenant, time, correlation id). */
const command = (c: AgentCommand, m: typeof meta | { tenantId: string; timestamp: string } = meta) => ({ ...c, meta: m });
/** What every agent event carries for notification consumers, at a version. */
const note = (version: number, agentName = "support-bot") => ({ tenantId, agentId, agentName, version, timestamp, correlationId: "req-1" });

const create: AgentCommand = {
  type: "CreateAgent",
  agentId,
  name: "support-bot",
  agentType: "chat",
  config: { model: "small" },
  tags: ["eu"],
  ephemeral: false,
};
const created = AgentCreated({ ...note(1), type: "chat", config: { model: "small" }, tags: ["eu"], ephemeral: false });
const published = AgentPublished(note(2));
const deleted = AgentDeleted({ ...note(2), reason: "deleted" });
const online = AgentOnline(note(1));

describe("agent decider", () => {
  describe("create", () => {
    it("creates the agent at version 1, as a draft, with the notification facts", () => {
      given([]).when(command(create)).then([created]);
      expect(stateAfter(agentDecider, [created])).toEqual({
        exists: true,
        id: agentId,
        name: "support-bot",
        type: "chat",
        version: 1,
        config: { model: "small" },
        tags: ["eu"],
        status: "draft",
        ephemeral: false,
        connection: "pending",
      });
    });

    it("carries no correlation id when the request had none", () => {
      const { correlationId: _, ...withoutCorrelation } = note(1);
      given([])
        .when(command(create, { tenantId, timestamp }))
        .then([{ type: "agent.created", data: { ...withoutCorrelation, type: "chat", config: { model: "small" }, tags: ["eu"], ephemeral: false } }]);
    });

    it("does not create the same agent twice", () =>
      given([created])
        .when(command(create))
        .thenThrows("CONFLICT", { message: `agent ${agentId} already exists` }));
  });

  describe("update", () => {
    it("records what changed, at the next version, under the new name", () =>
      given([created])
        .when(command({ type: "UpdateAgent", expectedVersion: 1, name: "helpdesk", tags: ["eu", "prod"] }))
        .then([AgentUpdated({ ...note(2, "helpdesk"), changed: ["name", "tags"], type: "chat", config: { model: "small" }, tags: ["eu", "prod"] })]));

    it("records nothing when every field is already so", () =>
      given([created])
        .when(command({ type: "UpdateAgent", expectedVersion: 1, name: "support-bot", agentType: "chat", config: { model: "small" }, tags: ["eu"] }))
        .thenNothingHappened());

    it("refuses an update decided on another version, naming the current one", () =>
      given([created, published])
        .when(command({ type: "UpdateAgent", expectedVersion: 1, name: "x" }))
        .thenThrows("CONFLICT", { message: /expected version 1, it is 2/, extensions: { currentVersion: 2 } }));
  });

  describe("publish and delete", () => {
    it("publishes a draft at the next version; publishing again records nothing", () => {
      given([created])
        .when(command({ type: "PublishAgent" }))
        .then([published]);
      given([created, published])
        .when(command({ type: "PublishAgent" }))
        .thenNothingHappened();
    });

    it("deletes with its reason; deleting again records nothing", () => {
      given([created])
        .when(command({ type: "DeleteAgent", reason: "deleted" }))
        .then([deleted]);
      given([created, deleted])
        .when(command({ type: "DeleteAgent", reason: "deleted" }))
        .thenNothingHappened();
    });

    it("knows no deleted agent and no missing one: everything else is NOT_FOUND", () => {
      for (const c of [
        { type: "PublishAgent" },
        { type: "UpdateAgent", expectedVersion: 2, name: "x" },
        { type: "MarkOnline" },
        { type: "EnrollAgent", keyId: "k", keyPrefix: "p", tags: [], host: {} },
      ] as AgentCommand[]) {
        given([created, deleted]).when(command(c)).thenThrows("NOT_FOUND");
      }
      given([])
        .when(command({ type: "DeleteAgent", reason: "deleted" }))
        .thenThrows("NOT_FOUND");
      given([])
        .when(command({ type: "PublishAgent" }))
        .thenThrows("NOT_FOUND");
    });
  });

  describe("enroll", () => {
    it("binds the machine at the next version, its tags merged with the key's, sorted and once each", () =>
      given([created])
        .when(command({ type: "EnrollAgent", keyId: "key-1", keyPrefix: "abcdefghij", tags: ["prod", "ci", "eu"], host: { hostname: "h1", os: "linux" } }))
        .then([AgentEnrolled({ ...note(2), keyId: "key-1", keyPrefix: "abcdefghij", tags: ["ci", "eu", "prod"], host: { hostname: "h1", os: "linux" } })]));
  });

  describe("presence", () => {
    it("goes online once, without a new version", () => {
      given([created])
        .when(command({ type: "MarkOnline" }))
        .then([online]);
      given([created, online])
        .when(command({ type: "MarkOnline" }))
        .thenNothingHappened();
    });

    it("goes offline only from online, with when it was last seen", () => {
      given([created, online])
        .when(command({ type: "MarkOffline", lastSeenAt: "2026-03-01T11:59:00.000Z" }))
        .then([{ type: "agent.offline", data: { ...note(1), lastSeenAt: "2026-03-01T11:59:00.000Z" } }]);
      given([created])
        .when(command({ type: "MarkOffline", lastSeenAt: timestamp }))
        .thenNothingHappened();
      const offline: AgentEvent = { type: "agent.offline", data: { ...note(1), lastSeenAt: timestamp } };
      given([created, online, offline])
        .when(command({ type: "MarkOffline", lastSeenAt: timestamp }))
        .thenNothingHappened();
      given([created, online, offline])
        .when(command({ type: "MarkOnline" }))
        .then([online]);
    });
  });
});
