/** Progress on a terminal: a rewritten line on a TTY, a line every 10% otherwise. */
export function progressReporter(label: string, write: (s: string) => void, isTty = Boolean(process.stderr.isTTY)) {
  let lastDecile = -1;
  let lastDraw = 0;
  return {
    update(done: number, total: number) {
      const pct = total === 0 ? 100 : Math.floor((done / total) * 100);
      if (isTty) {
        const now = Date.now();
        if (now - lastDraw < 100 && done < total) return;
        lastDraw = now;
        write(`\r${label}: ${done}/${total} (${pct}%)`);
      } else if (Math.floor(pct / 10) > lastDecile) {
        lastDecile = Math.floor(pct / 10);
        write(`${label}: ${done}/${total} (${pct}%)\n`);
      }
    },
    done() {
      if (isTty) write("\n");
    },
  };
}
