import { BadInputError } from "../errors.ts";
import { builder } from "./builder.ts";

export const MAX_PAGE_SIZE = 100;

export interface PageInfoShape {
  hasNextPage: boolean;
  endCursor: string | null;
}

export const PageInfo = builder.objectRef<PageInfoShape>("PageInfo").implement({
  fields: (t) => ({
    hasNextPage: t.exposeBoolean("hasNextPage"),
    endCursor: t.exposeString("endCursor", { nullable: true }),
  }),
});

/** Every connection requires `first`, at most 100, so the cost of a query is known before it runs. */
export function checkPageSize(first: number): number {
  if (!Number.isInteger(first) || first < 1 || first > MAX_PAGE_SIZE) {
    throw new BadInputError(`first: must be between 1 and ${MAX_PAGE_SIZE}`, "first");
  }
  return first;
}

/** Opaque cursors over a numeric position (the per-tenant sequence for logs). */
export function encodeCursor(kind: string, position: number): string {
  return Buffer.from(`${kind}:${position}`).toString("base64url");
}

export function decodeCursor(kind: string, cursor: string | null | undefined): number | undefined {
  if (cursor === null || cursor === undefined) return undefined;
  const decoded = Buffer.from(cursor, "base64url").toString();
  const match = new RegExp(`^${kind}:(\\d{1,15})$`).exec(decoded);
  if (!match) throw new BadInputError("after: not a cursor of this list", "after");
  return Number(match[1]);
}
