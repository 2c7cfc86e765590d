import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Clock } from "../cli/clock.ts";
import { fileFingerprint } from "./outputFile.ts";
import type { Timing } from "./schedule.ts";

// /healthz of a token-writer sidecar: judged by the file on disk, not by the last request, since the
// file is what the workload reads.

/** What was last written to the output file. */
export interface WrittenToken {
  expiresAt: Date;
  /** The fingerprint the source gave (Keyplane's, in brokered mode), for logs. */
  fingerprint: string;
  /** sha256 of exactly what the file holds, to notice a file replaced or removed behind our back. */
  fileFingerprint: string;
  installationId: string | number | null;
}

export interface WriterState {
  current?: WrittenToken;
  /** A write in progress: between the rename and `current` being set, the file on disk is this one. */
  writing?: WrittenToken;
}

export interface HealthServer {
  port: number;
  close(): Promise<void>;
}

export interface HealthVerdict {
  ok: boolean;
  body: { status: "ok" | "no_token" | "expiring" | "expired" | "file_changed"; expiresAt?: string; validForSeconds?: number };
}

export async function health(
  output: string,
  state: WriterState,
  clock: Pick<Clock, "now">,
  timing: Pick<Timing, "healthMinValidityMs">,
): Promise<HealthVerdict> {
  const onDisk = await fileFingerprint(output);
  const current = state.writing && onDisk === state.writing.fileFingerprint ? state.writing : state.current;
  if (!current) return { ok: false, body: { status: "no_token" } };
  const expiresAt = current.expiresAt.toISOString();
  const validForSeconds = Math.floor((current.expiresAt.getTime() - clock.now()) / 1000);
  if (onDisk !== current.fileFingerprint) return { ok: false, body: { status: "file_changed", expiresAt } };
  if (validForSeconds <= 0) return { ok: false, body: { status: "expired", expiresAt, validForSeconds: 0 } };
  if (validForSeconds * 1000 < timing.healthMinValidityMs) return { ok: false, body: { status: "expiring", expiresAt, validForSeconds } };
  return { ok: true, body: { status: "ok", expiresAt, validForSeconds } };
}

/** GET /healthz: 200 while the token on disk has healthMinValidityMs left, else 503. Anything else 404. */
export async function startHealthServer(options: {
  port: number;
  host?: string;
  output: string;
  state: WriterState;
  clock: Pick<Clock, "now">;
  timing: Pick<Timing, "healthMinValidityMs">;
}): Promise<HealthServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (path !== "/healthz" || (req.method !== "GET" && req.method !== "HEAD")) {
      res.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ status: "not_found" }));
      return;
    }
    health(options.output, options.state, options.clock, options.timing).then(
      (verdict) => {
        res.writeHead(verdict.ok ? 200 : 503, { "content-type": "application/json", "cache-control": "no-store" });
        res.end(req.method === "HEAD" ? undefined : JSON.stringify(verdict.body));
      },
      () => res.writeHead(503).end(),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
