import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";

// The tests that hold the tree's boundaries (no import circle, which folder may import which) read
// the source's imports with these.

export const SRC = path.resolve(import.meta.dirname, "../../src");

/** Relative imports, static and dynamic (type-only ones too: a circle of types is still a circle to read). */
export function importsOf(file: string): string[] {
  const text = readFileSync(file, "utf8");
  const found = text.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|^import\s+)["'](\.{1,2}\/[^"']+)["']/gm);
  return [...found].map((m) => path.resolve(path.dirname(file), m[1]!));
}

/** The .ts files under a folder of src/ ("" for all of it). */
export const sourcesUnder = (folder: string): string[] =>
  readdirSync(path.join(SRC, folder), { recursive: true, encoding: "utf8" })
    .filter((f) => f.endsWith(".ts"))
    .map((f) => path.join(SRC, folder, f));

/** A file's path under src/, with forward slashes. */
export const nameOf = (file: string): string => path.relative(SRC, file).split(path.sep).join("/");

/** Each file's imports among `files`. */
export const importGraph = (files: string[]): Map<string, string[]> => new Map(files.map((f) => [f, importsOf(f).filter((to) => files.includes(to))]));

/** Every circle the graph's imports make, as "a -> b -> a". */
export function circlesIn(graph: Map<string, string[]>): string[] {
  const circles: string[] = [];
  const state = new Map<string, "open" | "done">();
  const visit = (file: string, trail: string[]) => {
    if (state.get(file) === "done") return;
    if (state.get(file) === "open") {
      circles.push([...trail.slice(trail.indexOf(file)), file].map(nameOf).join(" -> "));
      return;
    }
    state.set(file, "open");
    for (const next of graph.get(file) ?? []) visit(next, [...trail, file]);
    state.set(file, "done");
  };
  for (const file of graph.keys()) visit(file, []);
  return circles;
}
