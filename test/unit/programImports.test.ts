import path from "node:path";
import { describe, expect, it } from "vitest";
import { circlesIn, importGraph, nameOf, sourcesUnder } from "../testkit/sourceImports.ts";

// The `keyplane` command runs three programs: the operator CLI (src/cli), the reference agent
// (src/referenceAgent) and the token writer (src/tokenWriter). These tests hold the boundaries the
// source tree alone cannot: no import circle, and neither program reaching into the other.

const FOLDERS = ["cli", "referenceAgent", "tokenWriter"];
const files = FOLDERS.flatMap(sourcesUnder);
const graph = importGraph(files);
const name = (file: string) => nameOf(file);

describe("the programs' imports", () => {
  it("form no circle, nor do any of src/", () => {
    // The whole tree, for circles: a newcomer reads src/ from the bottom up.
    expect(circlesIn(importGraph(sourcesUnder("")))).toEqual([]);
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
