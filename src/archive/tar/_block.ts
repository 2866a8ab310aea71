/**
 * Internal: the 512-byte header block shared by the reader and the writer.
 * Its fields live here once, by name ({@link Hdr}, after Go's format.go
 * header views), with the accessors both sides use (`numberAt`, `stringAt`,
 * `putNumber`, `putString`, ...); neither side knows a raw offset. Also the
 * numeric codecs (octal and GNU base-256) and the checksum.
 *
 * @module
 */

import { SHORT_ASCII, shortAscii } from "../../_ascii.ts";

/** Size of a tar block. */
export const BLOCK = 512;

/** One field of the header block: where it starts and how many bytes it has. */
export interface Field {
  /** Offset from the start of the block. */
  readonly at: number;
  /** Length in bytes. */
  readonly len: number;
}

/**
 * The header block, field by field (POSIX ustar; after Go's archive/tar
 * format.go header views). The reader and the writer address every field
 * through this table and the accessors below, never by a raw offset.
 * Old GNU headers use the `prefix` area for atime/ctime/sparse data instead
 * (see {@link magicOf}).
 */
export const Hdr = {
  name: { at: 0, len: 100 },
  mode: { at: 100, len: 8 },
  uid: { at: 108, len: 8 },
  gid: { at: 116, len: 8 },
  size: { at: 124, len: 12 },
  mtime: { at: 136, len: 12 },
  chksum: { at: 148, len: 8 },
  typeflag: { at: 156, len: 1 },
  linkname: { at: 157, len: 100 },
  magic: { at: 257, len: 6 },
  version: { at: 263, len: 2 },
  uname: { at: 265, len: 32 },
  gname: { at: 297, len: 32 },
  devmajor: { at: 329, len: 8 },
  devminor: { at: 337, len: 8 },
  prefix: { at: 345, len: 155 },
} as const satisfies Record<string, Field>;

/** Largest octal value of the 8-byte fields (mode, ids, devices): 2097151. */
export const OCTAL8_MAX = 0o7777777;
/** Largest octal value of the 12-byte fields (size, mtime): 8 GiB - 1. */
export const OCTAL12_MAX = 0o77777777777;

// Offsets read for every block, as plain constants.
const TYPEFLAG = Hdr.typeflag.at;
const CHKSUM = Hdr.chksum.at;
const CHKSUM_END = CHKSUM + Hdr.chksum.len;
const MAGIC = Hdr.magic.at;
const VERSION = Hdr.version.at;

/** The type flag of the block at `o`. */
export function typeflagAt(b: Uint8Array, o: number): number {
  return b[o + TYPEFLAG];
}

/** Sets the type flag of the block at `o` (the checksum must be written after). */
export function setTypeflag(b: Uint8Array, o: number, flag: number): void {
  b[o + TYPEFLAG] = flag;
}

/** A numeric field of the block at `o` (octal or base-256); see {@link parseNumeric}. */
export function numberAt(
  b: Uint8Array,
  o: number,
  f: Field,
): number | bigint | null {
  return parseNumeric(b, o + f.at, f.len);
}

/** A string field of the block at `o`, up to its first NUL; see {@link decodeString}. */
export function stringAt(b: Uint8Array, o: number, f: Field): string | null {
  return decodeString(b, o + f.at, f.len);
}

/** True when the string field `f` of the block at `o` is empty (starts with a NUL). */
export function emptyAt(b: Uint8Array, o: number, f: Field): boolean {
  return b[o + f.at] === 0;
}

/**
 * Writes `v` into a numeric field: octal when it fits, else GNU base-256
 * (readers that know PAX take the value from a PAX record as well).
 */
export function putNumber(b: Uint8Array, o: number, f: Field, v: number): void {
  const max = f.len === 8
    ? OCTAL8_MAX
    : f.len === 12
    ? OCTAL12_MAX
    : octalMax(f.len);
  if (v >= 0 && v <= max) writeOctal(b, o + f.at, f.len, v);
  else writeBase256(b, o + f.at, f.len, v);
}

/** Writes `v` as octal into a numeric field (the caller checked the range). */
export function putOctal(b: Uint8Array, o: number, f: Field, v: number): void {
  writeOctal(b, o + f.at, f.len, v);
}

/**
 * Writes as much of `s` as fits into a string field of a zero-filled block
 * (a PAX record carries the full value when it does not fit).
 */
export function putString(b: Uint8Array, o: number, f: Field, s: string): void {
  const at = o + f.at;
  if (isAscii(s)) {
    const n = s.length > f.len ? f.len : s.length;
    for (let i = 0; i < n; i++) b[at + i] = s.charCodeAt(i);
  } else {
    const e = encodeUtf8(s);
    b.set(e.length > f.len ? e.subarray(0, f.len) : e, at);
  }
}

/** Writes the POSIX magic and version (`"ustar\0" "00"`). */
export function putUstarMagic(b: Uint8Array, o: number): void {
  const m = "ustar\x0000";
  for (let i = 0; i < m.length; i++) b[o + MAGIC + i] = m.charCodeAt(i);
}

const NON_ASCII = /[\u0080-\uffff]/;

/** True when `s` is all ASCII (one UTF-16 unit per byte). */
export function isAscii(s: string): boolean {
  return s.length === 0 || !NON_ASCII.test(s);
}

/** Which header dialect a block uses (decides whether `prefix` is a path prefix). */
export const Magic = {
  /** Pre-POSIX V7: no magic, no prefix, no user names. */
  V7: 0,
  /** POSIX ustar / PAX: `prefix` is a path prefix. */
  Ustar: 1,
  /** Old GNU (`"ustar  \0"`): the prefix area holds atime/ctime/sparse data. */
  GNU: 2,
} as const;
/** One of {@link Magic}. */
export type Magic = typeof Magic[keyof typeof Magic];

/** Identifies the dialect from the magic and version fields. */
export function magicOf(b: Uint8Array, o: number): Magic {
  // "ustar\0" "00" (POSIX) or "ustar " " \0" (GNU).
  const m = o + MAGIC;
  if (
    b[m] === 0x75 && b[m + 1] === 0x73 && b[m + 2] === 0x74 &&
    b[m + 3] === 0x61 && b[m + 4] === 0x72
  ) {
    if (b[m + 5] === 0) return Magic.Ustar;
    const v = o + VERSION;
    if (b[m + 5] === 0x20 && b[v] === 0x20 && b[v + 1] === 0) {
      return Magic.GNU;
    }
    return Magic.Ustar;
  }
  return Magic.V7;
}

/** True when the 512 bytes at `o` are all zero. */
export function isZeroBlock(b: Uint8Array, o: number): boolean {
  // 32-bit reads when aligned are ~4x faster than a byte loop; only called on
  // blocks whose checksum would fail anyway, so the simple loop is fine.
  for (let i = o, end = o + BLOCK; i < end; i++) if (b[i] !== 0) return false;
  return true;
}

/**
 * Verifies the header checksum: the unsigned sum of the block with the checksum
 * field read as spaces. Like GNU tar and Go, a signed sum (some old Sun tars) is
 * accepted too.
 */
export function checksumOk(b: Uint8Array, o: number): boolean {
  const want = parseOctal(b, o + CHKSUM, Hdr.chksum.len);
  if (want < 0) return false;
  const u = (b.byteOffset + o) % 4 === 0
    ? unsignedSum32(b, o)
    : unsignedSumBytes(b, o);
  if (want === u) return true;
  let s = 8 * 0x20;
  for (let i = o, end = o + BLOCK; i < end; i++) {
    if (i === o + CHKSUM) i += Hdr.chksum.len;
    const c = b[i];
    s += c < 128 ? c : c - 256;
  }
  return want === s;
}

/** Byte sum with the checksum field counted as spaces. */
function unsignedSumBytes(b: Uint8Array, o: number): number {
  let u = 8 * 0x20;
  for (let i = o, end = o + CHKSUM; i < end; i++) u += b[i];
  for (let i = o + CHKSUM_END, end = o + BLOCK; i < end; i++) u += b[i];
  return u;
}

// The checksum field is word-aligned (148 = 4 * 37, 8 bytes long).
const CHKSUM_W0 = CHKSUM >>> 2;
const CHKSUM_W1 = CHKSUM_END >>> 2;

let wordsOf: ArrayBufferLike | null = null;
let words: Uint32Array<ArrayBufferLike> = new Uint32Array(0);

/**
 * The same sum four bytes at a time (SWAR): two accumulators of 16-bit lanes
 * cannot overflow over 128 words (128 * 255 < 65536). This runs for every
 * block, and was the reader's hottest function as a byte loop.
 */
function unsignedSum32(b: Uint8Array, o: number): number {
  if (wordsOf !== b.buffer) {
    wordsOf = b.buffer;
    words = new Uint32Array(b.buffer, 0, b.buffer.byteLength >>> 2);
  }
  const ws = words; // a local: V8 keeps module-level lets out of registers
  const w0 = (b.byteOffset + o) >>> 2;
  let even = 0;
  let odd = 0;
  // The checksum field is words CHKSUM_W0 to CHKSUM_W1 - 1. `| 0` keeps the
  // sums int32 (each lane stays below 65536, the whole below 2^31).
  for (let i = w0, end = w0 + CHKSUM_W0; i < end; i++) {
    const w = ws[i];
    even = (even + (w & 0x00ff00ff)) | 0;
    odd = (odd + ((w >>> 8) & 0x00ff00ff)) | 0;
  }
  for (let i = w0 + CHKSUM_W1, end = w0 + BLOCK / 4; i < end; i++) {
    const w = ws[i];
    even = (even + (w & 0x00ff00ff)) | 0;
    odd = (odd + ((w >>> 8) & 0x00ff00ff)) | 0;
  }
  return 8 * 0x20 + (even & 0xffff) + (even >>> 16) + (odd & 0xffff) +
    (odd >>> 16);
}

/**
 * Parses an octal field: leading spaces/NULs skipped, ends at the first space
 * or NUL. Returns -1 for a malformed field (a digit out of range), 0 for an
 * empty one. Values up to 12 octal digits stay below 2^36, well inside a double.
 */
export function parseOctal(b: Uint8Array, o: number, len: number): number {
  let i = o;
  const end = o + len;
  while (i < end && (b[i] === 0x20 || b[i] === 0)) i++;
  let v = 0;
  for (; i < end; i++) {
    const c = b[i];
    if (c === 0x20 || c === 0) break;
    if (c < 0x30 || c > 0x37) return -1;
    v = v * 8 + (c - 0x30);
  }
  // Anything after the terminator must be terminators too.
  for (; i < end; i++) if (b[i] !== 0x20 && b[i] !== 0) return -1;
  return v;
}

/**
 * Parses a numeric field that may use GNU base-256 (high bit of the first byte
 * set; 0xff means negative, two's complement). Returns a bigint so callers can
 * decide what range they accept, or `null` for a malformed octal field.
 */
export function parseNumeric(
  b: Uint8Array,
  o: number,
  len: number,
): number | bigint | null {
  const first = b[o];
  if (first & 0x80) {
    // Base-256: the remaining 7 bits of byte 0, then big-endian bytes.
    const neg = first === 0xff;
    let v = BigInt(neg ? (first ^ 0xff) & 0x7f : first & 0x7f);
    for (let i = 1; i < len; i++) {
      v = (v << 8n) | BigInt(neg ? b[o + i] ^ 0xff : b[o + i]);
    }
    if (neg) v = -v - 1n;
    if (v >= -9007199254740991n && v <= 9007199254740991n) return Number(v);
    return v;
  }
  const v = parseOctal(b, o, len);
  return v < 0 ? null : v;
}

/** Writes `v` as zero-padded octal of `len - 1` digits plus a NUL. Caller checks the range. */
export function writeOctal(
  b: Uint8Array,
  o: number,
  len: number,
  v: number,
): void {
  const digits = len - 1;
  let x = v;
  let i = digits - 1;
  // Integer ops while the value fits 31 bits; float division above (sizes to 8 GiB).
  for (; i >= 0 && x > 0x3fffffff; i--) {
    b[o + i] = 0x30 + (x % 8);
    x = Math.floor(x / 8);
  }
  for (; i >= 0; i--) {
    b[o + i] = 0x30 + (x & 7);
    x >>>= 3;
  }
  b[o + digits] = 0;
}

/** Largest value an octal field of `len` bytes (with its NUL) can hold. */
export function octalMax(len: number): number {
  return 8 ** (len - 1) - 1;
}

/** Writes `v` in GNU base-256 (two's complement for negatives) over the whole field. */
export function writeBase256(
  b: Uint8Array,
  o: number,
  len: number,
  v: number | bigint,
): void {
  let x = BigInt(v);
  for (let i = len - 1; i >= 1; i--) {
    b[o + i] = Number(x & 0xffn);
    x >>= 8n;
  }
  b[o] = x < 0n ? 0xff : 0x80;
}

/** Writes the checksum the way GNU tar does: six octal digits, NUL, space. */
export function writeChecksum(b: Uint8Array, o: number): void {
  const sum = (b.byteOffset + o) % 4 === 0
    ? unsignedSum32(b, o)
    : unsignedSumBytes(b, o);
  writeOctal(b, o + CHKSUM, 7, sum);
  b[o + CHKSUM_END - 1] = 0x20;
}

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const utf8enc = new TextEncoder();

/** Encodes a string as UTF-8. */
export function encodeUtf8(s: string): Uint8Array {
  return utf8enc.encode(s);
}

/**
 * Decodes bytes `[o, o+len)` up to the first NUL. ASCII (nearly every real
 * name) is built from char codes (`_ascii.ts`); anything else goes through a
 * fatal UTF-8 decoder. Returns `null` for bytes that are not UTF-8: a JS
 * string cannot carry them, and a lossy U+FFFD mapping could merge two
 * distinct names.
 */
export function decodeString(
  b: Uint8Array,
  o: number,
  len: number,
): string | null {
  let end = o;
  const max = o + len;
  while (end < max && b[end] !== 0) end++;
  if (end === o) return "";
  if (end - o <= SHORT_ASCII) {
    const s = shortAscii(b, o, end);
    if (s !== null) return s;
  } else if (isAsciiRange(b, o, end)) {
    return String.fromCharCode.apply(
      null,
      b.subarray(o, end) as unknown as number[],
    );
  }
  try {
    return utf8.decode(b.subarray(o, end));
  } catch {
    return null;
  }
}

function isAsciiRange(b: Uint8Array, o: number, end: number): boolean {
  for (let i = o; i < end; i++) if (b[i] > 0x7f) return false;
  return true;
}

/**
 * Decodes `b[start, end)` (may contain NULs; all of `b` by default) as strict
 * UTF-8, or `null`. Short ASCII is built in place: no view, no decoder call.
 */
export function decodeUtf8Exact(
  b: Uint8Array,
  start = 0,
  end = b.length,
): string | null {
  if (end - start <= SHORT_ASCII) {
    // Short ASCII (PAX keys, most names): skip the TextDecoder op call.
    const s = shortAscii(b, start, end);
    if (s !== null) return s;
  }
  try {
    return utf8.decode(
      start === 0 && end === b.length ? b : b.subarray(start, end),
    );
  } catch {
    return null;
  }
}
