import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { printedSchema } from "./schema.ts";

// `npm run schema`: regenerate schema/schema.graphql from the Pothos code.
const target = fileURLToPath(new URL("../../schema/schema.graphql", import.meta.url));
writeFileSync(target, printedSchema());
console.log(`wrote ${target}`);
