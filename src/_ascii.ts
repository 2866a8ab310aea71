/**
 * Internal: building short ASCII strings from bytes, the one place for it
 * (tar names and fields, directory entry names). Names are decoded per entry
 * on every hot path (apply, pack, changes), so the cost is per file.
 *
 * Why not `s += String.fromCharCode(c)`: that allocates a string per byte
 * (~570 B per tar entry, measured with V8's sampling heap profiler) and took
 * 2.3x as long for a 30-byte name (Deno 2.9.6). Why not TextDecoder: its op
 * call costs more than the whole string for names this short.
 *
 * @module
 */

/** Longest string {@link shortAscii} builds. */
export const SHORT_ASCII = 64;

/**
 * Char-code arrays of each length up to {@link SHORT_ASCII}, reused: filling
 * one and calling `String.fromCharCode.apply` allocates only the string.
 */
const CODES: number[][] = Array.from(
  { length: SHORT_ASCII + 1 },
  (_, n) => new Array<number>(n).fill(0),
);

/**
 * The string of `b[o, end)` when every byte is ASCII, else `null`. At most
 * {@link SHORT_ASCII} bytes (the caller checks).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { shortAscii } from "./_ascii.ts";
 * const b = new TextEncoder().encode("xetc/passwd");
 * assert.equal(shortAscii(b, 1, b.length), "etc/passwd");
 * assert.equal(shortAscii(new Uint8Array([0x61, 0xc3, 0xa9]), 0, 3), null);
 * ```
 */
export function shortAscii(
  b: Uint8Array,
  o: number,
  end: number,
): string | null {
  const codes = CODES[end - o];
  for (let i = o, k = 0; i < end; i++, k++) {
    const c = b[i];
    if (c > 0x7f) return null;
    codes[k] = c;
  }
  return String.fromCharCode.apply(null, codes);
}
