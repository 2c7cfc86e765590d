import { randomUUID } from "node:crypto";

/**
 * The k-th event of the audit benchmarks' log (bench:export writes it to a database, bench:verify to
 * a file): nine token issues for each refused request, two seconds apart from `started`, with the
 * actors, addresses and payload sizes of a busy tenant.
 */
export function auditWorkloadEvent(k: number, started: number) {
  const denied = k % 10 === 9;
  const tokenId = randomUUID();
  const streamType = denied ? "security" : "access_token";
  const streamId = denied ? `bench-${k}` : tokenId;
  const type = denied ? "access.denied" : "access_token.issued";
  const occurredAt = new Date(started + k * 2_000).toISOString();
  const data = denied
    ? {
        level: "warning",
        status: "denied",
        reason: "forbidden",
        resource: "graphql",
        action: "installation:manage",
        details: { operation: "revokeInstallation" },
      }
    : {
        tokenId,
        subject: `svc-${k % 97}@bench`,
        kind: "service",
        roles: ["service"],
        scopes: ["installation:credentials"],
        expiresAt: new Date(started + k * 2_000 + 86_400_000).toISOString(),
        issuedVia: "api",
      };
  const metadata = {
    actor: { subject: `admin-${k % 13}@bench`, kind: "user", roles: ["admin"], tokenId: randomUUID() },
    requestId: randomUUID(),
    sourceIp: `10.0.${(k >> 8) & 255}.${k & 255}`,
    userAgent: "bench/1.0 (keyplane export benchmark)",
  };
  return { streamType, streamId, type, occurredAt, data, metadata };
}
