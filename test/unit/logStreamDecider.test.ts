import { describe, expect, it } from "vitest";
import { parseLogStreamSettings, type LogStreamCommand } from "../../src/domain/logStream/decide.ts";
import { logStreamDecider } from "../../src/domain/logStream/decider.ts";
import type { LogStreamEvent } from "../../src/domain/logStream/events.ts";
import { deciderSpec, stateAfter } from "../testkit/deciderSpec.ts";

const given = deciderSpec(logStreamDecider);
const destination = {
  name: "siem",
  destination: "https://siem.example.com/hooks",
  settings: {},
  filter: { securityOnly: false },
  secretFingerprint: "fp-1",
};
const create: LogStreamCommand = { type: "CreateLogStream", logStreamId: "s1", kind: "webhook", ...destination };
const created: LogStreamEvent = { type: "log_stream.created", data: { logStreamId: "s1", kind: "webhook", ...destination } };

describe("log stream decider", () => {
  it("creates a stream, pending until its first delivery", () => {
    given([]).when(create).then([created]);
    expect(stateAfter(logStreamDecider, [created])).toMatchObject({ exists: true, health: "pending", paused: false });
    given([])
      .when({ ...create, name: " " })
      .thenThrows("BAD_USER_INPUT");
  });

  it("records an update with what changed, and nothing when nothing did", () => {
    given([created])
      .when({ type: "UpdateLogStream", ...destination, secretFingerprint: "fp-2" })
      .then([{ type: "log_stream.updated", data: { logStreamId: "s1", ...destination, secretFingerprint: "fp-2", changed: ["secretFingerprint"] } }]);
    given([created])
      .when({ type: "UpdateLogStream", ...destination })
      .thenNothingHappened();
  });

  it("pauses and resumes once each; resuming retries a stream a refusal stopped", () => {
    const paused: LogStreamEvent = { type: "log_stream.paused", data: { logStreamId: "s1" } };
    given([created]).when({ type: "PauseLogStream" }).then([paused]);
    given([created, paused]).when({ type: "PauseLogStream" }).thenNothingHappened();
    given([created, paused])
      .when({ type: "ResumeLogStream" })
      .then([{ type: "log_stream.resumed", data: { logStreamId: "s1" } }]);
    given([created]).when({ type: "ResumeLogStream" }).thenNothingHappened();
    const refused: LogStreamEvent = {
      type: "log_stream.health_changed",
      data: { logStreamId: "s1", from: "pending", to: "error", error: "HTTP 401", deliveredSequence: 3 },
    };
    given([created, refused])
      .when({ type: "ResumeLogStream" })
      .then([{ type: "log_stream.resumed", data: { logStreamId: "s1" } }]);
    expect(stateAfter(logStreamDecider, [created, refused, { type: "log_stream.resumed", data: { logStreamId: "s1" } }])).toMatchObject({ health: "pending" });
  });

  it("records a health change once, rotates only a webhook's secret, and refuses a deleted stream", () => {
    given([created])
      .when({ type: "RecordLogStreamHealth", health: "healthy", deliveredSequence: 5 })
      .then([{ type: "log_stream.health_changed", data: { logStreamId: "s1", from: "pending", to: "healthy", deliveredSequence: 5 } }]);
    given([created, { type: "log_stream.health_changed", data: { logStreamId: "s1", from: "pending", to: "healthy", deliveredSequence: 5 } }])
      .when({ type: "RecordLogStreamHealth", health: "healthy", deliveredSequence: 9 })
      .thenNothingHappened();
    const rotate: LogStreamCommand = {
      type: "RotateLogStreamSecret",
      secretFingerprint: "fp-2",
      previousFingerprint: "fp-1",
      previousValidUntil: "2026-12-04T00:00:00.000Z",
    };
    given([created])
      .when(rotate)
      .then([
        {
          type: "log_stream.secret_rotated",
          data: { logStreamId: "s1", secretFingerprint: "fp-2", previousFingerprint: "fp-1", previousValidUntil: "2026-12-04T00:00:00.000Z" },
        },
      ]);
    const splunk: LogStreamEvent = { type: "log_stream.created", data: { ...created.data, kind: "splunk" } as never };
    given([splunk]).when(rotate).thenThrows("BAD_USER_INPUT");
    const deleted: LogStreamEvent = { type: "log_stream.deleted", data: { logStreamId: "s1" } };
    given([created, deleted]).when({ type: "PauseLogStream" }).thenThrows("NOT_FOUND");
    given([]).when({ type: "ReplayLogStream", fromSequence: 1 }).thenThrows("NOT_FOUND");
    given([created]).when({ type: "ReplayLogStream", fromSequence: 0 }).thenThrows("BAD_USER_INPUT");
  });

  it("accepts each kind's own settings only", () => {
    expect(parseLogStreamSettings("splunk", { index: "main", sourcetype: "keyplane:audit" })).toEqual({ index: "main", sourcetype: "keyplane:audit" });
    expect(parseLogStreamSettings("datadog", { site: "datadoghq.eu", service: "keyplane" })).toEqual({ site: "datadoghq.eu", service: "keyplane" });
    expect(() => parseLogStreamSettings("webhook", { index: "main" })).toThrow(/index: not an option of webhook streams/);
    expect(() => parseLogStreamSettings("splunk", { index: "Main Index" })).toThrow(/^settings\.index: /);
    expect(() => parseLogStreamSettings("datadog", { site: "example.com" })).toThrow(/^settings\.site: /);
  });
});
