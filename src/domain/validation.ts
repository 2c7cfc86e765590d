import type { z } from "zod";
import { BadInputError } from "../errors.ts";

/** Validates command input; the first problem becomes a BAD_USER_INPUT naming the field. */
export function parseInput<S extends z.ZodType>(schema: S, input: unknown): z.output<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const field = issue.path.join(".") || "input";
  throw new BadInputError(`${field}: ${issue.message}`, field);
}
