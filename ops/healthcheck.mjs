// The image's HEALTHCHECK: exit 0 when GET /healthz answers 200 within 3 s, else 1. The distroless
// runtime has no shell and no curl, so this is Node. Port: PORT (default 4000); path and host
// can be changed with HEALTHCHECK_PATH (e.g. /readyz) and HEALTHCHECK_HOST.
const port = process.env.PORT || "4000";
const host = process.env.HEALTHCHECK_HOST || "127.0.0.1";
const path = process.env.HEALTHCHECK_PATH || "/healthz";
try {
  const res = await fetch(`http://${host}:${port}${path}`, { signal: AbortSignal.timeout(3000) });
  process.exit(res.status === 200 ? 0 : 1);
} catch {
  process.exit(1);
}
