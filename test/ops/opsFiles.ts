import { readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";

export const ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** Every file under dir (relative to the repository) whose name ends with one of the extensions. */
export function filesUnder(dir: string, extensions: string[]): string[] {
  const found: string[] = [];
  const walk = (rel: string) => {
    for (const entry of readdirSync(path.join(ROOT, rel), { withFileTypes: true })) {
      const child = path.join(rel, entry.name);
      if (entry.isDirectory()) walk(child);
      else if (extensions.some((e) => entry.name.endsWith(e))) found.push(child);
    }
  };
  walk(dir);
  return found.sort();
}

/**
 * The YAML documents of a file, parsed strictly (duplicate keys, bad syntax and YAML warnings fail).
 * Kubernetes reads manifests as YAML 1.1 (sigs.k8s.io/yaml): 0440 is octal there, so they are parsed
 * the same way; merge keys (<<) as docker compose reads them.
 */
export function readYaml(file: string, options: { version?: "1.1" | "1.2" } = {}): unknown[] {
  const text = readFileSync(path.join(ROOT, file), "utf8");
  const docs = parseAllDocuments(text, { version: options.version ?? "1.1", merge: true, uniqueKeys: true, prettyErrors: true });
  if (!Array.isArray(docs)) throw new Error(`${file}: not YAML documents`);
  const values: unknown[] = [];
  for (const doc of docs) {
    const problems = [...doc.errors, ...doc.warnings];
    if (problems.length) throw new Error(`${file}: ${problems.map((p) => p.message).join("; ")}`);
    const value = doc.toJS({ maxAliasCount: 100 });
    if (value !== null && value !== undefined) values.push(value);
  }
  return values;
}

export interface DockerInstruction {
  instruction: string;
  args: string;
  line: number;
}

export interface DockerStage {
  from: string;
  name?: string;
  instructions: DockerInstruction[];
}

/** ops/Dockerfile as stages of instructions (continuation lines joined, comments dropped, global ARGs resolved in FROM). */
export function readDockerfile(file = "ops/Dockerfile"): { args: Record<string, string>; stages: DockerStage[] } {
  const lines = readFileSync(path.join(ROOT, file), "utf8").split("\n");
  const instructions: DockerInstruction[] = [];
  let pending = "";
  let start = 0;
  lines.forEach((raw, i) => {
    const line = raw.trim();
    if (!pending && (line === "" || line.startsWith("#"))) return;
    if (!pending) start = i + 1;
    if (line.startsWith("#")) return;
    if (line.endsWith("\\")) {
      pending += line.slice(0, -1) + " ";
      return;
    }
    const full = (pending + line).trim();
    pending = "";
    const space = full.indexOf(" ");
    instructions.push({ instruction: full.slice(0, space).toUpperCase(), args: full.slice(space + 1).trim(), line: start });
  });
  const args: Record<string, string> = {};
  const stages: DockerStage[] = [];
  for (const ins of instructions) {
    if (ins.instruction === "FROM") {
      const [image, as, name] = ins.args.split(/\s+/);
      const from = image!.replace(/\$\{(\w+)\}|\$(\w+)/g, (_, a, b) => args[a ?? b] ?? "");
      stages.push({ from, ...(as?.toUpperCase() === "AS" ? { name } : {}), instructions: [] });
    } else if (stages.length === 0 && ins.instruction === "ARG") {
      const [key, value] = ins.args.split("=");
      args[key!] = value ?? "";
    } else if (stages.length) {
      stages.at(-1)!.instructions.push(ins);
    }
  }
  return { args, stages };
}

/** The JSON-array (exec) form of an instruction's arguments, or undefined for the shell form. */
export function execForm(args: string): string[] | undefined {
  if (!args.startsWith("[")) return undefined;
  return JSON.parse(args) as string[];
}
