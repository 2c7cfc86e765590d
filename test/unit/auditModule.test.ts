import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

// src/audit is what an auditor reads and what the web console runs in a browser: it must stand
// alone. These hold its boundary by reading its import statements (no module is loaded).

const AUDIT = fileURLToPath(new URL("../../src/audit/", import.meta.url));
/** Libraries src/audit may use: each runs in a browser too. */
const LIBRARIES = new Set(["jose"]);
/** The only portable file that may use Node.js (a browser build swaps it); node/ is left out of one. */
const PLATFORM = "platform.ts";
const NODE_ONLY = "node" + path.sep;

const files = readdirSync(AUDIT, { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith(".ts"));

/** Every module a file names: static and dynamic imports, re-exports, and worker URLs. */
function specifiersOf(text: string): string[] {
  const found: string[] = [];
  for (const m of text.matchAll(/(?:\bfrom|^import|\bimport\s*\(|\bnew URL\s*\()\s*["']([^"']+)["']/gm)) found.push(m[1]!);
  // (`new URL(cond ? "./a.ts" : "./a.js", ...)`: each branch)
  for (const m of text.matchAll(/\bnew URL\([^)]*?\?\s*["']([^"']+)["']\s*:\s*["']([^"']+)["']/g)) found.push(m[1]!, m[2]!);
  return found;
}

/** The text without comments and string literals' contents, to look for globals in code. */
const codeOf = (text: string) =>
  text
    .replace(/\/\*[\s\S]*?\*\//g, "")
    .replace(/\/\/.*$/gm, "")
    .replace(/"(?:[^"\\\n]|\\.)*"/g, '""');

describe("src/audit, the auditor's module", () => {
  it("holds the verifier, the format and the hashing", () => {
    for (const f of [
      "canonicalJson.ts",
      "canonicalContent.ts",
      "hashing.ts",
      "exportFormat.ts",
      "exportLines.ts",
      "auditSignatures.ts",
      "verifyAuditRecords.ts",
      PLATFORM,
    ]) {
      expect(files).toContain(f);
    }
  });

  it("imports nothing of src/ outside itself, and no library but jose", () => {
    const outside: string[] = [];
    for (const file of files) {
      for (const spec of specifiersOf(readFileSync(path.join(AUDIT, file), "utf8"))) {
        if (spec.startsWith(".")) {
          const target = path.resolve(AUDIT, path.dirname(file), spec);
          if (!target.startsWith(AUDIT)) outside.push(`${file} -> ${spec}`);
        } else if (!spec.startsWith("node:") && !LIBRARIES.has(spec)) {
          outside.push(`${file} -> ${spec}`);
        }
      }
    }
    expect(outside).toEqual([]);
  });

  it("uses Node.js only in platform.ts and node/", () => {
    const nodeBound: string[] = [];
    for (const file of files) {
      if (file === PLATFORM || file.startsWith(NODE_ONLY)) continue;
      const text = readFileSync(path.join(AUDIT, file), "utf8");
      for (const spec of specifiersOf(text)) {
        if (spec.startsWith("node:")) nodeBound.push(`${file} imports ${spec}`);
        if (spec.startsWith(".") && path.normalize(path.join(path.dirname(file), spec)).startsWith(NODE_ONLY)) nodeBound.push(`${file} imports ${spec}`);
      }
      for (const global of ["Buffer", "process", "require", "__dirname"]) {
        if (new RegExp(`\\b${global}\\b`).test(codeOf(text))) nodeBound.push(`${file} uses ${global}`);
      }
    }
    expect(nodeBound).toEqual([]);
  });
});
