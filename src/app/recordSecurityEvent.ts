import { AccessDenied, AuthFailed } from "../domain/security/events.ts";
import { eventMetadata, PLATFORM_TENANT, type Actor, type RequestMeta } from "../auth/actor.ts";
import type { Logger } from "../logger.ts";
import { afterTransaction } from "../store/ambientTransaction.ts";
import type { Db } from "../store/db.ts";
import { appendEvents } from "../store/events/appendEvents.ts";

export interface SecurityIncident {
  type: "auth.failed" | "access.denied";
  /** The tenant whose log gets the event; null when no tenant is known (the platform log). */
  tenantId: string | null;
  actor: Actor | null;
  level: "info" | "warning" | "critical";
  status: "denied" | "failed";
  reason: string;
  resource?: string;
  action?: string;
  details?: Record<string, unknown>;
  request: RequestMeta;
}

/** A refused credential (auth.failed, status failed) or a refused action (access.denied, status denied); level warning unless said. */
export type SecurityRefusal = Omit<SecurityIncident, "type" | "status" | "level"> & { level?: SecurityIncident["level"] };

export interface SecurityRecorder {
  record(incident: SecurityIncident): Promise<void>;
  /** A credential was refused: a token, a refresh token, an enrollment key, a webhook signature. */
  authFailed(refusal: SecurityRefusal): Promise<void>;
  /** An authenticated caller was refused an action or a resource. */
  accessDenied(refusal: SecurityRefusal): Promise<void>;
}

const WINDOW_MS = 60_000;

/**
 * Security events go into the tenant's own log. Floods are sampled: one event per tenant, type,
 * reason and principal (or source ip) per minute; the next one recorded says how many were folded.
 * Recording never fails the request that triggered it.
 */
export function createSecurityRecorder(deps: { db: Db; logger: Logger; now: () => Date }): SecurityRecorder {
  const windows = new Map<string, { until: number; suppressed: number }>();
  return securityRecorderOf(async function record(incident) {
    // Inside an idempotent request's one transaction, the record waits until that transaction has
    // ended: a refusal is audited even when the request's writes roll back.
    if (afterTransaction(() => record(incident))) return;
    const tenantId = incident.tenantId ?? PLATFORM_TENANT;
    const principal = incident.actor?.subject ?? incident.request.sourceIp ?? "unknown";
    // Critical alarms name what they are about (a family, a token): two of them are never folded.
    const about = incident.level === "critical" ? `|${incident.details?.familyId ?? incident.details?.tokenId ?? ""}` : "";
    const key = `${tenantId}|${incident.type}|${incident.reason}|${principal}${about}`;
    const at = deps.now();
    const now = at.getTime();
    const window = windows.get(key);
    if (window && window.until > now) {
      window.suppressed++;
      return;
    }
    if (windows.size > 10_000) for (const [k, w] of windows) if (w.until <= now) windows.delete(k);
    windows.set(key, { until: now + WINDOW_MS, suppressed: 0 });
    const define = incident.type === "auth.failed" ? AuthFailed : AccessDenied;
    const event = define({
      level: incident.level,
      status: incident.status,
      reason: incident.reason,
      resource: incident.resource,
      action: incident.action,
      details: incident.details,
      ...(window?.suppressed ? { suppressed: window.suppressed } : {}),
    });
    try {
      await appendEvents(deps.db, {
        tenantId,
        streamType: "security",
        streamId: incident.type,
        expectedVersion: "any",
        events: [event],
        metadata: eventMetadata(incident.actor, incident.request),
        occurredAt: at,
      });
    } catch (error) {
      deps.logger.error({ err: error, tenantId, type: incident.type }, "could not record security event");
    }
  });
}

/** A recorder around `record`, with the two named refusals. */
export function securityRecorderOf(record: (incident: SecurityIncident) => Promise<void>): SecurityRecorder {
  return {
    record,
    authFailed: (refusal) => record({ level: "warning", ...refusal, type: "auth.failed", status: "failed" }),
    accessDenied: (refusal) => record({ level: "warning", ...refusal, type: "access.denied", status: "denied" }),
  };
}
