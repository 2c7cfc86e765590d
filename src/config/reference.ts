import type { z } from "zod";
import { PATTERN_VARIABLES, SECTIONS, variables, type VariableMeta } from "./variables.ts";

/**
 * docs/configuration.md, rendered from the variables' schema (src/config/variables.ts): name, default
 * and meaning of each, by section. `npm run docs:config` writes it; a test fails when the committed
 * file differs.
 */
export function configurationReference(): string {
  const rows = new Map<string, string[]>(SECTIONS.map((section) => [section, []]));
  for (const [name, schema] of Object.entries(variables) as Array<[string, z.ZodType]>) {
    const meta = schema.meta() as VariableMeta;
    rows.get(meta.section)!.push(row(`\`${name}\``, defaultOf(schema, meta), meta.description + allowedValues(schema)));
  }
  for (const pattern of PATTERN_VARIABLES) rows.get(pattern.section)!.push(row(`\`${pattern.name}\``, "(none)", pattern.description));

  const out = [
    "# Configuration",
    "",
    "<!-- Generated from src/config/variables.ts by `npm run docs:config`; edit the schema, not this file. -->",
    "",
    "Keyplane is configured through environment variables only, and `src/config.ts` is their one reader.",
    "An invalid value stops Keyplane at start-up with a message naming the variable (exit status 2).",
    "",
  ];
  for (const [section, lines] of rows) {
    out.push(`## ${section}`, "", "| Variable | Default | Meaning |", "| --- | --- | --- |", ...lines, "");
  }
  return out.join("\n");
}

const row = (name: string, shownDefault: string, meaning: string) => `| ${name} | ${shownDefault} | ${meaning.replace(/\|/g, "\\|")} |`;

function defaultOf(schema: z.ZodType, meta: VariableMeta): string {
  if (meta.shownDefault) return meta.shownDefault;
  const def = schema.def as { type: string; defaultValue?: unknown };
  return def.type === "default" ? `\`${String(def.defaultValue)}\`` : "(none)";
}

/** The choices of an enum, when its description does not already list them all. */
function allowedValues(schema: z.ZodType): string {
  let inner = schema as z.ZodType & { options?: readonly string[] };
  while (!inner.options && "innerType" in inner.def) inner = (inner.def as { innerType: typeof inner }).innerType;
  const options = inner.options;
  if (!options) return "";
  const description = (schema.meta() as VariableMeta).description;
  return options.every((o) => description.includes(`\`${o}\``)) ? "" : ` One of ${options.map((o) => `\`${o}\``).join(", ")}.`;
}
