import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { configurationReference } from "./reference.ts";

// `npm run docs:config`: regenerate docs/configuration.md from the variables' schema.
const target = fileURLToPath(new URL("../../docs/configuration.md", import.meta.url));
writeFileSync(target, configurationReference());
console.log(`wrote ${target}`);
