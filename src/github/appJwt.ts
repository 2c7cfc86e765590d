import { base64url } from "jose";
import { GitHubAppError } from "./githubAppErrors.ts";
import { type JwtSigner, SignerError } from "./signers/jwtSigner.ts";
import { memorySigner } from "./signers/memorySigner.ts";
import type { GitHubApp } from "./types.ts";

const HEADER = base64url.encode(JSON.stringify({ alg: "RS256", typ: "JWT" }));

/**
 * The app JWT: RS256 over { iat: now - 60 s, exp: now + 9 min, iss: app id or client id }, now
 * corrected by GitHub's clock (`timeDifferenceSeconds`, GitHub's minus ours, as @octokit/auth-app
 * measured it), signed by the app's signer (src/github/signers: the key in memory, on a PKCS#11 token,
 * or in AWS KMS). A signer's failure is a GitHubAppError naming the app and the problem (transient
 * when the token or KMS may answer later), never the key, a PIN or a signature.
 */
export async function signAppJwt(app: GitHubApp, timeDifferenceSeconds = 0): Promise<{ jwt: string; expiresAt: string }> {
  const now = Math.floor(Date.now() / 1000) + timeDifferenceSeconds;
  const exp = now + 540;
  const payload = base64url.encode(JSON.stringify({ iss: app.appId, iat: now - 60, exp }));
  const input = `${HEADER}.${payload}`;
  let signature: Uint8Array;
  try {
    signature = await signerOf(app).sign(new TextEncoder().encode(input));
  } catch (error) {
    if (!(error instanceof SignerError)) throw error;
    throw new GitHubAppError(
      app.name,
      "app_jwt_signing_failed",
      error.transient ? "transient" : "invalid",
      undefined,
      `GitHub App ${app.name}: the app JWT could not be signed: ${error.message}`,
    );
  }
  return { jwt: `${input}.${base64url.encode(signature)}`, expiresAt: new Date(exp * 1000).toISOString() };
}

const memorySigners = new WeakMap<object, JwtSigner>();

/** The app's signer; an app given only a private key (as tests build them) signs with it in memory. */
function signerOf(app: GitHubApp): JwtSigner {
  if (app.signer) return app.signer;
  if (!app.privateKey) throw new SignerError("it has neither a signer nor a private key");
  let signer = memorySigners.get(app.privateKey);
  if (!signer) memorySigners.set(app.privateKey, (signer = memorySigner(app.privateKey)));
  return signer;
}
