/**
 * An async generator whose return() takes effect at once. A plain generator handles return() only
 * once it stands at a yield, so a subscription waiting for its next event would keep waiting after
 * the client left; here return() first aborts the signal, which the generator's waits listen to.
 */
export function abortableStream<T>(run: (signal: AbortSignal) => AsyncGenerator<T, void, undefined>): AsyncGenerator<T, void, undefined> {
  const stop = new AbortController();
  const inner = run(stop.signal);
  const outer: AsyncGenerator<T, void, undefined> = {
    next: () => inner.next(),
    return: (value) => {
      stop.abort();
      return inner.return(value);
    },
    throw: (error) => {
      stop.abort();
      return inner.throw(error);
    },
    [Symbol.asyncIterator]: () => outer,
    [Symbol.asyncDispose]: async () => {
      await outer.return(undefined);
    },
  };
  return outer;
}

/** A wake-up that is not lost when it rings while nobody waits; the abort signal rings it for good. */
export class Bell {
  private rung = false;
  private wake: (() => void) | undefined;

  constructor(private readonly signal: AbortSignal) {
    signal.addEventListener("abort", () => this.ring(), { once: true });
  }

  ring(): void {
    this.rung = true;
    this.wake?.();
  }

  /** Resolves when rung since the last wait (at once if it was), when aborted, or after ms if given. */
  wait(ms?: number): Promise<void> {
    if (this.rung || this.signal.aborted) {
      this.rung = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const done = () => {
        clearTimeout(timer);
        this.wake = undefined;
        this.rung = false;
        resolve();
      };
      this.wake = done;
      if (ms !== undefined) {
        timer = setTimeout(done, ms);
        timer.unref();
      }
    });
  }
}
