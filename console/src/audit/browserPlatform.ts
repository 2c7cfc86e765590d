import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex } from "@noble/hashes/utils.js";

// src/audit/platform.ts for the browser: the console's build puts this file in its place (console/
// vite.config.ts), so the verifier the console runs is the CLI's, module for module. The same
// exports, without Node.js:
//  - sha256Hex: synchronous (the verifier hashes twice per event, in order), so a small audited
//    pure-JS SHA-256 (@noble/hashes) rather than WebCrypto's asynchronous digest.
//  - base64urlText: atob on the base64 alphabet, then UTF-8.
//  - LineCursor: the lines of a byte range: an ASCII range decoded once and sliced, as Node's cursor
//    does; otherwise each line decoded with a fatal UTF-8 decoder (null when it is not UTF-8).

/** Only the server signs; in the browser a key would be a CryptoKey. */
export type PrivateKey = CryptoKey;

// One buffer the text is encoded into (grown as needed): no allocation per hash.
let scratch = new Uint8Array(4096);

export const sha256Hex = (text: string): string => {
  // UTF-8 takes at most 3 bytes per UTF-16 unit.
  if (text.length * 3 > scratch.length) scratch = new Uint8Array(text.length * 3);
  const { written } = encoder.encodeInto(text, scratch);
  return bytesToHex(sha256(scratch.subarray(0, written)));
};

const encoder = new TextEncoder();

const utf8 = new TextDecoder("utf-8", { fatal: true });
const lenient = new TextDecoder("utf-8");

/** The UTF-8 text of a base64url part (a JWS payload). */
export function base64urlText(part: string): string {
  const base64 = part.replace(/-/g, "+").replace(/_/g, "/").replace(/=+$/, "");
  const binary = atob(base64 + "=".repeat((4 - (base64.length % 4)) % 4));
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return lenient.decode(bytes);
}

export class LineCursor {
  private from: number;
  /** The whole range as text when it is all ASCII (each line is then a slice of it), else undefined. */
  private readonly text: string | undefined;

  constructor(
    private readonly bytes: Uint8Array,
    start: number,
    private readonly end: number,
  ) {
    this.from = start;
    // ASCII text (exports almost always are) is decoded once, as Node's cursor does, not line by line.
    const range = bytes.subarray(start, end);
    this.text = isAscii(range) ? lenient.decode(range) : undefined;
    if (this.text !== undefined) this.from = 0;
  }

  /** The next line (null: not UTF-8), undefined after the last. */
  next(): string | null | undefined {
    const { text } = this;
    if (text !== undefined) {
      const from = this.from;
      if (from >= text.length) return undefined;
      let nl = text.indexOf("\n", from);
      if (nl === -1) nl = text.length;
      this.from = nl + 1;
      return text.slice(from, nl > from && text.charCodeAt(nl - 1) === 13 ? nl - 1 : nl);
    }
    const { bytes, end, from } = this;
    if (from >= end) return undefined;
    let nl = bytes.indexOf(10, from);
    if (nl === -1 || nl > end) nl = end;
    this.from = nl + 1;
    const to = nl > from && bytes[nl - 1] === 13 ? nl - 1 : nl;
    try {
      return utf8.decode(bytes.subarray(from, to));
    } catch {
      return null;
    }
  }
}

function isAscii(bytes: Uint8Array): boolean {
  // Four bytes at a time where the range is aligned.
  const aligned = bytes.byteOffset % 4 === 0 ? new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >> 2) : undefined;
  let i = 0;
  if (aligned) {
    for (let w = 0; w < aligned.length; w++) if ((aligned[w]! & 0x80808080) !== 0) return false;
    i = aligned.length << 2;
  }
  for (; i < bytes.length; i++) if (bytes[i]! > 0x7f) return false;
  return true;
}
