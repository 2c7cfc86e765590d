import { readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { configDefaults, defineConfig } from "vitest/config";

const require = createRequire(import.meta.url);

const TESTS = "test/**/*.test.ts";

// A suite reaches a database through the testkit (createTestDatabase, createTestApp) or
// reads TEST_DATABASE_URL itself. With TEST_DATABASE_URL set (CI's PostgreSQL run) only those suites
// run: the others never open that database, and would repeat the embedded run exactly.
const usesTestDatabase = (file: string) => /testkit\/(testDatabase|testApp)\.ts|TEST_DATABASE_URL/.test(readFileSync(file, "utf8"));
const testFiles = () =>
  readdirSync("test", { recursive: true, encoding: "utf8" })
    .filter((f) => f.endsWith(".test.ts"))
    .map((f) => `test/${f}`);
const databaseFree = process.env.TEST_DATABASE_URL ? testFiles().filter((file) => !usesTestDatabase(file)) : [];

export default defineConfig({
  resolve: {
    // graphql ships CJS and ESM builds; Node loads the CJS one for Yoga and Pothos, so our code must
    // get the same copy or `instanceof GraphQLError` fails across the two (dual-package hazard).
    alias: [{ find: /^graphql$/, replacement: require.resolve("graphql") }],
  },
  test: {
    include: [TESTS],
    exclude: [...configDefaults.exclude, ...databaseFree],
    globalSetup: ["test/testkit/globalSetup.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
    poolOptions: {
      forks: {
        // Two cores: more workers than that only adds WASM start-up time (PGlite).
        maxForks: 2,
        minForks: 1,
        // A worker keeps the modules it loaded for the next suite: importing the app (and PGlite's
        // WASM) again for each of ~50 files cost more than a third of the run. No suite changes a
        // module's state (no vi.mock, no stubbed globals or environment); each builds its own app.
        isolate: false,
        // testkit/memory.ts collects after an embedded database closes, once a worker is large.
        execArgv: ["--expose-gc"],
      },
    },
  },
});
