import { AsyncLocalStorage } from "node:async_hooks";
import { CompiledQuery, type DatabaseConnection, type DatabaseIntrospector, type Dialect, type DialectAdapter, type Driver, type Kysely, type QueryCompiler, type TransactionSettings } from "kysely";
import { CLEARED_SCOPE } from "./tenantScope.ts";

// One transaction around a whole unit of work that is made of many (an idempotent mutation: its
// claim, every transaction its use cases open, and its stored response commit together, or none of
// them does). Inside runInOneTransaction, every query on the root Kysely handle, in whatever module,
// runs on that transaction's connection: a transaction opened inside becomes a savepoint, and the
// connection is lent to one user at a time, as PGlite's single connection is (code that works on
// PGlite cannot deadlock here). Outside, nothing changes.

interface Scope {
  state: "opening" | "open" | "closing" | "closed";
  connection?: DatabaseConnection;
  /** Whether the connection is lent to a user inside the scope now, and who waits for it. */
  lent: boolean;
  waiting: Array<() => void>;
  /** Savepoints of users inside, by connection use (one at a time, so at most one). */
  nested: number;
  /** Work to run once the transaction has ended (committed or rolled back), outside it. */
  after: Array<() => Promise<unknown>>;
}

const ambient = new AsyncLocalStorage<Scope>();
const SAVEPOINT = "keyplane_nested";
// A released savepoint keeps what its transaction SET LOCAL: the tenant (or the platform) of one use
// case must not leak into the next one's queries (on Citus, on every node: see tenantScope.ts).
const RESET_SCOPE = CLEARED_SCOPE.map((statement) => CompiledQuery.raw(statement));

const openScope = (): Scope | undefined => {
  const scope = ambient.getStore();
  return scope && scope.state !== "closed" && scope.state !== "closing" ? scope : undefined;
};

/**
 * Runs fn with every query of `db` (and of any module using it) inside one transaction, committed
 * when fn resolves and rolled back when it throws. Work registered with afterTransaction runs once
 * the transaction has ended, outside it, before this resolves.
 */
export async function runInOneTransaction<T>(db: Kysely<any>, fn: () => Promise<T>): Promise<T> {
  const scope: Scope = { state: "opening", lent: false, waiting: [], nested: 0, after: [] };
  try {
    return await ambient.run(scope, () =>
      db.transaction().execute(async () => {
        scope.state = "open";
        try {
          return await fn();
        } finally {
          // Work still holding the connection finishes before the commit or rollback.
          while (scope.lent) await new Promise<void>((resolve) => scope.waiting.push(resolve));
          scope.state = "closing";
        }
      }),
    );
  } finally {
    scope.state = "closed";
    for (const work of scope.after.splice(0)) await ambient.exit(work).catch(() => {});
  }
}

/**
 * Inside runInOneTransaction: keeps `work` for after the transaction ends (true); elsewhere false,
 * and the caller does it now. For records that must survive a rollback (security events).
 */
export function afterTransaction(work: () => Promise<unknown>): boolean {
  const scope = openScope();
  if (!scope) return false;
  scope.after.push(work);
  return true;
}

/** A dialect whose driver serves runInOneTransaction; outside one it is the dialect it wraps. */
export function withOneTransactionSupport(inner: Dialect): Dialect {
  return {
    createAdapter: (): DialectAdapter => inner.createAdapter(),
    createDriver: (): Driver => new ScopedDriver(inner.createDriver()),
    createQueryCompiler: (): QueryCompiler => inner.createQueryCompiler(),
    createIntrospector: (db: Kysely<any>): DatabaseIntrospector => inner.createIntrospector(db),
  };
}

class ScopedDriver implements Driver {
  constructor(private readonly inner: Driver) {}

  init(): Promise<void> {
    return this.inner.init();
  }

  async acquireConnection(): Promise<DatabaseConnection> {
    const scope = openScope();
    if (!scope) return this.inner.acquireConnection();
    if (scope.state === "opening") return (scope.connection = await this.inner.acquireConnection());
    while (scope.lent) await new Promise<void>((resolve) => scope.waiting.push(resolve));
    scope.lent = true;
    return scope.connection!;
  }

  async beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    if (!this.lentFrom(connection)) return this.inner.beginTransaction(connection, settings);
    this.lentFrom(connection)!.nested++;
    await connection.executeQuery(CompiledQuery.raw(`savepoint ${SAVEPOINT}`));
  }

  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    const scope = this.lentFrom(connection);
    if (!scope) return this.inner.commitTransaction(connection);
    scope.nested--;
    await connection.executeQuery(CompiledQuery.raw(`release savepoint ${SAVEPOINT}`));
    for (const statement of RESET_SCOPE) await connection.executeQuery(statement);
  }

  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    const scope = this.lentFrom(connection);
    if (!scope) return this.inner.rollbackTransaction(connection);
    scope.nested--;
    // Rolling back to a savepoint also undoes its SET LOCAL; the savepoint itself is then released.
    await connection.executeQuery(CompiledQuery.raw(`rollback to savepoint ${SAVEPOINT}`));
    await connection.executeQuery(CompiledQuery.raw(`release savepoint ${SAVEPOINT}`));
  }

  async releaseConnection(connection: DatabaseConnection): Promise<void> {
    const scope = this.lentFrom(connection);
    if (!scope) return this.inner.releaseConnection(connection);
    scope.lent = false;
    scope.waiting.shift()?.();
  }

  destroy(): Promise<void> {
    return this.inner.destroy();
  }

  /** The scope that lent `connection` to a user inside it (not its own outer transaction). */
  private lentFrom(connection: DatabaseConnection): Scope | undefined {
    const scope = ambient.getStore();
    return scope && scope.connection === connection && scope.state === "open" && scope.lent ? scope : undefined;
  }
}
