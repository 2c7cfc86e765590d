import { describe, expect, it } from "vitest";
import { circlesIn, importGraph, nameOf, sourcesUnder } from "../testkit/sourceImports.ts";

// GitHub is one package: src/github holds the app registry, private-key handling, the requester, the
// installation-token client and the install provider. These tests hold the boundary with src/providers
// the source tree alone cannot: no import circle, src/github using only the providers' shared contract
// (provider.ts: the InstallationProvider interface and ProviderError; http.ts: providerFetch and the
// readers of a provider's JSON), and src/providers reaching GitHub only through its install provider.

const SHARED_CONTRACT = ["providers/provider.ts", "providers/http.ts"];
const GITHUB_ENTRY = ["github/installProvider.ts"];

const files = [...sourcesUnder("github"), ...sourcesUnder("providers")];
const graph = importGraph(files);
const name = nameOf;
const folderOf = (file: string) => name(file).split("/")[0];

describe("src/github and src/providers", () => {
  it("form no import circle", () => {
    expect(circlesIn(graph)).toEqual([]);
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
