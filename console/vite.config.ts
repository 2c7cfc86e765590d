import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// The console is served by Keyplane itself at /console (src/http/consoleRoute.ts), from console/dist.
// `npm run dev:console` serves it with hot reload and passes /graphql (HTTP and WebSocket) to a running
// Keyplane (KEYPLANE_URL, default http://127.0.0.1:4000): same origin either way, so no CORS.
const keyplane = process.env.KEYPLANE_URL ?? "http://127.0.0.1:4000";

export default defineConfig({
  root: import.meta.dirname,
  base: "/console/",
  plugins: [react()],
  build: {
    outDir: "dist",
    emptyOutDir: true,
    // No inline script or style anywhere: the Content-Security-Policy allows only 'self'.
    assetsInlineLimit: 0,
    sourcemap: true,
  },
  server: {
    proxy: {
      "/graphql": { target: keyplane, ws: true },
      "/.well-known": keyplane,
      "/audit": keyplane,
      "/oauth": keyplane,
    },
  },
});
