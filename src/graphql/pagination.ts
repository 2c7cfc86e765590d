import type { ObjectRef } from "@pothos/core";
import { BadInputError } from "../errors.ts";
import type { Page, TimeIdPosition } from "../store/queries/keysetPage.ts";
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

/**
 * How one list's rows become opaque cursors, and a cursor the position its store query pages after.
 * Each list has its own kind (a prefix inside the cursor): a cursor of another list is BAD_USER_INPUT.
 */
export interface CursorKind<Row, Position> {
  encode(row: Row): string;
  decode(cursor: string | null | undefined): Position | undefined;
}

/** `<kind>:<n>` over a numeric position, such as the audit log's per-tenant sequence. */
export function sequenceCursor<Row>(kind: string, positionOf: (row: Row) => number): CursorKind<Row, number> {
  return { encode: (row) => encodeCursor(kind, positionOf(row)), decode: (cursor) => decodeCursor(kind, cursor) };
}

/** `<kind>:<epoch ms>:<uuid>` over a time and an id that breaks its ties (the newest-first lists). */
export function timeIdCursor<Row>(kind: string, positionOf: (row: Row) => { at: Date | string; id: string }): CursorKind<Row, TimeIdPosition> {
  const pattern = new RegExp(`^${kind}:(\\d{1,15}):([0-9a-f-]{36})$`);
  return {
    encode(row) {
      const { at, id } = positionOf(row);
      return Buffer.from(`${kind}:${new Date(at).getTime()}:${id}`).toString("base64url");
    },
    decode(cursor) {
      if (cursor === null || cursor === undefined) return undefined;
      const match = pattern.exec(Buffer.from(cursor, "base64url").toString());
      if (!match) throw new BadInputError("after: not a cursor of this list", "after");
      return [new Date(Number(match[1])), match[2]!];
    },
  };
}

/** A connection field's `first` (checked) and `after` (decoded), as its store query takes them. */
export function pageArgs<Position>(cursor: CursorKind<never, Position>, args: { first: number; after?: string | null }): { first: number; after?: Position } {
  return { first: checkPageSize(args.first), after: cursor.decode(args.after) };
}

type Types = typeof builder extends PothosSchemaTypes.SchemaBuilder<infer T> ? T : never;

/**
 * The `XConnection` type of a paged list (edges with their cursor, nodes, pageInfo) and its `XEdge`
 * type, over a Page the store read. Every list has the same shape, so clients page them all alike.
 */
export function connectionType<Row>(
  names: { connection: string; edge: string },
  node: ObjectRef<Types, Row>,
  cursor: CursorKind<Row, unknown>,
): ObjectRef<Types, Page<Row>> {
  const Edge = builder.objectRef<Row>(names.edge).implement({
    fields: (t) => ({
      cursor: t.string({ resolve: (row) => cursor.encode(row) }),
      // The edge is its row (TypeScript cannot resolve Pothos' result type for a generic Row).
      node: t.field({ type: node, resolve: (row) => row as never }),
    }),
  });
  return builder.objectRef<Page<Row>>(names.connection).implement({
    fields: (t) => ({
      edges: t.field({ type: [Edge], resolve: (page) => page.rows }),
      nodes: t.field({ type: [node], resolve: (page) => page.rows }),
      pageInfo: t.field({
        type: PageInfo,
        resolve: (page) => ({ hasNextPage: page.hasNextPage, endCursor: page.rows.length ? cursor.encode(page.rows[page.rows.length - 1]!) : null }),
      }),
    }),
  });
}
