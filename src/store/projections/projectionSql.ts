import { DummyDriver, Kysely, PostgresAdapter, PostgresIntrospector, PostgresQueryCompiler, type CompiledQuery } from "kysely";
import { REFERENCE_TABLES } from "../citus.ts";
import type { Database } from "../schema.ts";
import { sqlString } from "../tenantScope.ts";
import type { ProjectionWrite } from "./projection.ts";

/** Builds projection writes without a connection: they are compiled to SQL here, never executed by kysely. */
export const statementBuilder = new Kysely<Database>({
  dialect: {
    createAdapter: () => new PostgresAdapter(),
    createDriver: () => new DummyDriver(),
    createIntrospector: (db) => new PostgresIntrospector(db),
    createQueryCompiler: () => new PostgresQueryCompiler(),
  },
});

const LOOKUP_TABLES: ReadonlySet<string> = new Set(REFERENCE_TABLES);

/**
 * A projection write as one SQL statement whose values are literals: the append function runs it with
 * EXECUTE, which takes no variable list of parameters. Every value is quoted (sqlString), numbers and
 * booleans too: a quoted constant takes the type of the column it meets.
 */
export interface ProjectionStatement {
  sql: string;
  /** Writes a lookup table (unique across tenants; on Citus a copy on every node), not the tenant's own. */
  lookup: boolean;
  /** A plain single-row INSERT: the text before its VALUES list, so a rebuild can merge consecutive ones. */
  insertHead?: string;
  values?: string;
}

export function compileWrite(write: ProjectionWrite): ProjectionStatement {
  const compiled = write.compile();
  const table = tableOf(compiled);
  const lits = compiled.parameters.map(literal);
  // kysely writes no literal of its own into these statements, so every $n is a placeholder.
  const sql = compiled.sql.replace(/\$(\d+)/g, (_, n: string) => lits[Number(n) - 1]!);
  const single = /^(insert into .+ values )\((?:\$\d+, )*\$\d+\)$/s.exec(compiled.sql);
  return single ? { sql, lookup: LOOKUP_TABLES.has(table), insertHead: single[1], values: sql.slice(single[1]!.length) } : { sql, lookup: LOOKUP_TABLES.has(table) };
}

/**
 * Consecutive single-row INSERTs into the same columns become one multi-row INSERT (a rebuild's pages
 * are mostly such runs); the order of every other write is kept.
 */
export function mergeInserts(statements: readonly ProjectionStatement[]): string[] {
  const out: string[] = [];
  let head: string | undefined;
  let rows: string[] = [];
  const flush = () => {
    if (head) out.push(head + rows.join(", "));
    head = undefined;
    rows = [];
  };
  for (const s of statements) {
    if (s.insertHead && s.insertHead === head) {
      rows.push(s.values!);
      continue;
    }
    flush();
    if (s.insertHead) {
      head = s.insertHead;
      rows = [s.values!];
    } else out.push(s.sql);
  }
  flush();
  return out;
}

function literal(value: unknown): string {
  if (value === null || value === undefined) return "null";
  if (typeof value === "string") return sqlString(value);
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new Error(`a projection value must be finite, got ${value}`);
    return `'${value}'`;
  }
  if (typeof value === "boolean" || typeof value === "bigint") return `'${value}'`;
  if (value instanceof Date) return sqlString(value.toISOString());
  return sqlString(JSON.stringify(value));
}

function tableOf(compiled: CompiledQuery): string {
  const node = compiled.query as unknown as { kind: string; into?: TableNode; table?: TableNode; from?: { froms: TableNode[] } };
  const table = node.kind === "InsertQueryNode" ? node.into : node.kind === "UpdateQueryNode" ? node.table : node.from?.froms[0];
  const name = table?.table?.identifier?.name;
  if (!name) throw new Error(`a projection write must name its table (${node.kind})`);
  return name;
}
type TableNode = { table?: { identifier?: { name?: string } } };
