// Builds the console into console/dist: first the types of the schema for its typed documents
// (gql.tada, src/graphql-env.d.ts), then the bundle (Vite). `npm install` runs it (the package's
// prepare script), and so does `npm run build:console`. Where the console's build tools are not
// installed (a production install, --omit=dev) it builds nothing and says so: the image copies the
// console its build stage built.
import { execFileSync } from "node:child_process";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);

let vite;
let tadaCli;
try {
  vite = await import("vite");
  tadaCli = path.join(path.dirname(require.resolve("gql.tada/package.json")), "bin/cli.js");
} catch {
  console.log("console: its build tools are not installed (a production install); not built");
  process.exit(0);
}

/** Only the types: what `npm run typecheck` needs before it checks the console's documents. */
export function generateTypes() {
  execFileSync(process.execPath, [tadaCli, "generate-output", "--tsconfig", path.join(here, "tsconfig.json")], { stdio: ["ignore", "ignore", "inherit"] });
}

generateTypes();
if (!process.argv.includes("--types-only")) {
  await vite.build({ configFile: path.join(here, "vite.config.ts"), logLevel: "warn" });
  console.log(`console: built into ${path.relative(process.cwd(), path.join(here, "dist")) || "."}`);
}
