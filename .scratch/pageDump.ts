import { writeFileSync } from "node:fs";
import { openDatabase, withPlatform } from "../src/store/db.ts";
import { rowToStoredEvent } from "../src/store/events/rowToStoredEvent.ts";
import { projectionStatements } from "../src/store/projections/applyProjections.ts";
import { statementJson } from "../src/store/projections/projectionSql.ts";
const handle = await openDatabase({ url: process.env.URL!, poolMax: 2 });
const rows = await withPlatform(handle.db, (trx) => trx.selectFrom("events").selectAll().orderBy("tenant_id").orderBy("tenant_seq").offset(5000).limit(1000).execute());
const st = projectionStatements(rows.map(rowToStoredEvent), true).map(statementJson);
const kinds: Record<string, number> = {};
for (const s of st) { const k = "h" in s ? "insert " + s.h.slice(12, 30) : "q" in s ? s.q.slice(0, 40) : "s"; kinds[k] = (kinds[k] ?? 0) + 1; }
console.log(st.length, kinds);
writeFileSync("/tmp/kp/page.json", JSON.stringify(st));
await handle.close();
