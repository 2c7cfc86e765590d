import type pg from "pg";
import { tenantScope } from "../tenantScope.ts";

// On PostgreSQL, a page of the export comes through COPY (query) TO STDOUT in binary format: the
// line bytes go from the protocol buffer straight into the page's buffer, with no row object and
// no string per row in Node (decoding, copying and collecting those cost more than the database
// spends building the lines). The query is exportPageSql: per row (line text, shown boolean).

const SIGNATURE = Buffer.from("PGCOPY\n\xff\r\n\0", "latin1");
const EMPTY = Buffer.alloc(0);

export interface CopiedPage {
  /** The lines, each followed by "\n" (null when the page holds no row): a view of `buffer`. */
  data: Buffer | null;
  /** The buffer the lines were written to: the one given, or a larger one when it was too small. */
  buffer: Buffer;
  rows: number;
  /** Rows shown in full (the others are stubs). */
  events: number;
}

/**
 * Runs the page query in its own transaction scoped to the tenant (row-level security), as
 * withTenant does, on a client of the pool, writing the lines into `into`. The caller reuses its
 * buffers: fresh memory for every page costs a page fault per 4 KB on first write, and the garbage
 * collector runs on every few large allocations.
 */
export async function copyExportPage(pool: pg.Pool, tenantId: string, pageSql: string, into: Buffer): Promise<CopiedPage> {
  const client = await pool.connect();
  let broken = false;
  try {
    await client.query(`begin; ${tenantScope(tenantId)}`);
    // query() queues a submittable and hands it back; it settles `done` when the server is ready again.
    const copy = new CopyOut(`copy (${pageSql}) to stdout (format binary)`, into);
    client.query(copy as never);
    const page = await copy.done;
    await client.query("commit");
    return page;
  } catch (error) {
    broken = true;
    await client.query("rollback").catch(() => {});
    throw error;
  } finally {
    client.release(broken ? true : undefined);
  }
}

/**
 * A pg "submittable" (the interface node-postgres offers for protocol flows of its own): sends the
 * COPY and parses the binary COPY stream (header, then per tuple: int16 field count, then per field
 * int32 length and bytes; -1 ends it) as it arrives.
 */
class CopyOut {
  private out: Buffer;
  private length = 0;
  private pending: Buffer = EMPTY;
  private headerDone = false;
  private rows = 0;
  private events = 0;
  private error: Error | undefined;
  private resolve!: (page: CopiedPage) => void;
  private reject!: (error: Error) => void;
  readonly done = new Promise<CopiedPage>((resolve, reject) => {
    this.resolve = resolve;
    this.reject = reject;
  });

  constructor(
    private readonly text: string,
    into: Buffer,
  ) {
    this.out = into;
  }

  private result(): CopiedPage {
    return { data: this.rows ? this.out.subarray(0, this.length) : null, buffer: this.out, rows: this.rows, events: this.events };
  }

  submit(connection: { query(text: string): void }): void {
    connection.query(this.text);
  }

  handleCopyData(message: { chunk: Buffer }): void {
    if (this.error) return;
    try {
      this.parse(message.chunk);
    } catch (error) {
      this.error = error as Error;
    }
  }

  // What pg's client calls on its active query; COPY out needs only some of them.
  handleCommandComplete(): void {}
  handleRowDescription(): void {}
  handleDataRow(): void {}
  handleEmptyQuery(): void {}
  handlePortalSuspended(): void {}
  handleCopyInResponse(): void {}

  handleError(error: Error): void {
    this.error ??= error;
  }

  handleReadyForQuery(): void {
    if (this.error) this.reject(this.error);
    else if (this.pending.length > 0) this.reject(new Error("COPY stream ended inside a tuple"));
    else this.resolve(this.result());
  }

  /** The chunk is a view into pg's parse buffer: everything is copied out before returning. */
  private parse(chunk: Buffer): void {
    const buf = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    let at = 0;
    if (!this.headerDone) {
      if (buf.length < 19) return void (this.pending = Buffer.from(buf));
      if (!buf.subarray(0, 11).equals(SIGNATURE)) throw new Error("not a binary COPY stream");
      const extension = buf.readUInt32BE(15);
      if (buf.length < 19 + extension) return void (this.pending = Buffer.from(buf));
      at = 19 + extension;
      this.headerDone = true;
    }
    for (;;) {
      if (buf.length - at < 2) break;
      const fields = buf.readInt16BE(at);
      if (fields === -1) {
        at += 2;
        break;
      }
      if (fields !== 2) throw new Error(`a COPY tuple of ${fields} fields`);
      if (buf.length - at < 6) break;
      const lineLength = buf.readInt32BE(at + 2);
      if (lineLength < 0) throw new Error("a null line");
      const shownAt = at + 6 + lineLength;
      if (buf.length - shownAt < 5) break;
      if (buf.readInt32BE(shownAt) !== 1) throw new Error("shown is not a boolean");
      this.append(buf, at + 6, lineLength);
      if (buf[shownAt + 4] === 1) this.events++;
      this.rows++;
      at = shownAt + 5;
    }
    this.pending = at < buf.length ? Buffer.from(buf.subarray(at)) : EMPTY;
  }

  private append(source: Buffer, start: number, length: number): void {
    const needed = this.length + length + 1;
    if (needed > this.out.length) {
      const grown = Buffer.allocUnsafe(Math.max(needed, Math.ceil(this.out.length * 1.5)));
      this.out.copy(grown, 0, 0, this.length);
      this.out = grown;
    }
    // set() of a view is a plain memcpy; Buffer#copy goes through a slower generic path.
    this.out.set(source.subarray(start, start + length), this.length);
    this.out[this.length + length] = 10;
    this.length = needed;
  }
}
