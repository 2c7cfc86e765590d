import type { Logger } from "../logger.ts";

export interface PeriodicJob {
  start(): void;
  /** Stops scheduling and waits for a run in progress. */
  stop(): Promise<void>;
}

/**
 * Runs `run` every `intervalMs` (±25 % jitter, so processes sharing a database spread out), one run
 * at a time, never keeping the process alive; a failed run is logged and the next one still comes.
 */
export function periodicJob(name: string, intervalMs: number, run: () => Promise<unknown>, logger: Logger): PeriodicJob {
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> | undefined;
  let stopped = true;

  function schedule() {
    if (stopped) return;
    timer = setTimeout(
      () => {
        running = run()
          .catch((error) => logger.error({ err: error }, `${name} failed`))
          .finally(() => {
            running = undefined;
            schedule();
          });
      },
      intervalMs * (0.75 + Math.random() * 0.5),
    );
    timer.unref();
  }

  return {
    start() {
      if (!stopped) return;
      stopped = false;
      schedule();
    },
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await running;
    },
  };
}
