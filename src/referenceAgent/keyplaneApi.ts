// The HTTP half of the reference agent's conversation with Keyplane: one GraphQL request, and what a
// failure means for the agent (retry later, refresh the token, give up on this task, or stop).

/**
 * unavailable: network, timeout, 5xx, a masked internal error: try again later.
 * auth: the token was refused (UNAUTHENTICATED, HTTP 401): refresh it, or enroll again.
 * conflict: CONFLICT (a task another attempt has, or no longer pending).
 * rate_limited: come back after retryAfterMs.
 * refused: anything else the server said no to (FORBIDDEN, NOT_FOUND, BAD_USER_INPUT, an unknown field).
 */
export type ApiFailure = "unavailable" | "auth" | "conflict" | "rate_limited" | "refused";

export class ApiError extends Error {
  constructor(
    readonly kind: ApiFailure,
    message: string,
    /** extensions.code, or network_error / timeout / http_<status>. */
    readonly code: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

export interface GraphQLRequestOptions {
  /** The access token (sent as Bearer); absent for enrollAgent and refreshSession. */
  token?: string;
  /** Idempotency-Key: a retried mutation is answered with the first result instead of running twice. */
  idempotencyKey?: string;
  timeoutMs: number;
  signal?: AbortSignal;
}

export type GraphQLRequest = <T = Record<string, unknown>>(query: string, variables: Record<string, unknown>, options: GraphQLRequestOptions) => Promise<T>;

/** The GraphQL endpoint for a base URL given with or without /graphql. */
export function graphqlEndpoint(base: string): string {
  const url = new URL(base);
  if (!/\/graphql\/?$/.test(url.pathname)) url.pathname = `${url.pathname.replace(/\/+$/, "")}/graphql`;
  return url.toString();
}

/** The graphql-ws address of the same endpoint (ws: for http:, wss: for https:). */
export function websocketEndpoint(base: string): string {
  const url = new URL(graphqlEndpoint(base));
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url.toString();
}

const REFUSALS = new Set(["FORBIDDEN", "NOT_FOUND", "BAD_USER_INPUT", "GRAPHQL_VALIDATION_FAILED", "GRAPHQL_PARSE_FAILED", "BAD_REQUEST", "PROVIDER_ERROR"]);

/** A GraphQL error's code as a failure kind (used for HTTP answers and graphql-ws `error` messages alike). */
export function failureOfCode(code: string): ApiFailure {
  if (code === "UNAUTHENTICATED") return "auth";
  if (code === "CONFLICT") return "conflict";
  if (code === "RATE_LIMITED") return "rate_limited";
  if (REFUSALS.has(code)) return "refused";
  return "unavailable";
}

interface GraphQLAnswer {
  data?: Record<string, unknown> | null;
  errors?: Array<{ message?: unknown; extensions?: { code?: unknown; retryAfter?: unknown } }>;
}

/** POSTs GraphQL requests to `endpoint`; every failure is an ApiError. Never puts a token in a message. */
export function graphqlClient(endpoint: string, doFetch: typeof fetch = fetch): GraphQLRequest {
  const origin = new URL(endpoint).origin;
  return async <T>(query: string, variables: Record<string, unknown>, options: GraphQLRequestOptions): Promise<T> => {
    const headers: Record<string, string> = { "content-type": "application/json", accept: "application/graphql-response+json, application/json" };
    if (options.token) headers.authorization = `Bearer ${options.token}`;
    if (options.idempotencyKey) headers["idempotency-key"] = options.idempotencyKey;
    const timeout = AbortSignal.timeout(Math.max(1, options.timeoutMs));
    let response: Response;
    let text: string;
    try {
      response = await doFetch(endpoint, {
        method: "POST",
        headers,
        body: JSON.stringify({ query, variables }),
        redirect: "error",
        signal: options.signal ? AbortSignal.any([timeout, options.signal]) : timeout,
      });
      text = await response.text();
    } catch (error) {
      const name = error instanceof Error ? error.name : "";
      const code = name === "TimeoutError" ? "timeout" : name === "AbortError" ? "aborted" : "network_error";
      throw new ApiError("unavailable", `Keyplane at ${origin} did not answer (${code}${causeCode(error)})`, code);
    }
    let body: GraphQLAnswer | undefined;
    try {
      body = JSON.parse(text) as GraphQLAnswer;
    } catch {
      body = undefined;
    }
    const first = body?.errors?.[0];
    if (first) {
      const code = typeof first.extensions?.code === "string" ? first.extensions.code : response.status === 401 ? "UNAUTHENTICATED" : "UNKNOWN";
      const message = typeof first.message === "string" ? first.message.slice(0, 300) : "error";
      const kind = failureOfCode(code);
      const seconds = Number(first.extensions?.retryAfter);
      const retryAfterMs = kind === "rate_limited" ? (Number.isFinite(seconds) && seconds >= 0 ? seconds * 1000 : 60_000) : undefined;
      throw new ApiError(kind, `${message} (${code}${kind === "unavailable" ? `, HTTP ${response.status}` : ""})`, code, retryAfterMs);
    }
    if (response.status === 401) throw new ApiError("auth", `Keyplane at ${origin} answered HTTP 401`, "http_401");
    if (response.status === 429)
      throw new ApiError("rate_limited", `Keyplane at ${origin} answered HTTP 429`, "http_429", retryAfterHeader(response) ?? 60_000);
    if (response.status >= 500) throw new ApiError("unavailable", `Keyplane at ${origin} answered HTTP ${response.status}`, `http_${response.status}`);
    if (response.status >= 400) throw new ApiError("refused", `Keyplane at ${origin} answered HTTP ${response.status}`, `http_${response.status}`);
    if (!body?.data) throw new ApiError("unavailable", `Keyplane at ${origin} gave no data (HTTP ${response.status})`, "bad_answer");
    return body.data as T;
  };
}

function causeCode(error: unknown): string {
  const cause = (error as { cause?: { code?: unknown } } | null)?.cause;
  return cause && typeof cause.code === "string" ? `: ${cause.code}` : "";
}

function retryAfterHeader(response: Response): number | undefined {
  const header = response.headers.get("retry-after");
  if (header === null) return undefined;
  const seconds = Number(header);
  return Number.isFinite(seconds) && seconds >= 0 ? seconds * 1000 : undefined;
}

// ---------------------------------------------------------------- the contract

export const ENROLL_AGENT = `mutation EnrollAgent($input: EnrollAgentInput!) {
  enrollAgent(input: $input) { agentId tenantId accessToken refreshToken expiresAt refreshExpiresAt }
}`;

export const REFRESH_SESSION = `mutation RefreshSession($refreshToken: String!) {
  refreshSession(refreshToken: $refreshToken) { accessToken refreshToken expiresAt refreshExpiresAt }
}`;

export const AGENT_HEARTBEAT = `mutation AgentHeartbeat($input: AgentHeartbeatInput!) {
  agentHeartbeat(input: $input) { agentId connection lastSeenAt }
}`;

const TASK_FIELDS = "id kind payload status timeoutSeconds dispatchedAt";

export const AGENT_TASKS = `subscription AgentTasks { agentTasks { ${TASK_FIELDS} } }`;

export const PENDING_TASKS = `query PendingTasks($first: Int!) { pendingTasks(first: $first) { ${TASK_FIELDS} } }`;

export const CLAIM_TASK = `mutation ClaimTask($id: ID!) { claimTask(id: $id) { id status } }`;

export const REPORT_TASK_PROGRESS = `mutation ReportTaskProgress($id: ID!, $progress: JSON, $message: String) {
  reportTaskProgress(id: $id, progress: $progress, message: $message) { id }
}`;

export const COMPLETE_TASK = `mutation CompleteTask($id: ID!, $result: JSON!) { completeTask(id: $id, result: $result) { id status } }`;

export const FAIL_TASK = `mutation FailTask($id: ID!, $error: String!) { failTask(id: $id, error: $error) { id status } }`;

/** A task as Keyplane hands it to its agent. */
export interface AgentTask {
  id: string;
  kind: string;
  payload: unknown;
  status: string;
  timeoutSeconds: number | null;
  dispatchedAt: string | null;
}

/** A task from a subscription event or a pendingTasks page, or null when it is not one. */
export function taskOf(value: unknown): AgentTask | null {
  if (!value || typeof value !== "object") return null;
  const t = value as Record<string, unknown>;
  if (typeof t.id !== "string" || !t.id || typeof t.kind !== "string") return null;
  return {
    id: t.id,
    kind: t.kind,
    payload: t.payload ?? null,
    status: typeof t.status === "string" ? t.status : "pending",
    timeoutSeconds: typeof t.timeoutSeconds === "number" && Number.isFinite(t.timeoutSeconds) && t.timeoutSeconds > 0 ? t.timeoutSeconds : null,
    dispatchedAt: typeof t.dispatchedAt === "string" ? t.dispatchedAt : null,
  };
}

/** The session pair enrollAgent and refreshSession answer with. */
export interface SessionPair {
  accessToken: string;
  refreshToken: string;
  expiresAt: string;
  refreshExpiresAt: string | null;
}

/** The pair in an answer, or an ApiError("unavailable") when the answer is not one. */
export function sessionPairOf(value: unknown, what: string): SessionPair {
  const v = (value ?? {}) as Record<string, unknown>;
  const expires = typeof v.expiresAt === "string" ? Date.parse(v.expiresAt) : NaN;
  if (typeof v.accessToken !== "string" || !v.accessToken || typeof v.refreshToken !== "string" || !v.refreshToken || Number.isNaN(expires)) {
    throw new ApiError("unavailable", `Keyplane's answer to ${what} holds no usable token pair`, "bad_answer");
  }
  return {
    accessToken: v.accessToken,
    refreshToken: v.refreshToken,
    expiresAt: new Date(expires).toISOString(),
    refreshExpiresAt:
      typeof v.refreshExpiresAt === "string" && !Number.isNaN(Date.parse(v.refreshExpiresAt)) ? new Date(v.refreshExpiresAt).toISOString() : null,
  };
}

// GitHub operations: Keyplane acts on GitHub as the agent's linked identity (or an installation token a
// token policy allows); the agent never holds a GitHub token for them.

export const GITHUB_FORK = `mutation GitHubFork($input: GitHubForkInput!) {
  githubFork(input: $input) { repository fork url owner defaultBranch via actedAs }
}`;

export const GITHUB_COMMIT_FILE = `mutation GitHubCommitFile($input: GitHubCommitFileInput!) {
  githubCommitFile(input: $input) { repository branch createdFrom path commitSha via actedAs }
}`;

export const GITHUB_CREATE_PULL_REQUEST = `mutation GitHubCreatePullRequest($input: GitHubPullRequestInput!) {
  githubCreatePullRequest(input: $input) { repository number url head base via actedAs }
}`;

// Linking the agent's own GitHub account (keyplane agent link-github), and hearing that it must link again.

export const START_IDENTITY_LINK = `mutation StartIdentityLink($app: String) {
  startIdentityLink(app: $app) { authorizationUrl requestId expiresAt }
}`;

export const LINKED_IDENTITIES = `query LinkedIdentities { linkedIdentities { id app login status linkedAt accessExpiresAt refreshExpiresAt } }`;

export const IDENTITY_EVENTS = `subscription IdentityEvents { identityEvents { type data occurredAt } }`;
