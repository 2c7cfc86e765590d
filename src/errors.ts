// Expected failures carry a stable code that reaches the caller as extensions.code.
// Anything that is not a DomainError is unexpected and gets masked.
export type ErrorCode =
  | "UNAUTHENTICATED"
  | "FORBIDDEN"
  | "NOT_FOUND"
  | "CONFLICT"
  | "BAD_USER_INPUT"
  | "RATE_LIMITED"
  /** The token is good but its tenant is suspended by a platform operator: nothing works until it is resumed. */
  | "TENANT_SUSPENDED"
  /** A subscriber fell too far behind the live log and was dropped; it resumes from its last cursor. */
  | "SLOW_CONSUMER"
  /** An outside service (GitHub, Slack, Atlassian) refused or failed; extensions name its own code. */
  | "PROVIDER_ERROR"
  /** Keyplane's database is unreachable or restarting: retry after extensions.retryAfter seconds. */
  | "UNAVAILABLE"
  /** The sequences asked for were removed by retention: extensions name the first one kept and its signed anchor. */
  | "PRUNED";

export class DomainError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly extensions: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = new.target.name;
  }
}

export class UnauthenticatedError extends DomainError {
  constructor(message = "authentication required") {
    super("UNAUTHENTICATED", message);
  }
}
export class ForbiddenError extends DomainError {
  constructor(message = "not allowed") {
    super("FORBIDDEN", message);
  }
}
export class NotFoundError extends DomainError {
  constructor(what: string) {
    super("NOT_FOUND", `${what} not found`);
  }
}
export class ConflictError extends DomainError {
  constructor(message: string, extensions: Record<string, unknown> = {}) {
    super("CONFLICT", message, extensions);
  }
}
export class BadInputError extends DomainError {
  constructor(
    message: string,
    readonly field?: string,
  ) {
    super("BAD_USER_INPUT", message, field ? { field } : {});
  }
}
export class RateLimitedError extends DomainError {
  constructor(message: string, retryAfterSeconds: number) {
    super("RATE_LIMITED", message, { retryAfter: retryAfterSeconds });
  }
}

export class TenantSuspendedError extends DomainError {
  constructor() {
    super("TENANT_SUSPENDED", "this tenant is suspended; its platform operator can resume it");
  }
}

/** The database cannot serve the request now (down, restarting, out of connections). Retryable. */
export class UnavailableError extends DomainError {
  static readonly RETRY_AFTER_SECONDS = 2;
  constructor(message = "Keyplane's database is unavailable; retry shortly") {
    super("UNAVAILABLE", message, { retryAfter: UnavailableError.RETRY_AFTER_SECONDS });
  }
}

/**
 * A cursor or range reaches into the part of a tenant's log that retention removed. The log now
 * starts at `firstAvailableSequence`, right after the signed checkpoint `anchor`.
 */
export class PrunedError extends DomainError {
  constructor(what: string, prefix: { throughSequence: number; chainHash: string; lastOccurredAt: Date }) {
    super(
      "PRUNED",
      `${what}: the log before sequence ${prefix.throughSequence + 1} was pruned by retention; it starts there, anchored on the signed checkpoint at ${prefix.throughSequence}`,
      {
        firstAvailableSequence: prefix.throughSequence + 1,
        anchor: { sequence: prefix.throughSequence, chainHash: prefix.chainHash },
        prunedBefore: prefix.lastOccurredAt.toISOString(),
      },
    );
  }
}
