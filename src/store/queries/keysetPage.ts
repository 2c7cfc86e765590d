import { sql, type Expression, type SelectQueryBuilder, type SqlBool } from "kysely";

/** One page of a list: its rows in order, and whether another page follows. */
export interface Page<Row> {
  rows: Row[];
  hasNextPage: boolean;
}

/** Where a newest-first list of rows ordered by a time, ties broken by id, stands (a cursor's content). */
export type TimeIdPosition = readonly [at: Date, id: string];

/**
 * The page of `query` after `after` in the order of `columns` (the last one unique, so the order is
 * total): `first + 1` rows are read, so one query tells both the page and whether more follow,
 * whatever the page size. `after` holds one value per column, as the previous page's last row had them.
 */
export async function readKeysetPage<DB, TB extends keyof DB, Row>(
  query: SelectQueryBuilder<DB, TB, Row>,
  order: { columns: readonly string[]; direction: "asc" | "desc" },
  page: { first: number; after?: readonly unknown[] },
): Promise<Page<Row>> {
  let q = query;
  if (page.after) q = q.where(beyond(order.columns, page.after, order.direction === "desc" ? "<" : ">"));
  for (const column of order.columns) q = q.orderBy(sql.ref(column), order.direction);
  const rows = await q.limit(page.first + 1).execute();
  return { rows: rows.slice(0, page.first), hasNextPage: rows.length > page.first };
}

/**
 * (c1, c2, …) strictly beyond (v1, v2, …) in lexicographic order, as a row comparison: an index on
 * the columns (after the tenant's) starts the scan there, where the spelled-out OR of
 * "c1 > v1, or c1 = v1 and c2 > v2" would scan from the top and filter, page after page.
 */
function beyond(columns: readonly string[], values: readonly unknown[], op: "<" | ">"): Expression<SqlBool> {
  return sql<SqlBool>`(${sql.join(columns.map((c) => sql.ref(c)))}) ${sql.raw(op)} (${sql.join(values.map((v) => sql`${v}`))})`;
}
