import type { Role, TokenKind } from "../domain/eventDefinition.ts";
import type { Tier } from "../domain/tenant/events.ts";
import type { EventMetadata } from "../store/events/types.ts";
import { effectivePermissions, type Permission } from "./permissions.ts";

/** The one object that says who is calling: built once per request from a verified token. */
export interface Actor {
  kind: TokenKind;
  subject: string;
  tenantId: string;
  roles: Role[];
  scopes: string[];
  tokenId: string;
  /** Refresh-token family the token came from, if any (revoking the family revokes it). */
  sessionId?: string;
  issuer: string;
  expiresAt: Date;
  permissions: ReadonlySet<Permission>;
  /** The tenant's tier as of this request, read with the token's revocation check (rate limits). */
  tenantTier?: Tier;
}

/** Tenant id of the log that holds platform-wide events (no tenant could own a leading underscore). */
export const PLATFORM_TENANT = "_platform";

export function makeActor(fields: Omit<Actor, "permissions">): Actor {
  return { ...fields, permissions: effectivePermissions(fields.roles, fields.scopes) };
}

export const can = (actor: Actor | null | undefined, permission: Permission): boolean => !!actor?.permissions.has(permission);

/** Request facts that go into event metadata. */
export interface RequestMeta {
  requestId?: string;
  sourceIp?: string;
  userAgent?: string;
  correlationId?: string;
  causationId?: string;
}

/** Actor for work Keyplane does on an operator's command line or by itself at start-up. */
export function systemActor(subject: string, tenantId: string = PLATFORM_TENANT): Actor {
  return makeActor({ kind: "platform", subject, tenantId, roles: ["platform"], scopes: [], tokenId: "", issuer: "keyplane", expiresAt: new Date(8.64e15) });
}

export function eventMetadata(actor: Pick<Actor, "subject" | "kind" | "roles" | "tokenId"> | null, request: RequestMeta = {}): EventMetadata {
  const meta: EventMetadata = {
    actor: actor
      ? { subject: actor.subject, kind: actor.kind, roles: [...actor.roles], ...(actor.tokenId ? { tokenId: actor.tokenId } : {}) }
      : { subject: "anonymous", kind: "anonymous", roles: [] },
  };
  for (const [k, v] of Object.entries(request)) if (v !== undefined) meta[k] = v;
  return meta;
}
