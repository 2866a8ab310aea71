/**
 * Test helpers: raw tar blocks for the reader's tests (headers patched after
 * encoding, PAX records, checks that an archive is refused).
 *
 * @module
 */

import assert from "node:assert/strict";
import { InvalidArchive } from "../../../src/errors.ts";
import {
  encodeHeader,
  paddingFor,
  type TarHeader,
  tarHeader,
  TarReader,
} from "../../../src/archive/tar/mod.ts";
import { concat as concatBytes } from "../../_bytes.ts";

/** A file header with a fixed mtime and `extra` fields. */
export function fileHeader(
  name: string,
  size: number,
  extra: Partial<TarHeader> = {},
): TarHeader {
  return tarHeader({ name, size, mtime: 1700000000, ...extra });
}

/** `parts` joined. */
export const concat = (...parts: Uint8Array[]) => concatBytes(parts);

/** Recomputes a block's checksum after a test patched it. */
export function fixChecksum(b: Uint8Array, o = 0): void {
  for (let i = o + 148; i < o + 156; i++) b[i] = 0x20;
  let s = 0;
  for (let i = o; i < o + 512; i++) s += b[i];
  const oct = s.toString(8).padStart(6, "0");
  for (let i = 0; i < 6; i++) b[o + 148 + i] = oct.charCodeAt(i);
  b[o + 154] = 0;
}

/** A raw PAX 'x' or 'g' header block plus body for the given records. */
export function paxBlock(records: string | Uint8Array, flag = "x"): Uint8Array {
  const body = typeof records === "string"
    ? new TextEncoder().encode(records)
    : records;
  const h = encodeHeader(fileHeader("PaxHeaders/x", body.length));
  h[156] = flag.charCodeAt(0);
  fixChecksum(h);
  return concat(h, body, paddingFor(body.length));
}

/** One PAX record, its length prefix included. */
export function rec(key: string, value: string): string {
  const base = new TextEncoder().encode(key + value).length + 3;
  let len = base + String(base).length;
  if (String(len).length !== String(base).length) {
    len = base + String(len).length;
  }
  return `${len} ${key}=${value}\n`;
}

/**
 * Reads `bytes` to the end and asserts the reader refuses it with an
 * InvalidArchive matching `match` (naming `entry` when given), sticky.
 */
export async function expectInvalid(
  bytes: Uint8Array,
  match: RegExp,
  entry?: string,
): Promise<InvalidArchive> {
  const r = new TarReader(bytes);
  let err: unknown;
  try {
    while ((await r.next()) !== null) await r.skipBody();
  } catch (e) {
    err = e;
  }
  assert.ok(
    err instanceof InvalidArchive,
    `expected InvalidArchive, got ${err}`,
  );
  assert.match(err.message, match);
  if (entry !== undefined) assert.equal(err.entry, entry);
  // Sticky: every later call throws the very same error.
  await assert.rejects(r.next(), (e) => e === err);
  await assert.rejects(r.skipBody(), (e) => e === err);
  await assert.rejects(r.readBody(() => {}), (e) => e === err);
  return err;
}

/** A GNU long name ('L') or long link ('K') entry carrying `value`. */
export function gnuLong(flag: "L" | "K", value: string): Uint8Array {
  const body = new TextEncoder().encode(value + "\0");
  const h = encodeHeader(fileHeader("././@LongLink", body.length));
  h[156] = flag.charCodeAt(0);
  fixChecksum(h);
  return concat(h, body, paddingFor(body.length));
}

/** Encodes `h`, then overwrites the numeric field at `off` (`len` bytes) with `octal` digits. */
export function patchedOctal(
  h: TarHeader,
  off: number,
  len: number,
  octal: string,
): Uint8Array {
  const b = encodeHeader(h);
  const digits = octal.padStart(len - 1, "0");
  for (let i = 0; i < len - 1; i++) b[off + i] = digits.charCodeAt(i);
  b[off + len - 1] = 0;
  fixChecksum(b);
  return b;
}

/** Encodes `h`, then writes `v` in GNU base-256 over the 8-byte field at `off`. */
export function patchedBase256(
  h: TarHeader,
  off: number,
  v: bigint,
): Uint8Array {
  const b = encodeHeader(h);
  let x = v;
  for (let i = 7; i >= 1; i--) {
    b[off + i] = Number(x & 0xffn);
    x >>= 8n;
  }
  b[off] = 0x80;
  fixChecksum(b);
  return b;
}
