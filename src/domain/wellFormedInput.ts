import { BadInputError } from "../errors.ts";

// Input that reaches the database must be storable first. PostgreSQL refuses a NUL character in text
// and in jsonb (22021, 22P05), and a lone UTF-16 surrogate cannot be encoded as UTF-8 at all (in jsonb
// it is refused, in text it would silently become U+FFFD). Nesting is capped because JSON.stringify
// and the canonical JSON of the event hashes recurse: 10,000 levels overflow the stack. Every check
// here walks with an explicit stack, so no input can overflow the check itself.

/** Levels of objects and lists one input may nest, counted from its top (the variables object, a field's arguments, a webhook body). */
export const MAX_INPUT_DEPTH = 32;

export type InputProblemReason = "NUL_CHARACTER" | "LONE_SURROGATE" | "TOO_DEEP";

export interface InputProblem {
  /** Where the offending value is, e.g. `variables.input.config.a` (never the value itself). */
  field: string;
  reason: InputProblemReason;
  /** Names the field and the problem; never echoes the value. */
  message: string;
}

/** Why a string cannot be stored, or undefined when it can. */
export function stringProblem(value: string): "NUL_CHARACTER" | "LONE_SURROGATE" | undefined {
  if (value.includes("\u0000")) return "NUL_CHARACTER";
  if (!value.isWellFormed()) return "LONE_SURROGATE";
  return undefined;
}

/**
 * One value as the walk sees it: a string to check, a container with its entries (object keys are
 * checked too; list entries have numeric keys), or anything else (numbers, booleans, null), which
 * is fine.
 */
export type InputNode<T> = { string: string } | { entries: Iterable<readonly [key: string | number, child: T]> } | undefined;

interface Step {
  readonly parent: Step | undefined;
  readonly key: string | number;
}

/**
 * The first value under `root` that cannot be stored, depth first in input order. `depth` is the
 * level `root` sits at (0: root is the top; 1: root is one variable or argument of the top), so a
 * container at level MAX_INPUT_DEPTH + 1 is refused. Generic over the shape (`expand`) so JSON
 * values and GraphQL literals are checked by the same walk.
 */
export function findProblemIn<T>(root: T, field: string, expand: (value: T) => InputNode<T>, depth = 0, maxDepth = MAX_INPUT_DEPTH): InputProblem | undefined {
  const stack: Array<{ value: T; depth: number; at: Step | undefined }> = [{ value: root, depth, at: undefined }];
  while (stack.length) {
    const { value, depth: level, at } = stack.pop()!;
    const node = expand(value);
    if (!node) continue;
    if ("string" in node) {
      const reason = stringProblem(node.string);
      if (reason) return problem(field, at, reason, false);
      continue;
    }
    if (level + 1 > maxDepth) return problem(field, at, "TOO_DEEP", false, maxDepth);
    const children: Array<{ value: T; depth: number; at: Step }> = [];
    for (const [key, child] of node.entries) {
      if (typeof key === "string") {
        const reason = stringProblem(key);
        if (reason) return problem(field, at, reason, true);
      }
      children.push({ value: child, depth: level + 1, at: { parent: at, key } });
    }
    // Reversed onto the stack, so the first problem found is the first in the input.
    for (let i = children.length - 1; i >= 0; i--) stack.push(children[i]!);
  }
  return undefined;
}

/** A parsed JSON value (or anything of plain objects, arrays and primitives) as the walk sees it. */
export function expandJson(value: unknown): InputNode<unknown> {
  if (typeof value === "string") return { string: value };
  if (typeof value !== "object" || value === null) return undefined;
  if (Array.isArray(value)) return { entries: value.entries() };
  return { entries: Object.entries(value) };
}

/** The first part of a JSON value that cannot be stored (NUL, lone surrogate, nesting over MAX_INPUT_DEPTH), or undefined. */
export function findInputProblem(value: unknown, field: string, depth = 0): InputProblem | undefined {
  return findProblemIn(value, field, expandJson, depth);
}

/** The first key or value of URL query parameters that cannot be stored, or undefined. */
export function findQueryProblem(query: URLSearchParams, field = "query"): InputProblem | undefined {
  for (const [key, value] of query) {
    const keyReason = stringProblem(key);
    if (keyReason) return problem(field, undefined, keyReason, true);
    const reason = stringProblem(value);
    if (reason) return problem(field, { parent: undefined, key }, reason, false);
  }
  return undefined;
}

/** BAD_USER_INPUT naming the field (`extensions.field`) and the problem (`extensions.reason`). */
export class MalformedInputError extends BadInputError {
  constructor(readonly problem: InputProblem) {
    super(problem.message, problem.field);
    this.extensions.reason = problem.reason;
  }
}

/** Throws MalformedInputError for a JSON value (a webhook body, a REST parameter object) that cannot be stored. */
export function assertWellFormedInput(value: unknown, field: string): void {
  const found = findInputProblem(value, field);
  if (found) throw new MalformedInputError(found);
}

/** Throws MalformedInputError for URL query parameters (every value of every key) that cannot be stored. */
export function assertWellFormedQuery(query: URLSearchParams, field = "query"): void {
  const found = findQueryProblem(query, field);
  if (found) throw new MalformedInputError(found);
}

/**
 * At most `max` UTF-16 code units of `value`, without cutting a surrogate pair in half (a plain
 * slice can, and the lone half cannot be stored). For code that shortens input before storing it.
 */
export function truncateWellFormed(value: string, max: number): string {
  if (value.length <= max) return value;
  const code = value.charCodeAt(max - 1);
  return value.slice(0, code >= 0xd800 && code <= 0xdbff ? max - 1 : max);
}

const WHAT: Record<InputProblemReason, string> = {
  NUL_CHARACTER: "contains a NUL character (U+0000), which cannot be stored",
  LONE_SURROGATE: "contains an unpaired UTF-16 surrogate, which is not valid Unicode",
  TOO_DEEP: "nests objects and lists more than {max} levels deep",
};

function problem(field: string, at: Step | undefined, reason: InputProblemReason, inKey: boolean, maxDepth = MAX_INPUT_DEPTH): InputProblem {
  const path = pathOf(field, at);
  const what = WHAT[reason].replace("{max}", String(maxDepth));
  return { field: path, reason, message: `${path}: ${inKey ? `an object key ${what}` : what}` };
}

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$-]{0,63}$/;

/** `root.a.b[2]["odd key"]`, built only when there is a problem to report. */
function pathOf(root: string, at: Step | undefined): string {
  const segments: string[] = [];
  for (let step = at; step; step = step.parent) {
    if (typeof step.key === "number") segments.push(`[${step.key}]`);
    else if (IDENTIFIER.test(step.key)) segments.push(`.${step.key}`);
    else segments.push(`[${JSON.stringify(truncateWellFormed(step.key, 40))}]`);
  }
  return root + segments.reverse().join("");
}
