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
 * A projection write, as keyplane_execute (migrations/0013) runs it: `q`, the statement with its $n
 * placeholders (run as a prepared statement of the session: planned once), and `a`, its values as an
 * argument list of literals, "(v1, v2, …)" (EXECUTE takes no variable list of parameters; every value
 * is quoted with sqlString, numbers and booleans too: a quoted constant takes the type of the column
 * or parameter it meets). A single-row INSERT also has `h`, its text before the VALUES list:
 * consecutive ones with the same `h` are merged into one multi-row INSERT.
 */
export interface ProjectionStatement {
  q: string;
  a: string;
  h?: string;
  /** Writes a lookup table (unique across tenants; on Citus a copy on every node), not the tenant's own. */
  lookup: boolean;
}

export function compileWrite(write: ProjectionWrite): ProjectionStatement {
  const compiled = write.compile();
  const lookup = LOOKUP_TABLES.has(tableOf(compiled));
  const a = compiled.parameters.length ? `(${compiled.parameters.map(literal).join(", ")})` : "";
  const single = /^(insert into .+ values )\((?:\$\d+, )*\$\d+\)$/s.exec(compiled.sql);
  return single ? { q: compiled.sql, a, h: single[1]!, lookup } : { q: compiled.sql, a, lookup };
}

/** What keyplane_execute takes of a statement. */
export function statementJson({ q, a, h }: ProjectionStatement): StatementJson {
  return h === undefined ? { q, a } : { q, a, h };
}
export type StatementJson = { q: string; a: string; h?: string };

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
