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
 * A projection write, as keyplane_execute (migrations/0013) runs it: `s`, the statement with its
 * values as literals (EXECUTE takes no variable list of parameters; every value is quoted with
 * sqlString, numbers and booleans too: a quoted constant takes the type of the column it meets); and
 * either `h` and `v`, a single-row INSERT split before its VALUES list (consecutive ones are merged
 * into one multi-row INSERT), or `q` and `p`, the statement with its $n placeholders and the literals
 * (run as a prepared statement: planned once per session).
 */
export interface ProjectionStatement {
  s: string;
  h?: string;
  v?: string;
  q?: string;
  p?: string[];
  /** Writes a lookup table (unique across tenants; on Citus a copy on every node), not the tenant's own. */
  lookup: boolean;
}

export function compileWrite(write: ProjectionWrite): ProjectionStatement {
  const compiled = write.compile();
  const lookup = LOOKUP_TABLES.has(tableOf(compiled));
  const p = compiled.parameters.map(literal);
  // Neither kysely nor a projection writes "$" in a statement's own text, so every $n is a placeholder.
  const s = compiled.sql.replace(/\$(\d+)/g, (_, n: string) => p[Number(n) - 1]!);
  const single = /^(insert into .+ values )\((?:\$\d+, )*\$\d+\)$/s.exec(compiled.sql);
  if (single) return { s, h: single[1]!, v: s.slice(single[1]!.length), lookup };
  return { s, q: compiled.sql, p, lookup };
}

/** What keyplane_execute takes of a statement. */
export function statementJson({ lookup: _, ...statement }: ProjectionStatement): Omit<ProjectionStatement, "lookup"> {
  return statement;
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
