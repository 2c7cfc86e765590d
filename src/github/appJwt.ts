import { SignJWT } from "jose";
import type { GitHubApp } from "./types.ts";

/**
 * The app JWT: RS256, signed with jose from the app's KeyObject (no PEM string is kept), over
 * { iat: now - 60 s, exp: now + 9 min, iss: app id or client id }, now corrected by GitHub's clock
 * (`timeDifferenceSeconds`, GitHub's minus ours, as @octokit/auth-app measured it).
 */
export async function signAppJwt(app: GitHubApp, timeDifferenceSeconds = 0): Promise<{ jwt: string; expiresAt: string }> {
  const now = Math.floor(Date.now() / 1000) + timeDifferenceSeconds;
  const exp = now + 540;
  const jwt = await new SignJWT({})
    .setProtectedHeader({ alg: "RS256", typ: "JWT" })
    .setIssuer(app.appId)
    .setIssuedAt(now - 60)
    .setExpirationTime(exp)
    .sign(app.privateKey);
  return { jwt, expiresAt: new Date(exp * 1000).toISOString() };
}
