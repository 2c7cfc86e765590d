// Label values for the HTTP metrics: bounded sets, never a raw path or a client's string.

const ROUTES = new Set(["/", "/graphql", "/healthz", "/readyz", "/metrics", "/.well-known/jwks.json", "/webhooks/github", "/audit/export"]);
const PREFIXES = ["/oauth/install/", "/oauth/callback/", "/oauth/link/", "/console"];
const METHODS = new Set(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]);

/** The route a path belongs to: a known path, a known prefix with `*`, else "other". */
export function routeOf(path: string): string {
  if (ROUTES.has(path)) return path;
  const prefix = PREFIXES.find((p) => path.startsWith(p));
  return prefix ? `${prefix}*` : "other";
}

export function methodOf(method: string | undefined): string {
  return method && METHODS.has(method) ? method : "other";
}
