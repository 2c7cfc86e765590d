#!/usr/bin/env node
// The `keyplane` command: the TypeScript source in a checkout (through tsx, a devDependency), the
// compiled CLI (npm run build -> dist/) in the image, which ships dist/ without src/ and without tsx.
import { existsSync } from "node:fs";

const source = new URL("../src/cli/main.ts", import.meta.url);
const compiled = new URL("../dist/cli/main.js", import.meta.url);

async function loadCli() {
  if (existsSync(source)) {
    let tsx;
    try {
      tsx = await import("tsx/esm/api");
    } catch {
      // A production install (--omit=dev) of a checkout: the compiled output when there is one.
      if (existsSync(compiled)) return import(compiled.href);
      console.error("keyplane: tsx is not installed (npm install), and there is no compiled output (npm run build)");
      process.exit(2);
    }
    tsx.register();
    return import(source.href);
  }
  return import(compiled.href);
}

const { runCli } = await loadCli();
process.exitCode = await runCli(process.argv.slice(2));
