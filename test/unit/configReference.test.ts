import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.ts";
import { configurationReference } from "../../src/config/reference.ts";
import { variables } from "../../src/config/variables.ts";

const root = (path: string) => fileURLToPath(new URL(`../../${path}`, import.meta.url));

describe("docs/configuration.md", () => {
  it("is the reference the variables' schema renders (after a change: run npm run docs:config and commit the file)", () => {
    const committed = readFileSync(root("docs/configuration.md"), "utf8").replace(/\r\n/g, "\n");
    expect(committed, "docs/configuration.md is stale: run npm run docs:config and commit the file").toBe(configurationReference());
  });

  it("names every variable the schema reads, with its default", () => {
    const reference = configurationReference();
    for (const name of Object.keys(variables)) expect(reference).toContain(`| \`${name}\` |`);
    expect(reference).toContain("| `PORT` | `4000` |");
    expect(reference).toContain("| `RATE_LIMIT_REQUESTS_PER_MINUTE` | `free:60,pro:300,enterprise:1000` |");
    expect(reference).toContain("| `AGENT_CREATES_PER_DAY` | `free:5,pro:20,enterprise:unlimited` |");
  });

  it("states the defaults the parser applies", () => {
    const config = loadConfig({});
    expect(config.port).toBe(4000);
    expect(config.limits.requestsPerMinute).toEqual({ free: 60, pro: 300, enterprise: 1000 });
    expect(config.limits.burstPer10Seconds).toEqual({ free: 17, pro: 85, enterprise: 285 });
    expect(config.limits.agentQuotas.enterprise["agent-create"]).toBeNull();
    expect(configurationReference()).toContain("| `RATE_LIMIT_BURST_PER_10_SECONDS` | `free:17,pro:85,enterprise:285` |");
  });
});

describe("configuration's place in the import graph", () => {
  it("src/config.ts and src/config/ import nothing of Keyplane's outside src/config/", () => {
    const files = [root("src/config.ts"), ...readdirSync(root("src/config")).map((f) => root(`src/config/${f}`))];
    for (const file of files) {
      const specifiers = [...readFileSync(file, "utf8").matchAll(/^(?:import|export)[^;]*?from\s+"([^"]+)"/gms)].map((m) => m[1]!);
      const local = specifiers.filter((s) => s.startsWith("."));
      const outside = local.filter((s) => !(s.startsWith("./config/") || (file.includes("/src/config/") && s.startsWith("./"))));
      expect(outside, `${file} imports ${outside.join(", ")}`).toEqual([]);
    }
  });
});
