import { appendFileSync, mkdirSync } from "node:fs";
import path from "node:path";
import { createLogger, type Logger } from "../../src/logger.ts";
import pino from "pino";

// Every suite logs at debug level into one directory, and registers each secret it handles; after
// the whole run, globalSetup's teardown fails if any secret appears in any log line.
const dir = () => process.env.KEYPLANE_TEST_LOG_DIR;

export function registerSecret(secret: string | null | undefined): void {
  if (!dir() || !secret) return;
  appendFileSync(path.join(dir()!, "secrets.txt"), secret + "\n");
}

export function testLogger(name: string): Logger {
  if (!dir()) return createLogger({ level: "silent" });
  mkdirSync(dir()!, { recursive: true });
  const file = path.join(dir()!, `${name}-${process.pid}-${Date.now()}.log`);
  return createLogger({ level: "debug", destination: pino.destination({ dest: file, sync: true }) });
}
