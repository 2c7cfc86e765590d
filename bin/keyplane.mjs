#!/usr/bin/env node
// The `keyplane` command: the TypeScript source in a checkout (through tsx), the compiled CLI in an
// image that ships dist/ without src/ (npm run build).
import { existsSync } from "node:fs";

const source = new URL("../src/cli/main.ts", import.meta.url);
let runCli;
if (existsSync(source)) {
  const { register } = await import("tsx/esm/api");
  register();
  ({ runCli } = await import(source.href));
} else {
  ({ runCli } = await import(new URL("../dist/cli/main.js", import.meta.url).href));
}
process.exitCode = await runCli(process.argv.slice(2));
