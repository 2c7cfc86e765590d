import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/testkit/globalSetup.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
    // Two cores: more workers than that only adds WASM start-up time (PGlite).
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
  },
});
