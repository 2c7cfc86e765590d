import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** Every Markdown file of the repository but dependencies'. */
function markdownFiles(dir = ROOT): string[] {
  return readdirSync(dir).flatMap((name) => {
    if (name === "node_modules" || name.startsWith(".") || name === "data") return [];
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) return markdownFiles(full);
    return name.endsWith(".md") ? [full] : [];
  });
}

/** Lines outside fenced code blocks. */
function prose(text: string): string[] {
  let fenced = false;
  return text.split("\n").filter((line) => {
    if (line.startsWith("```")) fenced = !fenced;
    return !fenced;
  });
}

/** GitHub's anchors of a document's headings (lower case, punctuation dropped, spaces to dashes, repeats numbered). */
function anchorsOf(text: string): Set<string> {
  const seen = new Map<string, number>();
  const anchors = new Set<string>();
  for (const line of prose(text)) {
    const heading = /^#{1,6} (.*)$/.exec(line);
    if (!heading) continue;
    const slug = heading[1]!
      .trim()
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\- _]/gu, "")
      .replace(/ /g, "-");
    const n = seen.get(slug) ?? 0;
    seen.set(slug, n + 1);
    anchors.add(n === 0 ? slug : `${slug}-${n}`);
  }
  return anchors;
}

/** Relative links ([text](target)) of a document: targets that are not URLs. */
function relativeLinks(text: string): string[] {
  return prose(text)
    .flatMap((line) => [...line.replace(/`[^`]*`/g, "").matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1]!))
    .filter((target) => !/^[a-z][a-z0-9+.-]*:/i.test(target));
}

describe("links between the documents", () => {
  const files = markdownFiles();

  it("finds the documents", () => {
    expect(files.map((f) => path.relative(ROOT, f))).toEqual(expect.arrayContaining(["README.md", "docs/architecture.md", "bench/README.md", "ops/README.md"]));
  });

  it("every relative link names a file that exists, and a heading that exists in it", () => {
    const broken: string[] = [];
    for (const file of files) {
      const text = readFileSync(file, "utf8");
      for (const target of relativeLinks(text)) {
        const [where, anchor] = target.split("#") as [string, string | undefined];
        const linked = where === "" ? file : path.resolve(path.dirname(file), decodeURIComponent(where));
        const name = `${path.relative(ROOT, file)}: ${target}`;
        if (!existsSync(linked)) broken.push(`${name} (no such file)`);
        else if (anchor && linked.endsWith(".md") && !anchorsOf(readFileSync(linked, "utf8")).has(anchor)) broken.push(`${name} (no such heading)`);
      }
    }
    expect(broken).toEqual([]);
  });

  it("every document closes its code blocks (an open fence swallows the rest of the page)", () => {
    const open = files.filter(
      (file) =>
        readFileSync(file, "utf8")
          .split("\n")
          .filter((line) => line.startsWith("```")).length %
          2 !==
        0,
    );
    expect(open.map((f) => path.relative(ROOT, f))).toEqual([]);
  });

  it("the anchors follow GitHub's rule", () => {
    expect([...anchorsOf("# Live events (`tenantEvents`)\n## Errors\n## Errors\n```\n# not a heading\n```")]).toEqual([
      "live-events-tenantevents",
      "errors",
      "errors-1",
    ]);
  });
});
