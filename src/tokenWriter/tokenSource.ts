import { readFile } from "node:fs/promises";
import { DomainError } from "../errors.ts";
import { fingerprint } from "../crypto/fingerprint.ts";

// Where `keyplane github-token` gets its installation token: from Keyplane's GraphQL API with a service
// token (brokered: the workload never sees the app's private key), or from GitHub with the app's key
// (direct). Either way a failure is one of four kinds, which decide the exit status and the retry.

/** What the workload asks for. Repository names are without owner. */
export interface TokenSpec {
  app: string;
  installationId?: number;
  owner?: string;
  /** owner/name: selects the installation. */
  repository?: string;
  repositories?: string[];
  permissions?: Record<string, string>;
}

export interface IssuedToken {
  token: string;
  expiresAt: Date;
  /** As the source names it (GitHub's installation id in direct mode; Keyplane's answer in brokered mode). */
  installationId: string | number | null;
  repositories: string[] | null;
  permissions: Record<string, string> | null;
  /** Brokered mode: Keyplane served it from its cache. */
  cached?: boolean;
  /** sha256:… of the token, for logs. */
  fingerprint: string;
}

/**
 * config: the command cannot work as configured (exit 2, also in watch mode at start);
 * refused: GitHub or Keyplane said no (exit 3); unavailable: network, timeout, 5xx (exit 4);
 * rate_limited: told to come back after retryAfterMs (exit 3 when waiting is not an option).
 */
export type FailureKind = "config" | "refused" | "unavailable" | "rate_limited";

export class TokenSourceError extends Error {
  constructor(
    readonly kind: FailureKind,
    message: string,
    /** The code Keyplane or GitHub gave (FORBIDDEN, NOT_FOUND, network_error…), when there is one. */
    readonly code?: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = "TokenSourceError";
  }
}

export const EXIT_CODE: Record<FailureKind, number> = { config: 2, refused: 3, rate_limited: 3, unavailable: 4 };

export interface TokenSource {
  readonly mode: "direct" | "brokered";
  /** One request for a token; throws TokenSourceError. `deadline` is epoch ms, `signal` aborts a stop. */
  issue(deadline: number, signal?: AbortSignal): Promise<IssuedToken>;
  /** Direct mode: stops watching files and closes the app's signer (a PKCS#11 session, a KMS client). */
  close(): void | Promise<void>;
}

// ---------------------------------------------------------------- brokered

export const ISSUE_GITHUB_TOKEN = `mutation IssueGitHubToken($input: IssueGitHubTokenInput!) {
  issueGitHubToken(input: $input) { id token expiresAt installationId repositories permissions cached fingerprint }
}`;

const REFUSALS = new Set([
  "FORBIDDEN",
  "NOT_FOUND",
  "BAD_USER_INPUT",
  "PROVIDER_ERROR",
  "UNAUTHENTICATED",
  "CONFLICT",
  "GRAPHQL_VALIDATION_FAILED",
  "GRAPHQL_PARSE_FAILED",
  "BAD_REQUEST",
]);

/** The GraphQL endpoint for a base URL given with or without /graphql. */
export function graphqlEndpoint(base: string): string {
  const url = new URL(base);
  if (!/\/graphql\/?$/.test(url.pathname)) url.pathname = `${url.pathname.replace(/\/+$/, "")}/graphql`;
  return url.toString();
}

export function brokeredSource(options: { keyplaneUrl: string; tokenFile: string; spec: TokenSpec; fetch?: typeof fetch }): TokenSource {
  const endpoint = graphqlEndpoint(options.keyplaneUrl);
  const doFetch = options.fetch ?? fetch;
  const { spec } = options;
  const input: Record<string, unknown> = { app: spec.app };
  if (spec.installationId !== undefined) input.installationId = spec.installationId;
  if (spec.owner !== undefined) input.owner = spec.owner;
  if (spec.repository !== undefined) input.repository = spec.repository;
  if (spec.repositories !== undefined) input.repositories = spec.repositories;
  if (spec.permissions !== undefined) input.permissions = spec.permissions;
  // The writer replaces a token 5-10 minutes before it expires: a cached one must outlive that.
  input.minValiditySeconds = 15 * 60;

  return {
    mode: "brokered",
    close() {},
    async issue(deadline, signal) {
      // Read on every request: a projected service-account token is rotated in place by the kubelet.
      let serviceToken: string;
      try {
        serviceToken = (await readFile(options.tokenFile, "utf8")).trim();
      } catch (error) {
        throw new TokenSourceError("config", `cannot read --token-file ${options.tokenFile} (${(error as NodeJS.ErrnoException).code ?? "error"})`);
      }
      if (!serviceToken) throw new TokenSourceError("config", `--token-file ${options.tokenFile} is empty`);

      const timeout = AbortSignal.timeout(Math.max(1, deadline - Date.now()));
      let response: Response;
      let text: string;
      try {
        response = await doFetch(endpoint, {
          method: "POST",
          headers: {
            "content-type": "application/json",
            accept: "application/graphql-response+json, application/json",
            authorization: `Bearer ${serviceToken}`,
          },
          body: JSON.stringify({ query: ISSUE_GITHUB_TOKEN, variables: { input } }),
          redirect: "error",
          signal: signal ? AbortSignal.any([timeout, signal]) : timeout,
        });
        text = await response.text();
      } catch (error) {
        const name = error instanceof Error ? error.name : "";
        const code = name === "TimeoutError" ? "timeout" : name === "AbortError" ? "aborted" : "network_error";
        throw new TokenSourceError("unavailable", `Keyplane at ${new URL(endpoint).origin} did not answer (${code}${causeCode(error)})`, code);
      }
      return readAnswer(response, text, endpoint);
    },
  };
}

function causeCode(error: unknown): string {
  const cause = (error as { cause?: { code?: unknown } } | null)?.cause;
  return cause && typeof cause.code === "string" ? `: ${cause.code}` : "";
}

interface GraphQLAnswer {
  data?: { issueGitHubToken?: Record<string, unknown> | null } | null;
  errors?: Array<{ message?: unknown; extensions?: { code?: unknown; retryAfter?: unknown } }>;
}

function readAnswer(response: Response, text: string, endpoint: string): IssuedToken {
  let body: GraphQLAnswer | undefined;
  try {
    body = JSON.parse(text) as GraphQLAnswer;
  } catch {
    body = undefined;
  }
  const where = new URL(endpoint).origin;
  const error = body?.errors?.[0];
  if (error) {
    const code = typeof error.extensions?.code === "string" ? error.extensions.code : "UNKNOWN";
    const message = typeof error.message === "string" ? error.message.slice(0, 300) : "error";
    if (code === "RATE_LIMITED") {
      const seconds = Number(error.extensions?.retryAfter);
      throw new TokenSourceError("rate_limited", `Keyplane: ${message}`, code, Number.isFinite(seconds) && seconds >= 0 ? seconds * 1000 : 60_000);
    }
    if (REFUSALS.has(code)) throw new TokenSourceError("refused", `Keyplane refused: ${message} (${code})`, code);
    // Masked internal errors and anything unknown: the service is not working right now.
    throw new TokenSourceError("unavailable", `Keyplane failed: ${message} (${code}, HTTP ${response.status})`, code);
  }
  if (response.status >= 500) throw new TokenSourceError("unavailable", `Keyplane at ${where} answered HTTP ${response.status}`, `http_${response.status}`);
  if (response.status === 429)
    throw new TokenSourceError("rate_limited", `Keyplane at ${where} answered HTTP 429`, "http_429", retryAfterHeader(response) ?? 60_000);
  if (response.status >= 400) throw new TokenSourceError("refused", `Keyplane at ${where} answered HTTP ${response.status}`, `http_${response.status}`);
  const issued = body?.data?.issueGitHubToken;
  const token = issued?.token;
  const expiresAt = typeof issued?.expiresAt === "string" ? new Date(issued.expiresAt) : undefined;
  if (!issued || typeof token !== "string" || !token || !expiresAt || Number.isNaN(expiresAt.getTime())) {
    throw new TokenSourceError("unavailable", `Keyplane at ${where} gave no token (HTTP ${response.status})`, "bad_answer");
  }
  const installationId = issued.installationId;
  return {
    token,
    expiresAt,
    installationId: typeof installationId === "string" || typeof installationId === "number" ? installationId : null,
    repositories: Array.isArray(issued.repositories) ? issued.repositories.filter((r): r is string => typeof r === "string") : null,
    permissions: issued.permissions && typeof issued.permissions === "object" ? (issued.permissions as Record<string, string>) : null,
    cached: typeof issued.cached === "boolean" ? issued.cached : undefined,
    fingerprint: typeof issued.fingerprint === "string" && issued.fingerprint ? issued.fingerprint : fingerprint(token),
  };
}

function retryAfterHeader(response: Response): number | undefined {
  const seconds = Number(response.headers.get("retry-after"));
  return Number.isFinite(seconds) && seconds >= 0 ? seconds * 1000 : undefined;
}

// ---------------------------------------------------------------- direct

/**
 * A DomainError (or anything else) from the GitHub App client as a failure kind. PROVIDER_ERROR is a
 * refusal when GitHub answered (401/403: wrong key, suspended installation) and unavailability when it
 * could not be reached or kept failing (network, timeout, 5xx).
 */
export function classifyGitHubError(error: unknown): TokenSourceError {
  if (error instanceof TokenSourceError) return error;
  if (error instanceof DomainError) {
    const ext = error.extensions;
    const said = /github/i.test(error.message) ? error.message : `GitHub: ${error.message}`;
    const providerCode = typeof ext.providerCode === "string" ? ext.providerCode : undefined;
    switch (error.code) {
      case "RATE_LIMITED": {
        const seconds = Number(ext.retryAfter);
        return new TokenSourceError("rate_limited", said, error.code, Number.isFinite(seconds) && seconds >= 0 ? seconds * 1000 : 60_000);
      }
      case "PROVIDER_ERROR": {
        const kind = (error as { kind?: unknown }).kind;
        const status = Number((error as { httpStatus?: unknown }).httpStatus ?? ext.status ?? ext.httpStatus);
        const transient =
          kind === "transient" ||
          (Number.isFinite(status) && (status >= 500 || status === 429)) ||
          (providerCode !== undefined && /^(network_error|timeout|server_error|unavailable|upstream_error|rate_limited|http_5\d\d)$/.test(providerCode));
        return new TokenSourceError(transient ? "unavailable" : "refused", said, providerCode ?? error.code);
      }
      default:
        return new TokenSourceError("refused", said, error.code);
    }
  }
  const name = error instanceof Error ? error.name : "";
  if (name === "TimeoutError" || name === "AbortError") return new TokenSourceError("unavailable", "GitHub did not answer in time", "timeout");
  if (error instanceof TypeError && /fetch failed/i.test(error.message))
    return new TokenSourceError("unavailable", `GitHub could not be reached${causeCode(error)}`, "network_error");
  return new TokenSourceError("unavailable", `GitHub request failed: ${error instanceof Error ? error.message : String(error)}`, "error");
}
