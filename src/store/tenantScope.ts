// Row-level security (migrations/0003) reads the transaction's scope from two settings:
// keyplane.tenant_id names the one tenant it may see, keyplane.platform = 'on' lets it see all.
//
// They are set with SET LOCAL, never with set_config(): Citus forwards SET commands (and only them) to
// every node the transaction touches, once citus.propagate_set_commands is 'local', which every
// connection sets at start (CITUS_SESSION_OPTIONS). Without it, shards on a worker see no tenant and
// row-level security hides every row there, silently. On PostgreSQL and PGlite the two forms are alike.

/**
 * A string as an SQL literal, for statements sent without bind parameters (SET takes none, and
 * several statements in one message cannot have any). E'' reads the same whatever
 * standard_conforming_strings says.
 */
export function sqlString(value: string): string {
  if (value.includes("\0")) throw new Error("a NUL character cannot be sent in a statement");
  return `E'${value.replace(/\\/g, "\\\\").replace(/'/g, "''")}'`;
}

/** SET LOCAL of a setting to a string. */
function setLocal(name: string, value: string): string {
  return `set local ${name} = ${sqlString(value)}`;
}

/** The statement that scopes a transaction to one tenant. */
export function tenantScope(tenantId: string): string {
  return setLocal("keyplane.tenant_id", tenantId);
}

/** The statement that lets a transaction see every tenant (platform operators, sweeps, rebuilds). */
export const PLATFORM_SCOPE = setLocal("keyplane.platform", "on");

/** The statements that end a scope inside a longer transaction (a released savepoint keeps its SETs). */
export const CLEARED_SCOPE = [setLocal("keyplane.tenant_id", ""), setLocal("keyplane.platform", "")];

/**
 * Startup option of every PostgreSQL connection. On Citus it makes SET LOCAL reach the workers; on
 * plain PostgreSQL it is an unused placeholder setting, harmless.
 */
export const CITUS_SESSION_OPTIONS = "-c citus.propagate_set_commands=local";
