/**
 * Test workers keep their loaded modules from one file to the next (isolate: false), and every
 * embedded database is a WebAssembly memory of about 200 MB that V8 gives back only on a full
 * collection, which the JavaScript heap's own size rarely calls for. After an embedded database is
 * closed, a worker over THRESHOLD collects at once, so that its resident memory stays bounded
 * (vitest.config.ts runs workers with --expose-gc; without it this does nothing).
 */
const THRESHOLD_BYTES = 768 * 1024 * 1024;

export function releaseMemory(): void {
  if (process.memoryUsage.rss() > THRESHOLD_BYTES) (globalThis as { gc?: () => void }).gc?.();
}
