import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";

// GitHub is one package: src/github holds the app registry, private-key handling, the requester, the
// installation-token client and the install provider. These tests hold the boundary with src/providers
// the source tree alone cannot: no import circle, src/github using only the providers' shared contract
// (provider.ts: the InstallationProvider interface and ProviderError; http.ts: providerFetch and the
// readers of a provider's JSON), and src/providers reaching GitHub only through its install provider.

const SRC = path.resolve(import.meta.dirname, "../../src");
const SHARED_CONTRACT = ["providers/provider.ts", "providers/http.ts"];
const GITHUB_ENTRY = ["github/installProvider.ts"];

/** Relative imports, static and dynamic (type-only ones too: a circle of types is still a circle to read). */
function importsOf(file: string): string[] {
  const text = readFileSync(file, "utf8");
  const found = text.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|^import\s+)["'](\.{1,2}\/[^"']+)["']/gm);
  return [...found].map((m) => path.resolve(path.dirname(file), m[1]!));
}

const sourcesUnder = (folder: string) =>
  readdirSync(path.join(SRC, folder), { recursive: true, encoding: "utf8" })
    .filter((f) => f.endsWith(".ts"))
    .map((f) => path.join(SRC, folder, f));

const files = [...sourcesUnder("github"), ...sourcesUnder("providers")];
const graph = new Map(files.map((f) => [f, importsOf(f).filter((to) => files.includes(to))]));
const name = (file: string) => path.relative(SRC, file).split(path.sep).join("/");
const folderOf = (file: string) => name(file).split("/")[0];

describe("src/github and src/providers", () => {
  it("form no import circle", () => {
    const circles: string[] = [];
    const state = new Map<string, "open" | "done">();
    const visit = (file: string, trail: string[]) => {
      if (state.get(file) === "done") return;
      if (state.get(file) === "open") {
        circles.push([...trail.slice(trail.indexOf(file)), file].map(name).join(" -> "));
        return;
      }
      state.set(file, "open");
      for (const next of graph.get(file) ?? []) visit(next, [...trail, file]);
      state.set(file, "done");
    };
    for (const file of files) visit(file, []);
    expect(circles).toEqual([]);
  });

  it("meet only at the providers' shared contract and GitHub's install provider", () => {
    const crossings = files.flatMap((file) =>
      (graph.get(file) ?? [])
        .filter((to) => folderOf(file) !== folderOf(to))
        .filter((to) => !(folderOf(file) === "github" ? SHARED_CONTRACT : GITHUB_ENTRY).includes(name(to)))
        .map((to) => `${name(file)} -> ${name(to)}`),
    );
    expect(crossings).toEqual([]);
  });

  it("hold every GitHub module in src/github", () => {
    expect(files.map(name).filter((f) => f.startsWith("providers/") && /github/i.test(f))).toEqual([]);
  });
});
