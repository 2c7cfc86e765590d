import { performance } from "node:perf_hooks";
import { rebuildProjections } from "../src/app/rebuildProjections.ts";
import { openDatabase } from "../src/store/db.ts";
const handle = await openDatabase({ url: process.env.URL!, poolMax: 2 });
for (let i = 0; i < Number(process.env.RUNS ?? 2); i++) {
  const t = performance.now();
  const cpu = process.cpuUsage();
  const { events } = await rebuildProjections(handle.db);
  const c = process.cpuUsage(cpu);
  const s = (performance.now() - t) / 1000;
  console.log(`${Math.round(events / s)} events/s; node cpu ${(((c.user + c.system) / 1000) / events * 1000).toFixed(1)} us/event; wall ${(s / events * 1e6).toFixed(1)} us/event`);
}
await handle.close();
