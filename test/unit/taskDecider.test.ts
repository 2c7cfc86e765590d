import { describe, expect, it } from "vitest";
import { decideTask, TaskTimedOutError, type TaskCommand } from "../../src/domain/task/decide.ts";
import type { TaskEvent } from "../../src/domain/task/events.ts";
import { evolveTask, initialTaskState } from "../../src/domain/task/evolve.ts";
import { ConflictError, NotFoundError } from "../../src/errors.ts";

// Given events, when a command, then events (or an error): no database involved.
const T0 = new Date("2026-03-01T12:00:00.000Z");
const at = (seconds: number) => new Date(T0.getTime() + seconds * 1000);
const stateOf = (events: TaskEvent[]) => events.reduce(evolveTask, initialTaskState());
const given = (...events: TaskEvent[]) => ({
  when: (command: TaskCommand) => () => decideTask(command, stateOf(events)),
  then: (command: TaskCommand) => decideTask(command, stateOf(events)),
});

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

describe("task decider", () => {
  it("dispatches once, with the deadline timeoutSeconds after now and a missing payload as null", () => {
    expect(given().then({ type: "DispatchTask", taskId: "t-1", agentId: "a-1", kind: "echo", payload: { say: "hi" }, timeoutSeconds: 60, now: T0 })).toEqual([dispatched]);
    const bare = given().then({ type: "DispatchTask", taskId: "t-2", agentId: "a-1", kind: "echo", payload: undefined, timeoutSeconds: 300, now: T0 });
    expect(bare[0]?.data).toMatchObject({ payload: null, deadlineAt: "2026-03-01T12:05:00.000Z" });
    expect(given(dispatched).when({ type: "DispatchTask", taskId: "t-1", agentId: "a-1", kind: "echo", payload: null, timeoutSeconds: 60, now: T0 })).toThrow(ConflictError);
  });

  it("runs pending -> claimed -> completed or failed, with progress reports while claimed", () => {
    expect(given(dispatched).then(claim())).toEqual([claimed]);
    expect(given(dispatched, claimed).then(progress())).toEqual([{ type: "task.progressed", data: { taskId: "t-1", progress: { done: 3, of: 10 }, message: "copying" } }]);
    expect(given(dispatched, claimed).then(complete())).toEqual([completed]);
    expect(given(dispatched, claimed).then(fail())).toEqual([failed]);
    expect(stateOf([dispatched, claimed, completed])).toMatchObject({ status: "completed" });
  });

  it("claims a task at most once; everything but pending is CONFLICT", () => {
    expect(given(dispatched, claimed).when(claim())).toThrow(/task is claimed/);
    for (const end of [completed, failed]) expect(given(dispatched, claimed, end).when(claim())).toThrow(ConflictError);
    expect(given(dispatched, timedOut("pending")).when(claim())).toThrow(TaskTimedOutError);
  });

  it("progress, completion and failure need a claimed task", () => {
    expect(given(dispatched).when(complete())).toThrow(/pending: claim it first/);
    expect(given(dispatched).when(progress())).toThrow(ConflictError);
    expect(given(dispatched, claimed, completed).when(fail())).toThrow(/task is completed/);
    expect(given(dispatched, claimed, failed).when(complete())).toThrow(/task is failed/);
  });

  it("hides the task from every agent but its own, and a missing task from everyone (NOT_FOUND)", () => {
    expect(given(dispatched).when(claim("a-2"))).toThrow(NotFoundError);
    expect(given(dispatched, claimed).when(complete(at(2), "a-2"))).toThrow(NotFoundError);
    expect(given().when(claim())).toThrow(NotFoundError);
    expect(given().when({ type: "TimeOutTask", now: at(100) })).toThrow(NotFoundError);
  });

  it("refuses every step of the agent once the deadline has passed, before any sweep recorded it", () => {
    expect(given(dispatched).when(claim("a-1", at(60)))).toThrow(TaskTimedOutError);
    expect(given(dispatched, claimed).when(complete(at(61)))).toThrow(TaskTimedOutError);
    expect(given(dispatched, claimed).when(progress(at(61)))).toThrow(TaskTimedOutError);
    const error = (() => {
      try {
        given(dispatched, claimed).then(fail(at(61)));
      } catch (e) {
        return e as ConflictError;
      }
    })();
    expect(error).toBeInstanceOf(ConflictError);
    expect(error?.code).toBe("CONFLICT");
    expect(error?.extensions).toMatchObject({ status: "timed_out" });
  });

  it("times out open tasks past their deadline only, recording what they were; finished ones stay as they are", () => {
    expect(given(dispatched).then({ type: "TimeOutTask", now: at(59) })).toEqual([]);
    expect(given(dispatched).then({ type: "TimeOutTask", now: at(60) })).toEqual([timedOut("pending")]);
    expect(given(dispatched, claimed).then({ type: "TimeOutTask", now: at(90) })).toEqual([timedOut("claimed")]);
    for (const end of [completed, failed, timedOut("claimed")]) expect(given(dispatched, claimed, end).then({ type: "TimeOutTask", now: at(90) })).toEqual([]);
    expect(stateOf([dispatched, timedOut("pending")])).toMatchObject({ status: "timed_out" });
    expect(given(dispatched, claimed, timedOut("claimed")).when(complete(at(30)))).toThrow(TaskTimedOutError);
  });
});
