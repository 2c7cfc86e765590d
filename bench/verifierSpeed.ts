import { open } from "node:fs/promises";
import type { JSONWebKeySet } from "jose";
import { defaultVerifyThreads, verifyExportFile } from "../src/audit/node/verifyExportFile.ts";

// The verifier's speed on an export file as `keyplane audit verify FILE --jwks …` runs it (every
// hash and signature checked): on one core (--threads 1) and with its default threads (the cores,
// the main thread following the chain). Used by bench:verify and bench:export.

const fmt = (n: number) => n.toLocaleString("en-US", { maximumFractionDigits: 0 });

export interface VerifierSpeed {
  /** events/s with every line checked on the main thread, best of the rounds. */
  oneCore: number;
  /** events/s with `threads` threads, best of the rounds. */
  allCores: number;
  threads: number;
  events: number;
  checkpoints: number;
}

export async function timeVerifier(
  file: string,
  keys: JSONWebKeySet,
  { rounds = 1, threads = defaultVerifyThreads(), log }: { rounds?: number; threads?: number; log?: (line: string) => void } = {},
): Promise<VerifierSpeed> {
  const best = { one: 0, all: 0 };
  let events = 0;
  let checkpoints = 0;
  for (let round = 1; round <= rounds; round++) {
    for (const [mode, n] of [
      ["one", 1],
      ["all", threads],
    ] as const) {
      if (mode === "all" && threads <= 1) continue;
      const stats = { batches: 0, byWorkers: 0, workersReady: 0 };
      const t0 = performance.now();
      const report = await verifyExportFile(await open(file), { keys, threads: n, stats });
      const seconds = (performance.now() - t0) / 1000;
      if (!report.ok) throw new Error(`the export does not verify: ${JSON.stringify(report.problem)}`);
      ({ events, checkpoints } = report);
      best[mode] = Math.max(best[mode], events / seconds);
      const workers = n > 1 ? `, ${stats.byWorkers} of ${stats.batches} batches checked by workers` : "";
      log?.(`round ${round}: ${n === 1 ? "one core" : `${n} threads`}  ${fmt(events / seconds)} events/s (${seconds.toFixed(2)} s${workers})`);
    }
  }
  return { oneCore: best.one, allCores: threads > 1 ? best.all : best.one, threads, events, checkpoints };
}

/** "N events/s on one core, M events/s with T threads". */
export const describeSpeed = (s: VerifierSpeed): string =>
  `${fmt(s.oneCore)} events/s on one core, ${fmt(s.allCores)} events/s with ${s.threads} threads (all cores)`;
