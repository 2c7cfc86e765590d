import { CompiledQuery } from "kysely";
import { Redis } from "ioredis";
import {
  RateLimiterMemory,
  RateLimiterPostgres,
  RateLimiterRedis,
  RLWrapperTimeouts,
  type RateLimiterAbstract,
  type RateLimiterRes,
} from "rate-limiter-flexible";
import type { Logger } from "../logger.ts";
import type { Metrics } from "../metrics.ts";
import type { Db } from "../store/db.ts";
import type { LimitsConfig } from "../config.ts";

/** A fixed-window counter: how much a key has consumed in its current window, and when that ends. */
export interface CounterState {
  consumed: number;
  msBeforeNext: number;
}

export interface Counter {
  /** Adds `points` to the key's count in its current window (a new window opens when none is). */
  hit(key: string, points?: number): Promise<CounterState>;
  /** Gives points back (a refused operation's cost). */
  refund(key: string, points: number): Promise<void>;
  /** The key's count in its current window, counting nothing (0 when no window is open). */
  peek(key: string): Promise<CounterState>;
}

export interface LimitStore {
  readonly kind: LimitsConfig["store"];
  counter(name: string, windowSeconds: number): Counter;
  close(): Promise<void>;
}

// The limiters only count: Keyplane compares the count with the limit of the moment (a tenant's
// tier can change between two requests of one window), so no limiter ever refuses on its own.
const NEVER = 2 ** 30;

/**
 * The counting store, from configuration:
 *  - memory: rate-limiter-flexible's RateLimiterMemory, for one process (the embedded default);
 *  - redis: RateLimiterRedis on ioredis (REDIS_URL), atomic INCR + PEXPIRE in one Lua call;
 *  - database: RateLimiterPostgres on Keyplane's own database (table rate_limits, migration 0009),
 *    one upsert per count, through kysely so the embedded PGlite works too.
 * A shared store is wrapped twice: RLWrapperTimeouts gives up after `storeTimeoutMs`, and an
 * in-memory insurance limiter counts instead whenever the store fails or is slow, so the request
 * path never waits on an unreachable store (limits are then per process until it is back).
 */
export function createLimitStore(config: LimitsConfig, deps: { db: Db; logger: Logger; metrics?: Metrics }): LimitStore {
  const log = deps.logger.child({ module: "limits" });
  let warnedAt = 0;
  const fellBack = (store: string) => {
    deps.metrics?.rateLimitStoreFallbacks.inc({ store });
    const now = Date.now();
    if (now - warnedAt > 30_000) {
      warnedAt = now;
      log.warn({ store }, "rate-limit store unavailable or slow: counting in this process until it answers again");
    }
  };
  const insurance = (name: string, windowSeconds: number, store: string) =>
    new InsuranceLimiter({ keyPrefix: `kp:${name}`, points: NEVER, duration: windowSeconds }, () => fellBack(store));

  if (config.store === "memory") {
    return {
      kind: "memory",
      counter: (name, windowSeconds) => counterOf(new RateLimiterMemory({ keyPrefix: `kp:${name}`, points: NEVER, duration: windowSeconds })),
      close: async () => {},
    };
  }

  if (config.store === "redis") {
    const redis = new Redis(config.redisUrl!, {
      // Fail fast while disconnected (the insurance limiter counts meanwhile) instead of queueing.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      connectTimeout: 2000,
      enableAutoPipelining: true,
      retryStrategy: (attempt) => Math.min(attempt * 200, 2000),
    });
    // Whether counts are shared right now, for operators (and for tests that need exact counts).
    deps.metrics?.rateLimitStoreUp.set({ store: "redis" }, 0);
    redis.on("ready", () => deps.metrics?.rateLimitStoreUp.set({ store: "redis" }, 1));
    redis.on("close", () => deps.metrics?.rateLimitStoreUp.set({ store: "redis" }, 0));
    let redisWarnedAt = 0;
    redis.on("error", (error: Error) => {
      const now = Date.now();
      if (now - redisWarnedAt > 30_000) {
        redisWarnedAt = now;
        log.warn({ err: error.message }, "redis (rate limits) connection error");
      }
    });
    return {
      kind: "redis",
      counter(name, windowSeconds) {
        const insuranceLimiter = insurance(name, windowSeconds, "redis");
        const limiter = new RateLimiterRedis({
          storeClient: redis,
          keyPrefix: `kp:${name}`,
          points: NEVER,
          duration: windowSeconds,
          rejectIfRedisNotReady: true,
          insuranceLimiter,
        });
        return counterOf(new RLWrapperTimeouts({ limiter, timeoutMs: config.storeTimeoutMs, insuranceLimiter }));
      },
      async close() {
        redis.disconnect();
      },
    };
  }

  // The database: rate-limiter-flexible's Postgres limiter issues plain parameterised SQL; kysely
  // runs it on the pool (or the embedded PGlite) outside any tenant transaction.
  const storeClient = {
    async query(q: { text: string; values?: unknown[] }) {
      const result = await deps.db.executeQuery(CompiledQuery.raw(q.text, q.values ?? []));
      const rows = (result.rows as Array<Record<string, unknown>>).map((row) => ({
        ...row,
        ...(row.points !== undefined ? { points: Number(row.points) } : {}),
        ...(row.expire !== undefined && row.expire !== null ? { expire: Number(row.expire) } : {}),
      }));
      return { rows, rowCount: result.numAffectedRows !== undefined ? Number(result.numAffectedRows) : rows.length };
    },
  };
  return {
    kind: "database",
    counter(name, windowSeconds) {
      const insuranceLimiter = insurance(name, windowSeconds, "database");
      const limiter = new RateLimiterPostgres({
        storeClient,
        storeType: "pool",
        tableName: "rate_limits",
        tableCreated: true,
        clearExpiredByTimeout: true,
        keyPrefix: `kp:${name}`,
        points: NEVER,
        duration: windowSeconds,
        insuranceLimiter,
      });
      return counterOf(new RLWrapperTimeouts({ limiter, timeoutMs: config.storeTimeoutMs, insuranceLimiter }));
    },
    close: async () => {},
  };
}

/** The insurance limiter: a memory limiter that says when it is used. */
class InsuranceLimiter extends RateLimiterMemory {
  constructor(
    options: ConstructorParameters<typeof RateLimiterMemory>[0],
    private readonly onUse: () => void,
  ) {
    super(options);
  }
  override consume(key: string | number, points?: number, options?: { [key: string]: unknown }): Promise<RateLimiterRes> {
    this.onUse();
    return super.consume(key, points, options);
  }
}

function counterOf(limiter: RateLimiterAbstract | RLWrapperTimeouts): Counter {
  return {
    async hit(key, points = 1) {
      const res = await limiter.consume(key, points);
      return { consumed: res.consumedPoints, msBeforeNext: Math.max(0, res.msBeforeNext) };
    },
    async refund(key, points) {
      await limiter.reward(key, points);
    },
    async peek(key) {
      const res = await limiter.get(key);
      return res ? { consumed: res.consumedPoints, msBeforeNext: Math.max(0, res.msBeforeNext) } : { consumed: 0, msBeforeNext: 0 };
    },
  };
}
