import { describe, expect, it } from "vitest";
import { TaskTimedOutError, type TaskCommand } from "../../src/domain/task/decide.ts";
import { taskDecider } from "../../src/domain/task/decider.ts";
import type { TaskEvent } from "../../src/domain/task/events.ts";
import { ConflictError } from "../../src/errors.ts";
import { deciderSpec, stateAfter } from "../testkit/deciderSpec.ts";

const given = deciderSpec(taskDecider);
const stateOf = (events: TaskEvent[]) => stateAfter(taskDecider, events);

const T0 = new Date("2026-03-01T12:00:00.000Z");
const at = (seconds: number) => new Date(T0.getTime() + seconds * 1000);

const dispatched: TaskEvent = {
  type: "task.dispatched",
  data: { taskId: "t-1", agentId: "a-1", kind: "echo", payload: { say: "hi" }, timeoutSeconds: 60, deadlineAt: at(60).toISOString() },
};
const claimed: TaskEvent = { type: "task.claimed", data: { taskId: "t-1", agentId: "a-1" } };
const completed: TaskEvent = { type: "task.completed", data: { taskId: "t-1", result: { ok: true } } };
const failed: TaskEvent = { type: "task.failed", data: { taskId: "t-1", error: "boom" } };
const timedOut = (status: "pending" | "claimed"): TaskEvent => ({ type: "task.timed_out", data: { taskId: "t-1", status } });

const claim = (agentId = "a-1", now = at(1)): TaskCommand => ({ type: "ClaimTask", agentId, now });
const complete = (now = at(2), agentId = "a-1"): TaskCommand => ({ type: "CompleteTask", agentId, result: { ok: true }, now });
const fail = (now = at(2)): TaskCommand => ({ type: "FailTask", agentId: "a-1", error: "boom", now });
const progress = (now = at(2)): TaskCommand => ({ type: "ReportTaskProgress", agentId: "a-1", progress: { done: 3, of: 10 }, message: "copying", now });

/** The refusal an agent gets once its task's deadline passed (the use case then records task.timed_out). */
const TIMED_OUT = { instanceOf: TaskTimedOutError };

describe("task decider", () => {
  it("dispatches once, with the deadline timeoutSeconds after now and a missing payload as null", () => {
    given([])
      .when({ type: "DispatchTask", taskId: "t-1", agentId: "a-1", kind: "echo", payload: { say: "hi" }, timeoutSeconds: 60, now: T0 })
      .then([dispatched]);
    given([])
      .when({ type: "DispatchTask", taskId: "t-2", agentId: "a-1", kind: "echo", payload: undefined, timeoutSeconds: 300, now: T0 })
      .then([
        {
          type: "task.dispatched",
          data: { taskId: "t-2", agentId: "a-1", kind: "echo", payload: null, timeoutSeconds: 300, deadlineAt: "2026-03-01T12:05:00.000Z" },
        },
      ]);
    given([dispatched])
      .when({ type: "DispatchTask", taskId: "t-1", agentId: "a-1", kind: "echo", payload: null, timeoutSeconds: 60, now: T0 })
      .thenThrows("CONFLICT");
  });

  it("runs pending -> claimed -> completed or failed, with progress reports while claimed", () => {
    given([dispatched]).when(claim()).then([claimed]);
    given([dispatched, claimed])
      .when(progress())
      .then([{ type: "task.progressed", data: { taskId: "t-1", progress: { done: 3, of: 10 }, message: "copying" } }]);
    given([dispatched, claimed]).when(complete()).then([completed]);
    given([dispatched, claimed]).when(fail()).then([failed]);
    expect(stateOf([dispatched, claimed, completed])).toMatchObject({ status: "completed" });
  });

  it("claims a task at most once; everything but pending is CONFLICT", () => {
    given([dispatched, claimed])
      .when(claim())
      .thenThrows("CONFLICT", { message: /task is claimed/ });
    for (const end of [completed, failed]) given([dispatched, claimed, end]).when(claim()).thenThrows("CONFLICT");
    given([dispatched, timedOut("pending")])
      .when(claim())
      .thenThrows("CONFLICT", TIMED_OUT);
  });

  it("progress, completion and failure need a claimed task", () => {
    given([dispatched])
      .when(complete())
      .thenThrows("CONFLICT", { message: /pending: claim it first/ });
    given([dispatched]).when(progress()).thenThrows("CONFLICT");
    given([dispatched, claimed, completed])
      .when(fail())
      .thenThrows("CONFLICT", { message: /task is completed/ });
    given([dispatched, claimed, failed])
      .when(complete())
      .thenThrows("CONFLICT", { message: /task is failed/ });
  });

  it("hides the task from every agent but its own, and a missing task from everyone (NOT_FOUND)", () => {
    given([dispatched]).when(claim("a-2")).thenThrows("NOT_FOUND");
    given([dispatched, claimed])
      .when(complete(at(2), "a-2"))
      .thenThrows("NOT_FOUND");
    given([]).when(claim()).thenThrows("NOT_FOUND");
    given([])
      .when({ type: "TimeOutTask", now: at(100) })
      .thenThrows("NOT_FOUND");
  });

  it("refuses every step of the agent once the deadline has passed, before any sweep recorded it", () => {
    given([dispatched])
      .when(claim("a-1", at(60)))
      .thenThrows("CONFLICT", TIMED_OUT);
    given([dispatched, claimed])
      .when(complete(at(61)))
      .thenThrows("CONFLICT", TIMED_OUT);
    given([dispatched, claimed])
      .when(progress(at(61)))
      .thenThrows("CONFLICT", TIMED_OUT);
    given([dispatched, claimed])
      .when(fail(at(61)))
      .thenThrows("CONFLICT", { instanceOf: ConflictError, extensions: { status: "timed_out" } });
  });

  it("times out open tasks past their deadline only, recording what they were; finished ones stay as they are", () => {
    given([dispatched])
      .when({ type: "TimeOutTask", now: at(59) })
      .thenNothingHappened();
    given([dispatched])
      .when({ type: "TimeOutTask", now: at(60) })
      .then([timedOut("pending")]);
    given([dispatched, claimed])
      .when({ type: "TimeOutTask", now: at(90) })
      .then([timedOut("claimed")]);
    for (const end of [completed, failed, timedOut("claimed")])
      given([dispatched, claimed, end])
        .when({ type: "TimeOutTask", now: at(90) })
        .thenNothingHappened();
    expect(stateOf([dispatched, timedOut("pending")])).toMatchObject({ status: "timed_out" });
    given([dispatched, claimed, timedOut("claimed")])
      .when(complete(at(30)))
      .thenThrows("CONFLICT", TIMED_OUT);
  });
});
