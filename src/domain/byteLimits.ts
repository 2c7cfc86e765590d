import { z } from "zod";

// Size limits are on UTF-8 bytes, what is stored and sent, not on JavaScript's UTF-16 length.

const utf8Bytes = (text: string): number => Buffer.byteLength(text, "utf8");

/** The size of a value serialized as JSON (undefined counts as null). */
export const jsonBytes = (value: unknown): number => utf8Bytes(JSON.stringify(value) ?? "null");

/** Any JSON value of at most `max` bytes serialized. */
export const jsonWithin = (max: number) => z.unknown().refine((v) => jsonBytes(v) <= max, `at most ${max / 1024} KB of JSON`);

/** A string of at most `max` UTF-8 bytes. */
export const textWithin = (max: number) => z.string().refine((s) => utf8Bytes(s) <= max, `at most ${max} bytes`);
