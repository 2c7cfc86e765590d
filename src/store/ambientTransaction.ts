import { AsyncLocalStorage } from "node:async_hooks";
import {
  CompiledQuery,
  type DatabaseConnection,
  type DatabaseIntrospector,
  type Dialect,
  type DialectAdapter,
  type Driver,
  type Kysely,
  type QueryCompiler,
  type TransactionSettings,
} from "kysely";
import { countRoundTrip } from "./roundTrips.ts";
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
// case must not leak into the next one's queries (on Citus, on every node: see tenantScope.ts), so
// every release carries CLEARED_SCOPE.

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

/** Whether queries on the root handle now join a runInOneTransaction's transaction. */
export function insideOneTransaction(): boolean {
  return openScope() !== undefined;
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

export interface DriverOptions {
  /**
   * Sends several statements without parameters in one message, on the session of the connection in
   * use: PostgreSQL's simple protocol takes them through any query; PGlite's query() takes one, its
   * exec() several (one session, so exec() runs inside the transaction kysely opened).
   */
  sendScript?: (script: string) => Promise<void>;
}

/** What travels with a transaction's BEGIN, in the same round trip: its scope (the SET LOCAL of tenantScope.ts). */
export interface TransactionBracket {
  open: string;
  connection?: DatabaseConnection;
}

const brackets = new AsyncLocalStorage<TransactionBracket>();

/** Runs fn (which opens one transaction) with `bracket` sent with that transaction's BEGIN. */
export function withTransactionBracket<T>(bracket: TransactionBracket, fn: () => Promise<T>): Promise<T> {
  return brackets.run(bracket, fn);
}

/**
 * A dialect whose driver serves runInOneTransaction and transaction brackets, and counts round trips;
 * outside those it is the dialect it wraps.
 */
export function withOneTransactionSupport(inner: Dialect, options: DriverOptions): Dialect {
  return {
    createAdapter: (): DialectAdapter => inner.createAdapter(),
    createDriver: (): Driver => new ScopedDriver(inner.createDriver(), options),
    createQueryCompiler: (): QueryCompiler => inner.createQueryCompiler(),
    createIntrospector: (db: Kysely<any>): DatabaseIntrospector => inner.createIntrospector(db),
  };
}

class ScopedDriver implements Driver {
  constructor(
    private readonly inner: Driver,
    private readonly options: DriverOptions,
  ) {}

  init(): Promise<void> {
    return this.inner.init();
  }

  async acquireConnection(): Promise<DatabaseConnection> {
    const scope = openScope();
    if (!scope) return this.metered(await this.inner.acquireConnection());
    if (scope.state === "opening") return (scope.connection = this.metered(await this.inner.acquireConnection()));
    while (scope.lent) await new Promise<void>((resolve) => scope.waiting.push(resolve));
    scope.lent = true;
    return scope.connection!;
  }

  async beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    const bracket = this.bracketFor(connection);
    const scope = this.lentFrom(connection);
    if (scope) {
      scope.nested++;
      return this.sendEach(connection, [`savepoint ${SAVEPOINT}`, ...(bracket ? [bracket.open] : [])]);
    }
    if (!bracket || settings.isolationLevel || settings.accessMode) return this.inner.beginTransaction(connection, settings);
    try {
      await this.send(connection, ["begin", bracket.open]);
    } catch (error) {
      // kysely rolls back only what began: a scope refused after BEGIN must not leave it open.
      await connection.executeQuery(CompiledQuery.raw("rollback")).catch(() => {});
      throw error;
    }
  }

  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    const scope = this.lentFrom(connection);
    if (!scope) return this.inner.commitTransaction(connection);
    scope.nested--;
    // Cleared inside the savepoint, then released (the release keeps it).
    return this.sendEach(connection, [...CLEARED_SCOPE, `release savepoint ${SAVEPOINT}`]);
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
    if (!scope) return this.inner.releaseConnection(this.unmetered.get(connection) ?? connection);
    scope.lent = false;
    scope.waiting.shift()?.();
  }

  destroy(): Promise<void> {
    return this.inner.destroy();
  }

  /**
   * The bracket of the scoped transaction beginning on this connection: the one of the innermost
   * withTransactionBracket around the caller, taken by the first transaction that begins inside it.
   */
  private bracketFor(connection: DatabaseConnection): TransactionBracket | undefined {
    const bracket = brackets.getStore();
    if (!bracket) return undefined;
    if (!bracket.connection) bracket.connection = connection;
    return bracket.connection === connection ? bracket : undefined;
  }

  /**
   * Inside a savepoint, one statement per message: Citus mishandles some messages that mix a
   * savepoint's commands, SET LOCAL and NOTIFY (a RELEASE followed by SETs fails the connection; a
   * NOTIFY followed by a SET LOCAL makes the commit try to PREPARE the transaction).
   */
  private async sendEach(connection: DatabaseConnection, statements: string[]): Promise<void> {
    for (const statement of statements) await this.send(connection, [statement]);
  }

  /** Statements without parameters, in one message: one round trip. */
  private async send(connection: DatabaseConnection, statements: string[]): Promise<void> {
    const script = statements.join("; ");
    if (!this.options.sendScript) {
      await connection.executeQuery(CompiledQuery.raw(script));
      return;
    }
    countRoundTrip();
    await this.options.sendScript(script);
  }

  // Each connection of the pool wrapped once, so that every statement sent on it is counted
  // (roundTrips.ts). The wrapper is the connection kysely and the scopes see; the pool gets its own back.
  private readonly meteredOf = new WeakMap<DatabaseConnection, DatabaseConnection>();
  private readonly unmetered = new WeakMap<DatabaseConnection, DatabaseConnection>();
  private metered(connection: DatabaseConnection): DatabaseConnection {
    let wrapped = this.meteredOf.get(connection);
    if (!wrapped) {
      wrapped = {
        executeQuery: (query) => {
          countRoundTrip();
          return connection.executeQuery(query);
        },
        streamQuery: (query, chunkSize) => {
          countRoundTrip();
          return connection.streamQuery(query, chunkSize);
        },
      };
      this.meteredOf.set(connection, wrapped);
      this.unmetered.set(wrapped, connection);
    }
    return wrapped;
  }

  /** The scope that lent `connection` to a user inside it (not its own outer transaction). */
  private lentFrom(connection: DatabaseConnection): Scope | undefined {
    const scope = ambient.getStore();
    return scope && scope.connection === connection && scope.state === "open" && scope.lent ? scope : undefined;
  }
}
