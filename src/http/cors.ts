import type { Plugin } from "graphql-yoga";

// Cross-origin browser access to /graphql for the origins an operator names (CORS_ORIGINS), and for
// no other. Tokens are bearer tokens sent in Authorization, so no client needs cookies:
// Access-Control-Allow-Credentials is never sent (Yoga's default reflected any Origin with it).

const ALLOW_HEADERS = "authorization, content-type, accept, idempotency-key, x-request-id, x-correlation-id, traceparent";
const EXPOSE_HEADERS = "x-request-id, ratelimit, ratelimit-policy, retry-after";

export function corsPlugin(origins: readonly string[]): Plugin {
  const allowed = new Set(origins);
  const headersFor = (request: Request): Record<string, string> => {
    const origin = request.headers.get("origin");
    // The answer differs by Origin: caches must key on it.
    if (!origin || !allowed.has(origin)) return { vary: "Origin" };
    return {
      vary: "Origin",
      "access-control-allow-origin": origin,
      "access-control-allow-methods": "GET, POST, OPTIONS",
      "access-control-allow-headers": ALLOW_HEADERS,
      "access-control-expose-headers": EXPOSE_HEADERS,
      "access-control-max-age": "600",
    };
  };
  return {
    onRequest({ request, fetchAPI, endResponse }) {
      // A preflight: 204, with the CORS headers only for an allowed origin (the browser stops the others).
      if (request.method === "OPTIONS") endResponse(new fetchAPI.Response(null, { status: 204, headers: { "content-length": "0", ...headersFor(request) } }));
    },
    onResponse({ request, response }) {
      for (const [name, value] of Object.entries(headersFor(request))) response.headers.set(name, value);
    },
  };
}
