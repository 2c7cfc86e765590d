import { parse } from "graphql";
import { describe, expect, it } from "vitest";
import {
  assertWellFormedInput,
  assertWellFormedQuery,
  findInputProblem,
  MalformedInputError,
  MAX_INPUT_DEPTH,
  stringProblem,
  truncateWellFormed,
} from "../../src/domain/wellFormedInput.ts";
import { documentInputProblem, operationInputProblem } from "../../src/http/wellFormedInputPlugin.ts";

// The input check on its own: what it refuses, the path it names, and that no input can overflow it.

const deepList = (levels: number): unknown => JSON.parse("[".repeat(levels) + "]".repeat(levels));

describe("stringProblem", () => {
  it("refuses NUL and lone surrogates (either half, anywhere), accepts pairs and other control characters", () => {
    expect(stringProblem("a\u0000")).toBe("NUL_CHARACTER");
    expect(stringProblem("\ud800")).toBe("LONE_SURROGATE");
    expect(stringProblem("x\udc00y")).toBe("LONE_SURROGATE");
    expect(stringProblem("\udc00\ud800")).toBe("LONE_SURROGATE"); // halves in the wrong order
    expect(stringProblem("😀 \uD83E\uDD16 ключ")).toBeUndefined();
    expect(stringProblem("tab\tnewline\n\u0001\u007f")).toBeUndefined();
  });
});

describe("findInputProblem", () => {
  it("names the path of the first bad value, in input order, without the value", () => {
    const problem = findInputProblem({ input: { list: ["ok", { name: "x\u0000secret" }], later: "\ud800" } }, "variables");
    expect(problem).toEqual({
      field: "variables.input.list[1].name",
      reason: "NUL_CHARACTER",
      message: "variables.input.list[1].name: contains a NUL character (U+0000), which cannot be stored",
    });
  });

  it("checks object keys; a bad key is reported at its object, odd good keys are quoted", () => {
    expect(findInputProblem({ config: { "has space": { ["k\ud800"]: 1 } } }, "variables")).toMatchObject({
      field: 'variables.config["has space"]',
      reason: "LONE_SURROGATE",
      message: expect.stringContaining("an object key"),
    });
  });

  it(`allows ${MAX_INPUT_DEPTH} levels of objects and lists, counted from the top, and refuses the next`, () => {
    expect(findInputProblem(deepList(MAX_INPUT_DEPTH), "body")).toBeUndefined();
    expect(findInputProblem(deepList(MAX_INPUT_DEPTH + 1), "body")).toMatchObject({ field: `body${"[0]".repeat(MAX_INPUT_DEPTH)}`, reason: "TOO_DEEP" });
    // Starting one level down (one argument of a field's arguments): one level fewer.
    expect(findInputProblem(deepList(MAX_INPUT_DEPTH), "arg", 1)).toMatchObject({ reason: "TOO_DEEP" });
  });

  it("never recurses: a million levels are refused at the limit", () => {
    expect(findInputProblem(deepList(1_000_000), "variables")).toMatchObject({ reason: "TOO_DEEP" });
  });

  it("numbers, booleans, null and empty containers are fine", () => {
    expect(findInputProblem({ a: 1, b: true, c: null, d: [], e: {}, f: 1.5 }, "variables")).toBeUndefined();
    expect(findInputProblem(undefined, "variables")).toBeUndefined();
  });
});

describe("for the REST routes", () => {
  it("assertWellFormedInput throws BAD_USER_INPUT with field and reason", () => {
    const error = (() => {
      try {
        assertWellFormedInput(JSON.parse('{"repository":{"name":"a\\u0000"}}'), "body");
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(MalformedInputError);
    expect(error).toMatchObject({ code: "BAD_USER_INPUT", extensions: { field: "body.repository.name", reason: "NUL_CHARACTER" } });
  });

  it("assertWellFormedQuery checks every value of every key (a repeated key too), decoded", () => {
    expect(() => assertWellFormedQuery(new URLSearchParams("code=ok&state=ok"))).not.toThrow();
    expect(() => assertWellFormedQuery(new URLSearchParams("state=ok&state=a%00b"))).toThrow(
      expect.objectContaining({ extensions: { field: "query.state", reason: "NUL_CHARACTER" } }),
    );
    expect(() => assertWellFormedQuery(new URLSearchParams("a%00=1"))).toThrow(
      expect.objectContaining({ extensions: { field: "query", reason: "NUL_CHARACTER" } }),
    );
    // URLSearchParams already turns invalid UTF-8 (%ED%A0%80, a surrogate) into U+FFFD.
    expect(() => assertWellFormedQuery(new URLSearchParams("state=%ED%A0%80"))).not.toThrow();
  });
});

describe("truncateWellFormed", () => {
  it("does not cut a surrogate pair in half", () => {
    expect(truncateWellFormed("ab😀", 3)).toBe("ab");
    expect(truncateWellFormed("ab😀", 4)).toBe("ab😀");
    expect(truncateWellFormed("abcdef", 3)).toBe("abc");
    expect("ab😀".slice(0, 3).isWellFormed()).toBe(false);
  });
});

describe("operation parameters and document literals", () => {
  it("checks operationName, variables and extensions, with the batch position", () => {
    expect(operationInputProblem({ operationName: "Op\u0000" })).toMatchObject({ field: "operationName" });
    expect(operationInputProblem({ variables: { a: ["\ud800"] } }, "[2].")).toMatchObject({ field: "[2].variables.a[0]" });
    expect(operationInputProblem({ extensions: { persistedQuery: { sha256Hash: "x\u0000" } } })).toMatchObject({
      field: "extensions.persistedQuery.sha256Hash",
    });
    expect(operationInputProblem({ operationName: "Op", variables: { a: "🤖" }, extensions: {} })).toBeUndefined();
  });

  it("names arguments by field path (aliases, nested fields, fragments, directives) and variable defaults", () => {
    const at = (source: string) => documentInputProblem(parse(source))?.field;
    expect(at('mutation { renamed: createAgent(input: { name: "a\\u0000" }) { id } }')).toBe("renamed.input.name");
    expect(at('{ tenant { agents(filter: { tag: "\\u0000" }) { id } } }')).toBe("tenant.agents.filter.tag");
    expect(at('query { ...F } fragment F on Query { agent(id: "\\u0000") { id } }')).toBe("agent.id");
    expect(at('{ me @skip(if: false) { subject @deprecated(reason: "\\u0000") } }')).toBe("me.subject@deprecated.reason");
    expect(at('query ($c: JSON = { a: ["ok", "\\u0000"] }) { me { subject } }')).toBe("variables.c.a[1]");
    expect(at('{ me { subject(x: "ok", y: ["😀", { z: "\\uD83E\\uDD16" }]) } }')).toBeUndefined();
  });

  it("counts a field's arguments as one level, like the variables object", () => {
    const nest = (levels: number) => "{ a: ".repeat(levels - 1) + "{ leaf: 1 }" + " }".repeat(levels - 1);
    // argument value at level 2: MAX - 1 levels inside it are allowed.
    expect(documentInputProblem(parse(`{ f(x: ${nest(MAX_INPUT_DEPTH - 1)}) }`))).toBeUndefined();
    expect(documentInputProblem(parse(`{ f(x: ${nest(MAX_INPUT_DEPTH)}) }`))).toMatchObject({
      field: `f.x${".a".repeat(MAX_INPUT_DEPTH - 1)}`,
      reason: "TOO_DEEP",
    });
  });
});
