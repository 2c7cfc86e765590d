import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { randomUUID } from "node:crypto";
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK, type JWTPayload } from "jose";

/**
 * A small OpenID-style identity provider on a loopback port: it publishes the JWKS of its own RS256
 * key at /.well-known/jwks.json, as a real one does, and signs tokens for tests. Like a real
 * provider it publishes only public key material and counts how often its JWKS was fetched.
 */
export interface FakeIdentityProvider {
  /** The issuer URL (iss of every token it signs). */
  issuer: string;
  jwksUrl: string;
  kid: string;
  /** How many times the JWKS was requested. */
  jwksRequests(): number;
  /**
   * Signs a token. Standard claims default to a valid token for `audience`: iss = issuer,
   * iat = now, exp = now + 5 min, jti = random; anything in `claims` or `options` overrides them.
   */
  sign(claims: JWTPayload, options?: { audience?: string; expiresInSeconds?: number; issuer?: string }): Promise<string>;
  close(): Promise<void>;
}

export async function startIdentityProvider(options: { audience: string }): Promise<FakeIdentityProvider> {
  const { publicKey, privateKey } = await generateKeyPair("RS256", { modulusLength: 2048 });
  const kid = `fake-idp-${randomUUID().slice(0, 8)}`;
  const publicJwk: JWK = { ...(await exportJWK(publicKey)), kid, alg: "RS256", use: "sig" };
  let requests = 0;

  const server: Server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method === "GET" && path === "/.well-known/jwks.json") {
      requests++;
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ keys: [publicJwk] }));
      return;
    }
    res.writeHead(404, { "content-type": "application/json" });
    res.end(JSON.stringify({ error: "not found" }));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const issuer = `http://127.0.0.1:${port}`;

  return {
    issuer,
    jwksUrl: `${issuer}/.well-known/jwks.json`,
    kid,
    jwksRequests: () => requests,
    sign(claims, opts = {}) {
      const now = Math.floor(Date.now() / 1000);
      return new SignJWT({
        iss: opts.issuer ?? issuer,
        aud: opts.audience ?? options.audience,
        iat: now,
        exp: now + (opts.expiresInSeconds ?? 300),
        jti: randomUUID(),
        ...claims,
      })
        .setProtectedHeader({ alg: "RS256", kid, typ: "JWT" })
        .sign(privateKey as CryptoKey);
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
