import { z } from "zod";

// The only reader of process.env: everything else receives a typed Config.
const duration = z.coerce.number().int().positive();

const EnvSchema = z.object({
  NODE_ENV: z.enum(["development", "production", "test"]).default("development"),
  HOST: z.string().default("0.0.0.0"),
  PORT: z.coerce.number().int().min(0).max(65535).default(4000),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  DATABASE_URL: z.string().url().optional(),
  DATABASE_POOL_MAX: z.coerce.number().int().positive().default(10),
  KEYPLANE_DATA_DIR: z.string().default("./data"),
  KEYPLANE_MIGRATE_ON_START: z.enum(["true", "false"]).optional(),
  KEYPLANE_PUBLIC_URL: z.string().url().optional(),
  KEYPLANE_ISSUER: z.string().default("keyplane"),
  KEYPLANE_AUDIENCE: z.string().default("keyplane"),
  KEYPLANE_SIGNING_KEY: z.string().optional(),
  KEYPLANE_PREVIOUS_SIGNING_KEYS: z.string().optional(),
  AUTH_JWKS_URL: z.string().url().optional(),
  AUTH_ISSUER: z.string().optional(),
  AUTH_AUDIENCE: z.string().optional(),
  USER_TOKEN_TTL_SECONDS: duration.default(3600),
  SERVICE_TOKEN_TTL_SECONDS: duration.default(86400),
  REFRESH_TOKEN_TTL_SECONDS: duration.default(30 * 86400),
  MAX_BODY_BYTES: z.coerce.number().int().positive().default(1024 * 1024),
});

export type Env = z.infer<typeof EnvSchema>;

export interface Config {
  env: Env["NODE_ENV"];
  host: string;
  port: number;
  logLevel: Env["LOG_LEVEL"];
  database: { url?: string; poolMax: number };
  dataDir: string;
  migrateOnStart: boolean;
  publicUrl: string;
  auth: {
    issuer: string;
    audience: string;
    signingKey?: string;
    previousSigningKeys?: string;
    external?: { jwksUrl: string; issuer: string; audience: string };
    userTokenTtl: number;
    serviceTokenTtl: number;
    refreshTokenTtl: number;
  };
  maxBodyBytes: number;
}

export class ConfigError extends Error {}

export function loadConfig(source: NodeJS.ProcessEnv = process.env): Config {
  const parsed = EnvSchema.safeParse(source);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ");
    throw new ConfigError(`invalid configuration: ${problems}`);
  }
  const e = parsed.data;
  const externalParts = [e.AUTH_JWKS_URL, e.AUTH_ISSUER, e.AUTH_AUDIENCE];
  if (externalParts.some(Boolean) && !externalParts.every(Boolean)) {
    throw new ConfigError("invalid configuration: AUTH_JWKS_URL, AUTH_ISSUER and AUTH_AUDIENCE must be set together");
  }
  return {
    env: e.NODE_ENV,
    host: e.HOST,
    port: e.PORT,
    logLevel: e.LOG_LEVEL,
    database: { url: e.DATABASE_URL, poolMax: e.DATABASE_POOL_MAX },
    dataDir: e.KEYPLANE_DATA_DIR,
    // The embedded database belongs to this process, so it is always migrated; a shared one only on request.
    migrateOnStart: e.KEYPLANE_MIGRATE_ON_START ? e.KEYPLANE_MIGRATE_ON_START === "true" : !e.DATABASE_URL,
    publicUrl: e.KEYPLANE_PUBLIC_URL ?? `http://localhost:${e.PORT}`,
    auth: {
      issuer: e.KEYPLANE_ISSUER,
      audience: e.KEYPLANE_AUDIENCE,
      signingKey: e.KEYPLANE_SIGNING_KEY,
      previousSigningKeys: e.KEYPLANE_PREVIOUS_SIGNING_KEYS,
      external: e.AUTH_JWKS_URL ? { jwksUrl: e.AUTH_JWKS_URL, issuer: e.AUTH_ISSUER!, audience: e.AUTH_AUDIENCE! } : undefined,
      userTokenTtl: e.USER_TOKEN_TTL_SECONDS,
      serviceTokenTtl: e.SERVICE_TOKEN_TTL_SECONDS,
      refreshTokenTtl: e.REFRESH_TOKEN_TTL_SECONDS,
    },
    maxBodyBytes: e.MAX_BODY_BYTES,
  };
}
