import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";

// The `keyplane` command runs three programs: the operator CLI (src/cli), the reference agent
// (src/referenceAgent) and the token writer (src/tokenWriter). These tests hold the boundaries the
// source tree alone cannot: no import circle, and neither program reaching into the other.

const SRC = path.resolve(import.meta.dirname, "../../src");
const FOLDERS = ["cli", "referenceAgent", "tokenWriter"];

/** Relative imports, static and dynamic (type-only ones too: a circle of types is still a circle to read). */
function importsOf(file: string): string[] {
  const text = readFileSync(file, "utf8");
  const found = text.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|^import\s+)["'](\.{1,2}\/[^"']+)["']/gm);
  return [...found].map((m) => path.resolve(path.dirname(file), m[1]!));
}

function sourcesUnder(folder: string): string[] {
  return readdirSync(path.join(SRC, folder), { recursive: true, encoding: "utf8" })
    .filter((f) => f.endsWith(".ts"))
    .map((f) => path.join(SRC, folder, f));
}

const files = FOLDERS.flatMap(sourcesUnder);
const graph = new Map(files.map((f) => [f, importsOf(f).filter((to) => files.includes(to))]));
// The whole tree, for circles: a newcomer reads src/ from the bottom up.
const everyFile = sourcesUnder("");
const everyImport = new Map(everyFile.map((f) => [f, importsOf(f).filter((to) => everyFile.includes(to))]));
const name = (file: string) => path.relative(SRC, file);

describe("the programs' imports", () => {
  it("form no circle, nor do any of src/", () => {
    const circles: string[] = [];
    const state = new Map<string, "open" | "done">();
    const visit = (file: string, trail: string[]) => {
      if (state.get(file) === "done") return;
      if (state.get(file) === "open") {
        circles.push([...trail.slice(trail.indexOf(file)), file].map(name).join(" -> "));
        return;
      }
      state.set(file, "open");
      for (const next of everyImport.get(file) ?? []) visit(next, [...trail, file]);
      state.set(file, "done");
    };
    for (const file of everyFile) visit(file, []);
    expect(circles).toEqual([]);
  });

  it("cross neither between the reference agent and the token writer nor into the dispatcher (cli/main.ts)", () => {
    const crossings = files.flatMap((file) =>
      (graph.get(file) ?? [])
        .filter((to) => {
          const [from, into] = [name(file).split(path.sep)[0], name(to).split(path.sep)[0]];
          return (from !== into && from !== "cli" && into !== "cli") || name(to) === path.join("cli", "main.ts");
        })
        .map((to) => `${name(file)} -> ${name(to)}`),
    );
    expect(crossings).toEqual([]);
  });
});
