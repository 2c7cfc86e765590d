-- Counters of the rate-limit policies (src/limits/policies.ts) when the limit store is the
-- database: several Keyplane processes on one PostgreSQL and no Redis. The layout is the one
-- rate-limiter-flexible's RateLimiterPostgres reads and writes (one upsert per count); Keyplane
-- tells it the table exists instead of letting it create one at start-up.
--
-- Not tenant data, so no tenant_id and no row-level security: a key names a policy and what it
-- counts (`kp:tenant:<tenant id>`, `kp:principal:<tenant id>:<subject>`, `kp:webhooks:<address>`),
-- `expire` is the end of its window in epoch milliseconds, and rows past it are deleted within
-- the hour.
create table rate_limits (
  key varchar(255) primary key,
  points integer not null default 0,
  expire bigint
);
create index rate_limits_expire on rate_limits (expire);
