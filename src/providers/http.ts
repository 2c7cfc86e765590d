import { ProviderError, type Platform } from "./provider.ts";

// One way to call a provider: global fetch with a deadline. Network failures, timeouts, 5xx and 429 become
// ProviderError(kind "transient"); any other answer is handed back for the provider to judge. Nothing here
// logs, and no error built here carries a URL, a header or a body: only a short code.

export interface ProviderRequest {
  method?: "GET" | "POST" | "PUT" | "DELETE";
  url: string | URL;
  /** Bearer token for the Authorization header. */
  bearer?: string;
  headers?: Record<string, string>;
  /** Sent as application/x-www-form-urlencoded. */
  form?: Record<string, string | undefined>;
  /** Sent as application/json. */
  json?: unknown;
}

export interface ProviderResponse {
  status: number;
  headers: Headers;
  /** Parsed JSON, or null when the body is empty or not JSON. */
  body: unknown;
}

export async function providerFetch(platform: Platform, timeoutMs: number, request: ProviderRequest): Promise<ProviderResponse> {
  const headers: Record<string, string> = { accept: "application/json", ...request.headers };
  if (request.bearer !== undefined) headers.authorization = `Bearer ${request.bearer}`;
  let body: string | undefined;
  if (request.form) {
    const form = new URLSearchParams();
    for (const [name, value] of Object.entries(request.form)) if (value !== undefined) form.set(name, value);
    body = form.toString();
    headers["content-type"] = "application/x-www-form-urlencoded";
  } else if (request.json !== undefined) {
    body = JSON.stringify(request.json);
    headers["content-type"] = "application/json";
  }

  let response: Response;
  let text: string;
  try {
    response = await fetch(request.url, {
      method: request.method ?? (body === undefined ? "GET" : "POST"),
      headers,
      body,
      redirect: "manual",
      signal: AbortSignal.timeout(timeoutMs),
    });
    text = await response.text();
  } catch (error) {
    throw transportError(platform, error);
  }

  if (response.status === 429) throw new ProviderError(platform, "rate_limited", "transient", 429);
  if (response.status >= 500) throw new ProviderError(platform, "server_error", "transient", response.status);
  return { status: response.status, headers: response.headers, body: parseJson(text) };
}

/** A fetch failure (never an HTTP answer) as a transient ProviderError: "timeout" or "network_error". */
export function transportError(platform: Platform, error: unknown): ProviderError {
  const name = error instanceof Error ? error.name : "";
  return new ProviderError(platform, name === "TimeoutError" || name === "AbortError" ? "timeout" : "network_error", "transient");
}

function parseJson(text: string): unknown {
  if (!text) return null;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return null;
  }
}

/**
 * A provider's error code, fit for an error message: a short identifier (`invalid_grant`, `token_revoked`)
 * or `fallback`. Anything longer or odder (a description, possibly echoing what was sent) is dropped, and
 * so is a code that contains any of `secrets`.
 */
export function safeCode(value: unknown, fallback: string, secrets: ReadonlyArray<string | undefined> = []): string {
  if (typeof value !== "string" || !/^[A-Za-z][A-Za-z0-9_.:-]{0,63}$/.test(value)) return fallback;
  if (secrets.some((s) => s !== undefined && s.length >= 4 && value.includes(s))) return fallback;
  return value;
}

/** A GitHub-style message ("Bad credentials") as a code ("bad_credentials"), or `fallback`. */
export function messageCode(message: unknown, fallback: string): string {
  if (typeof message !== "string") return fallback;
  const code = message
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "_")
    .replace(/^_+|_+$/g, "")
    .slice(0, 64)
    .replace(/_+$/, "");
  return /^[a-z]/.test(code) ? code : fallback;
}

export const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null && !Array.isArray(value);

export const str = (value: unknown): string | undefined => (typeof value === "string" && value !== "" ? value : undefined);

export const num = (value: unknown): number | undefined => (typeof value === "number" && Number.isFinite(value) ? value : undefined);

/** `expires_in` seconds after `now` (Keyplane's clock), or undefined. */
export const expiresIn = (seconds: unknown, now: Date): Date | undefined => {
  const n = num(seconds);
  return n !== undefined && n > 0 ? new Date(now.getTime() + n * 1000) : undefined;
};

export const splitScopes = (value: unknown, separator: RegExp): string[] =>
  typeof value === "string"
    ? value
        .split(separator)
        .map((s) => s.trim())
        .filter(Boolean)
    : [];
