import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rebuildProjections } from "../../src/app/rebuildProjections.ts";
import { withPlatform } from "../../src/store/db.ts";
import { PROJECTED_TABLES } from "../../src/store/schema.ts";
import { registerSecret } from "../testkit/secrets.ts";
import { createTestApp, type TestApp } from "../testkit/testApp.ts";

describe("keyplane projections rebuild", () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await createTestApp({ name: "rebuild" });
  });
  afterAll(() => app.close());

  const dump = () =>
    withPlatform(app.database.db, async (trx) => {
      const tables: Record<string, unknown[]> = {};
      for (const table of PROJECTED_TABLES) {
        const rows = await trx.selectFrom(table).selectAll().execute();
        tables[table] = rows.map((r) => JSON.stringify(r)).sort();
      }
      return tables;
    });

  it("replays the log into read tables equal to the live ones, row for row", async () => {
    // Live state from every kind of write this issue has: tenants, minted and revoked tokens, sessions.
    for (let i = 0; i < 3; i++) {
      const { tokens } = await app.seedTenant({ tier: i === 0 ? "pro" : "free" });
      const issued = await app.gql(
        'mutation { issueServiceToken(input: {subject: "ci", refreshable: true}) { tokenId refreshToken accessToken } }',
        {},
        { token: tokens.admin },
      );
      registerSecret(issued.data.issueServiceToken.refreshToken);
      registerSecret(issued.data.issueServiceToken.accessToken);
      await app
        .gql("mutation($r: String!) { refreshSession(refreshToken: $r) { tokenId refreshToken accessToken } }", {
          r: issued.data.issueServiceToken.refreshToken,
        })
        .then((r) => {
          registerSecret(r.data.refreshSession.refreshToken);
          registerSecret(r.data.refreshSession.accessToken);
        });
      const me = await app.gql("{ me { tokenId } }", {}, { token: tokens.viewer });
      await app.gql("mutation($id: ID!) { revokeAccessToken(tokenId: $id) { tokenId } }", { id: me.data.me.tokenId }, { token: tokens.admin });
    }
    const live = await dump();
    expect(live.tenants!.length).toBeGreaterThanOrEqual(3);
    expect(live.revoked_tokens!.length).toBeGreaterThanOrEqual(3);
    expect(live.sessions!.length).toBeGreaterThanOrEqual(3);

    const progress: Array<[number, number]> = [];
    const { events } = await rebuildProjections(app.database.db, (done, total) => progress.push([done, total]));
    expect(events).toBeGreaterThan(20);
    expect(progress.at(-1)).toEqual([events, events]);

    expect(await dump()).toEqual(live);
  });
});
