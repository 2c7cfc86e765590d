import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { AppDeps } from "./app/deps.ts";
import { createAgentSweeper, type AgentSweeper } from "./app/agents/agentSweeper.ts";
import { createCheckpointSigner, type CheckpointSigner } from "./app/audit/checkpointSigner.ts";
import { createRetentionJob, type RetentionJob } from "./app/retention/retentionJob.ts";
import { createAuditSigner } from "./audit/auditSignatures.ts";
import { createCredentialRefresher, type CredentialRefresher } from "./app/installations/credentialRefresher.ts";
import { timeOutTasks } from "./app/tasks/timeOutTasks.ts";
import { createLogStreamDeliverer, type LogStreamDeliverer } from "./app/logStreams/logStreamDeliverer.ts";
import { createAlertEvaluator } from "./app/alerts/alertEvaluator.ts";
import type { LeasedWorkers } from "./runtime/leasedWorkers.ts";
import { createSecurityRecorder, securityRecorderOf } from "./app/recordSecurityEvent.ts";
import { loadSigningKeys } from "./auth/signingKeys.ts";
import { createTokenMinter } from "./auth/tokenMinter.ts";
import { createTokenVerifier } from "./auth/verifyToken.ts";
import { createAuthenticationCache } from "./runtime/authenticationCache.ts";
import { createTokenWatch } from "./auth/tokenWatch.ts";
import type { Config } from "./config.ts";
import { loadKeyring } from "./crypto/keyring.ts";
import { createProviders } from "./providers/registry.ts";
import { createEventFeed } from "./runtime/eventFeed.ts";
import { TokenCache } from "./runtime/githubTokenCache.ts";
import { createGitHubApps } from "./github/githubApps.ts";
import { createMetrics } from "./metrics.ts";
import { createRateLimits } from "./limits/rateLimits.ts";
import { createHttpServer } from "./http/server.ts";
import { graphQLWebSocketOf } from "./http/websocket.ts";
import { createLogger, type Logger } from "./logger.ts";
import { readOldestUnsignedEventAge } from "./store/audit/readOldestUnsignedEventAge.ts";
import { readLogStreamStats } from "./store/queries/logStreamDeliveryQueries.ts";
import { lockDataDir } from "./store/dataDirLock.ts";
import { openDatabase, type DatabaseHandle } from "./store/db.ts";
import { migrateToLatest } from "./store/migrate.ts";

export interface Keyplane {
  deps: AppDeps;
  database: DatabaseHandle;
  server: Server;
  /** Background refresh of rotating credentials; runs while the server listens. */
  refresher: CredentialRefresher;
  /** Marks silent agents offline, removes expired ephemeral ones, times out overdue tasks. */
  agentSweeper: AgentSweeper;
  /** Signs a checkpoint of each active tenant's hash chain every AUDIT_CHECKPOINT_INTERVAL_SECONDS. */
  checkpointSigner: CheckpointSigner;
  /** Prunes tenants' events older than their retention, behind signed checkpoints, every AUDIT_PRUNE_INTERVAL_SECONDS. */
  retention: RetentionJob;
  /** Delivers the tenants' log streams this process holds the lease of; runs while the server listens. */
  logStreams: LogStreamDeliverer;
  /** Evaluates the tenants' alert rules as their events are appended; runs while the server listens. */
  alerts: LeasedWorkers;
  listen(port?: number, host?: string): Promise<string>;
  close(): Promise<void>;
}

/**
 * The composition root: config -> database -> keys -> use-case deps -> transports.
 * The only place that wires things together; CLI and tests go through it too.
 */
export async function createKeyplane(config: Config, options: { logger?: Logger; database?: DatabaseHandle; now?: () => Date } = {}): Promise<Keyplane> {
  const logger = options.logger ?? createLogger({ level: config.logLevel });
  const embedded = !options.database && !config.database.url;
  const unlock = embedded ? lockDataDir(config.dataDir) : () => {};
  let database: DatabaseHandle | undefined;
  let githubApps: ReturnType<typeof createGitHubApps> | undefined;
  try {
    database =
      options.database ??
      (await openDatabase({
        url: config.database.url,
        poolMax: config.database.poolMax,
        connectTimeoutMs: config.database.connectTimeoutMs,
        dataDir: config.dataDir,
        onConnectionError: (error) =>
          logger.warn({ code: (error as { code?: string }).code, err: error.message }, "the database dropped a connection; the pool replaces it"),
      }));
    if (config.migrateOnStart) {
      const applied = await migrateToLatest(database);
      if (applied.length) logger.info({ applied }, "migrations applied");
    }
    const keys = await loadSigningKeys({
      pem: config.auth.signingKey,
      previousPems: config.auth.previousSigningKeys,
      dataDir: config.dataDir,
      // A generated key suits one process only: processes sharing a PostgreSQL must share KEYPLANE_SIGNING_KEY.
      allowGenerate: !config.database.url && config.env !== "production",
    });
    const keyring = loadKeyring({ spec: config.encryptionKeys, dataDir: config.dataDir, allowGenerate: !config.database.url && config.env !== "production" });
    // The clock (deps.now): the system's, unless a caller (a test) brings its own.
    const now = options.now ?? (() => new Date());
    const opened = database;
    const metrics = createMetrics({
      defaultMetrics: true,
      scrape: {
        dbPool: () => opened.poolStats?.(),
        auditCheckpointAge: cachedRead(() => readOldestUnsignedEventAge(opened.db), 30_000, logger, "the audit checkpoint age"),
        logStreams: cachedRead(() => readLogStreamStats(opened.db), 5_000, logger, "the log streams' health"),
      },
    });
    githubApps = createGitHubApps(config.githubApps, { logger, metrics, now });
    // A key in an HSM or KMS that cannot sign stops Keyplane at start, naming the app (as a bad PEM does).
    await githubApps.ready;
    const db = database.db;
    // Every refused credential (token, refresh token, enrollment key) counts against its address,
    // counted before the refusal is answered (so limits.refusedCredential sees it at once).
    const recorder = createSecurityRecorder({ db, logger, now });
    const security = securityRecorderOf(async (incident) => {
      if (incident.type !== "auth.failed") return recorder.record(incident);
      await Promise.all([limits.noteAuthFailure(incident.request.sourceIp), recorder.record(incident)]);
    });
    const limits = createRateLimits({ config: config.limits, db, logger, metrics, security: recorder });
    const deps: AppDeps = {
      db,
      config,
      logger,
      now,
      minter: createTokenMinter(keys, config.auth.issuer, config.auth.audience),
      verifier: createTokenVerifier({ keys, issuer: config.auth.issuer, audience: config.auth.audience, external: config.auth.external, now }),
      security,
      keyring,
      // GitHub installs go through the named apps; Slack and Jira through their providers.
      providers: { ...createProviders(config.providers, now), github: githubApps.defaultApp ? githubApps.provider(githubApps.defaultApp) : undefined },
      githubApps,
      tokenCache: new TokenCache(1000, 5 * 60_000, now),
      metrics,
      auditSigner: createAuditSigner(keys.current),
      limits,
      events: createEventFeed({ db, database, logger, metrics }, { pollMs: config.realtime.pollMs, maxQueued: config.realtime.maxQueuedEvents }),
      tokenWatch: createTokenWatch(db, { intervalMs: config.realtime.tokenCheckSeconds * 1000, logger, now }),
      standing: createAuthenticationCache({ db, database, logger }, { revalidateMs: config.auth.cacheRevalidateMs }),
    };
    await deps.events.start();
    await deps.standing.start();
    const server = createHttpServer(deps, database);
    const refresher = createCredentialRefresher(deps);
    const agentSweeper = createAgentSweeper(deps, {
      offlineAfterSeconds: config.agents.offlineAfterSeconds,
      intervalSeconds: config.agents.sweepIntervalSeconds,
      ephemeralGraceSeconds: config.agents.ephemeralGraceSeconds,
      afterSweep: () => timeOutTasks(deps),
    });
    const checkpointSigner = createCheckpointSigner({ ...deps, jwks: keys.jwks }, { intervalSeconds: config.audit.checkpointIntervalSeconds });
    const logStreams = createLogStreamDeliverer(deps);
    const alerts = createAlertEvaluator(deps);
    const retention = createRetentionJob(deps, database);
    const handle = database;
    return {
      deps,
      database: handle,
      server,
      refresher,
      agentSweeper,
      checkpointSigner,
      logStreams,
      alerts,
      retention,
      listen: (port = config.port, host = config.host) =>
        new Promise((resolve, reject) => {
          server.once("error", reject);
          server.listen(port, host, () => {
            const address = server.address() as AddressInfo;
            refresher.start();
            agentSweeper.start();
            checkpointSigner.start();
            logStreams.start();
            alerts.start();
            retention.start();
            resolve(`http://${address.family === "IPv6" ? `[${address.address}]` : address.address}:${address.port}`);
          });
        }),
      async close() {
        await logStreams.stop();
        await alerts.stop();
        await retention.stop();
        await refresher.stop();
        await deps.events.stop();
        await deps.standing.stop();
        await agentSweeper.stop();
        await checkpointSigner.stop();
        await githubApps?.close();
        // Open WebSockets would hold server.close() forever: they are closed (1001) first.
        await graphQLWebSocketOf(server)?.close();
        // Long-lived responses (SSE subscriptions) would hold server.close() forever: after a short
        // grace for requests in flight, every connection is cut.
        const grace = setTimeout(() => server.closeAllConnections(), 1000);
        await new Promise<void>((resolve) => (server.listening ? server.close(() => resolve()) : resolve()));
        clearTimeout(grace);
        server.closeAllConnections();
        await limits.close();
        if (!options.database) await handle.close();
        unlock();
      },
    };
  } catch (error) {
    await githubApps?.close().catch(() => {});
    if (!options.database) await database?.close().catch(() => {});
    unlock();
    throw error;
  }
}

/** A gauge's query, run at most once per `maxAgeMs` however often (and by how many) /metrics is scraped. */
function cachedRead<T>(read: () => Promise<T>, maxAgeMs: number, logger: Logger, what: string): () => Promise<T | undefined> {
  let last: { at: number; value: T | undefined } | undefined;
  let running: Promise<T | undefined> | undefined;
  return () => {
    if (last && Date.now() - last.at < maxAgeMs) return Promise.resolve(last.value);
    running ??= read().then(
      (value) => {
        last = { at: Date.now(), value };
        running = undefined;
        return value;
      },
      (error: unknown) => {
        logger.warn({ err: (error as Error).message }, `metrics: ${what} could not be read`);
        last = { at: Date.now(), value: undefined };
        running = undefined;
        return undefined;
      },
    );
    return running;
  };
}
