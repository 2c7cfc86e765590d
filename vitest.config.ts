import { createRequire } from "node:module";
import { defineConfig } from "vitest/config";

const require = createRequire(import.meta.url);

export default defineConfig({
  resolve: {
    // graphql ships CJS and ESM builds; Node loads the CJS one for Yoga and Pothos, so our code must
    // get the same copy or `instanceof GraphQLError` fails across the two (dual-package hazard).
    alias: [{ find: /^graphql$/, replacement: require.resolve("graphql") }],
  },
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
