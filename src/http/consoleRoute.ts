import { createReadStream, existsSync, readFileSync, statSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";

// The console (console/, built into console/dist) at /console, in every mode: its files as they are,
// and its page for every other path under /console (the console routes in the browser). Same origin
// as /graphql, so it needs no CORS; its Content-Security-Policy allows nothing but this origin.

/** The built console: beside src/ in a checkout, beside dist/ in the image (both two levels up). */
const BUILT = fileURLToPath(new URL("../../console/dist/", import.meta.url));

export const CONSOLE_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  // 'self' covers the same origin's WebSocket (graphql-ws) too.
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

const SECURITY_HEADERS = {
  "content-security-policy": CONSOLE_CSP,
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cross-origin-opener-policy": "same-origin",
};

const TYPES: Record<string, string> = {
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".map": "application/json; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".woff2": "font/woff2",
  ".json": "application/json; charset=utf-8",
  ".txt": "text/plain; charset=utf-8",
};

/** Serves /console and / (which leads to it); undefined for every other path. */
export function consoleRoute(dir = BUILT) {
  // Read on each request (a few hundred bytes), not kept: a console built again while Keyplane runs
  // names new assets, and a kept page would point at files the build removed.
  const indexPage = () => readFileSync(path.join(dir, "index.html"));

  return (req: IncomingMessage, res: ServerResponse, urlPath: string): true | undefined => {
    if (urlPath !== "/" && urlPath !== "/console" && !urlPath.startsWith("/console/")) return undefined;
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain; charset=utf-8" });
      res.end("method not allowed\n");
      return true;
    }
    if (urlPath === "/" || urlPath === "/console") {
      res.writeHead(302, { location: "/console/", "cache-control": "no-cache" });
      res.end();
      return true;
    }
    if (!existsSync(path.join(dir, "index.html"))) {
      res.writeHead(503, { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" });
      res.end("The console is not built: run `npm run build:console` (npm install builds it).\n");
      return true;
    }
    const relative = urlPath.slice("/console/".length);
    // Built files have hashed names and never change: cached for a year. Anything else under /console
    // is a page of the console.
    if (relative.startsWith("assets/")) {
      const file = path.resolve(dir, relative);
      const type = TYPES[path.extname(file)];
      if (!file.startsWith(path.join(dir, "assets") + path.sep) || !type || !isFile(file)) {
        res.writeHead(404, { "content-type": "text/plain; charset=utf-8", ...SECURITY_HEADERS });
        res.end("not found\n");
        return true;
      }
      res.writeHead(200, { "content-type": type, "cache-control": "public, max-age=31536000, immutable", ...SECURITY_HEADERS });
      if (req.method === "HEAD") res.end();
      else createReadStream(file).pipe(res);
      return true;
    }
    res.writeHead(200, { "content-type": "text/html; charset=utf-8", "cache-control": "no-cache", ...SECURITY_HEADERS });
    res.end(req.method === "HEAD" ? undefined : indexPage());
    return true;
  };
}

function isFile(file: string): boolean {
  try {
    return statSync(file).isFile();
  } catch {
    return false;
  }
}
