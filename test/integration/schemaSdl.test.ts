import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { printedSchema } from "../../src/graphql/schema.ts";

const CHECKED_IN = fileURLToPath(new URL("../../schema/schema.graphql", import.meta.url));

describe("schema/schema.graphql", () => {
  it("is the SDL the code builds (after a schema change: run npm run schema and commit the file)", () => {
    let checkedIn: string;
    try {
      checkedIn = readFileSync(CHECKED_IN, "utf8");
    } catch {
      throw new Error("schema/schema.graphql is missing: run npm run schema and commit the file");
    }
    // Line endings are not a schema change (a checkout with autocrlf must not fail this test).
    const normalized = checkedIn.replace(/\r\n/g, "\n");
    expect(normalized, "schema/schema.graphql differs from the schema the code builds: run npm run schema and commit the file").toBe(printedSchema());
  });
});
