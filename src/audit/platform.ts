import { isAscii, isUtf8 } from "node:buffer";
import * as crypto from "node:crypto";

// Everything the portable audit modules need from Node.js, in one file: a browser build of the
// verifier (the web console) swaps this file and nothing else. What each would become there:
//  - sha256Hex: WebCrypto's digest is asynchronous and the verifier hashes synchronously, twice per
//    event, so a synchronous SHA-256 (a small pure-JS one such as @noble/hashes) rather than
//    crypto.subtle.digest.
//  - base64urlText: atob on the base64 alphabet, then TextDecoder.
//  - LineCursor: TextDecoder("utf-8", { fatal: true }) per line, indexOf on the Uint8Array.
//  - PrivateKey: a CryptoKey (jose signs with either); only the server signs.

/** A key jose signs checkpoints and export trailers with. */
export type PrivateKey = crypto.KeyObject;

/** SHA-256 of the text as UTF-8, lowercase hex: crypto.hash hashes in one native call, several times faster than a Hash object. */
export const sha256Hex = (text: string): string => crypto.hash("sha256", text, "hex");

/** The UTF-8 text of a base64url part (a JWS payload), decoded as leniently as Buffer decodes it. */
export const base64urlText = (part: string): string => Buffer.from(part, "base64url").toString("utf8");

/**
 * The lines of bytes[start, end), which ends where a line does (after its LF, or at the end of the
 * file), LF or CRLF, decoded one at a time as they are read (a batch of decoded lines would outlive
 * a young-generation collection or two, and be copied by it): the text, or null for a line that
 * is not UTF-8. Text that is all ASCII is taken as Latin-1 (the same characters, decoded faster).
 */
export class LineCursor {
  private readonly bytes: Buffer;
  private readonly end: number;
  private from: number;
  /** undefined: not all UTF-8, each line is checked. */
  private readonly encoding: "latin1" | "utf8" | undefined;

  constructor(bytes: Uint8Array, start: number, end: number) {
    this.bytes = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.from = start;
    this.end = end;
    const all = this.bytes.subarray(start, end);
    // (an LF byte is never part of another character: the lines of UTF-8 text are UTF-8)
    this.encoding = isAscii(all) ? "latin1" : isUtf8(all) ? "utf8" : undefined;
  }

  /** The next line (null: not UTF-8), undefined after the last. */
  next(): string | null | undefined {
    const { bytes, end, from } = this;
    if (from >= end) return undefined;
    let nl = bytes.indexOf(10, from);
    if (nl === -1 || nl > end) nl = end;
    this.from = nl + 1;
    const to = nl > from && bytes[nl - 1] === 13 ? nl - 1 : nl;
    if (this.encoding !== undefined) return bytes.toString(this.encoding, from, to);
    return isUtf8(bytes.subarray(from, to)) ? bytes.toString("utf8", from, to) : null;
  }
}
