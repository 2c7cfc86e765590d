type NotYet = undefined | null | false | 0 | "";

/**
 * Polls `probe` until it returns a truthy value, and returns that value; throws after `timeoutMs`,
 * with `log()` (e.g. the output of the process waited on) in the message. A probe that throws ends
 * the wait with its error: a probe for which an error only means "not yet" catches it itself.
 */
export async function waitFor<T>(what: string, probe: () => T | NotYet | Promise<T | NotYet>, timeoutMs = 15_000, log?: () => string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value as T;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${log ? `\n--- log:\n${log()}` : ""}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
