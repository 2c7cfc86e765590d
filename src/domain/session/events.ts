import { z } from "zod";
import { defineEvent, isoTime, roleSchema, tokenKindSchema, type EventOf } from "../eventDefinition.ts";

const grant = {
  subject: z.string(),
  kind: tokenKindSchema,
  roles: z.array(roleSchema),
  scopes: z.array(z.string()),
};

/** A token Keyplane minted (service token, CLI mint, bootstrap admin token). Only its id is kept. */
export const AccessTokenIssued = defineEvent(
  "access_token.issued",
  1,
  z.object({ tokenId: z.string(), ...grant, expiresAt: isoTime, issuedVia: z.enum(["api", "cli", "bootstrap", "enrollment"]) }),
);

export const AccessTokenRevoked = defineEvent("access_token.revoked", 1, z.object({ tokenId: z.string(), reason: z.string(), expiresAt: isoTime }));

/** A refresh-token family begins; each refresh token in it may be spent once. */
export const SessionStarted = defineEvent(
  "session.started",
  1,
  z.object({ familyId: z.string(), ...grant, refreshTokenId: z.string(), accessTokenId: z.string(), expiresAt: isoTime }),
);

export const SessionRefreshed = defineEvent(
  "session.refreshed",
  1,
  z.object({ familyId: z.string(), previousRefreshTokenId: z.string(), refreshTokenId: z.string(), accessTokenId: z.string() }),
);

export const SessionRevoked = defineEvent(
  "session.revoked",
  1,
  z.object({ familyId: z.string(), reason: z.enum(["refresh-token-reuse", "revoked"]), expiresAt: isoTime }),
);

export const sessionEvents = [AccessTokenIssued, AccessTokenRevoked, SessionStarted, SessionRefreshed, SessionRevoked] as const;

export type AccessTokenEvent = EventOf<typeof AccessTokenIssued> | EventOf<typeof AccessTokenRevoked>;
export type SessionEvent = EventOf<typeof SessionStarted> | EventOf<typeof SessionRefreshed> | EventOf<typeof SessionRevoked>;
