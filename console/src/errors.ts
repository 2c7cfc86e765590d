import type { CombinedError } from "urql";
import { ApiError } from "./session.ts";

/** What a person reads for an API error: words first, the stable code after, and when to retry. */
export function describeError(error: CombinedError | ApiError | Error): string {
  if (error instanceof ApiError) return sentence(error.message, error.code, error.retryAfter);
  const first = "graphQLErrors" in error ? error.graphQLErrors[0] : undefined;
  if (first) {
    const extensions = first.extensions as { code?: string; retryAfter?: number };
    return sentence(first.message, extensions.code ?? "INTERNAL", extensions.retryAfter);
  }
  if ("networkError" in error && error.networkError) return "Keyplane cannot be reached; check that it is running (UNAVAILABLE).";
  return error.message;
}

const WORDS: Record<string, string> = {
  UNAUTHENTICATED: "Your session is not valid any more: sign in again.",
  FORBIDDEN: "Your role does not allow this.",
  NOT_FOUND: "It does not exist, or not in this tenant.",
  BAD_USER_INPUT: "Keyplane did not accept this input.",
  CONFLICT: "Someone changed it meanwhile: reload and try again.",
  UNAVAILABLE: "Keyplane is unavailable for a moment: try again.",
  TENANT_SUSPENDED: "This tenant is suspended by its platform operator.",
};

function sentence(message: string, code: string, retryAfter?: number): string {
  const words = code === "RATE_LIMITED" ? `Too many requests: try again in ${retryAfter ?? 60} seconds.` : (WORDS[code] ?? "");
  return `${words ? `${words} ` : ""}${message} (${code})`;
}
