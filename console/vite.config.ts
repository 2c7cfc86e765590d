import path from "node:path";
import react from "@vitejs/plugin-react";
import { defineConfig, type Plugin } from "vite";

// The console is served by Keyplane itself at /console (src/http/consoleRoute.ts), from console/dist.
// `npm run dev:console` serves it with hot reload and passes /graphql (HTTP and WebSocket) to a running
// Keyplane (KEYPLANE_URL, default http://127.0.0.1:4000): same origin either way, so no CORS.
const keyplane = process.env.KEYPLANE_URL ?? "http://127.0.0.1:4000";

// The audit verifier (src/audit/) is the CLI's own; its one Node.js file, platform.ts, is swapped for
// the browser's (src/audit/browserPlatform.ts) when the console imports it.
const auditDir = path.resolve(import.meta.dirname, "../src/audit");
const browserPlatform = path.resolve(import.meta.dirname, "src/audit/browserPlatform.ts");
const auditPlatform: Plugin = {
  name: "keyplane-audit-platform",
  enforce: "pre",
  resolveId(source, importer) {
    if (source === "./platform.ts" && importer && path.dirname(importer) === auditDir) return browserPlatform;
    return null;
  },
};

export default defineConfig({
  root: import.meta.dirname,
  base: "/console/",
  plugins: [auditPlatform, react()],
  // The verifier's worker (src/audit/verifyWorker.ts): an ES module, built with the same swap.
  worker: { format: "es", plugins: () => [auditPlatform] },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    // No inline script or style anywhere: the Content-Security-Policy allows only 'self'.
    assetsInlineLimit: 0,
    sourcemap: true,
  },
  server: {
    // The verifier's modules live in ../src/audit.
    fs: { allow: [".."] },
    proxy: {
      "/graphql": { target: keyplane, ws: true },
      "/.well-known": keyplane,
      "/audit": keyplane,
      "/oauth": keyplane,
    },
  },
});
