/**
 * Internal: the 512-byte header block layout shared by the reader and the
 * writer (POSIX ustar, plus the GNU fields we need to recognise), numeric field
 * codecs (octal and GNU base-256) and the checksum.
 *
 * @module
 */

/** Size of a tar block. */
export const BLOCK = 512;

/** Byte offsets and lengths of the ustar header fields. */
export const F = {
  name: [0, 100],
  mode: [100, 8],
  uid: [108, 8],
  gid: [116, 8],
  size: [124, 12],
  mtime: [136, 12],
  chksum: [148, 8],
  typeflag: [156, 1],
  linkname: [157, 100],
  magic: [257, 6],
  version: [263, 2],
  uname: [265, 32],
  gname: [297, 32],
  devmajor: [329, 8],
  devminor: [337, 8],
  prefix: [345, 155],
} as const;

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
  if (
    b[o + 257] === 0x75 && b[o + 258] === 0x73 && b[o + 259] === 0x74 &&
    b[o + 260] === 0x61 && b[o + 261] === 0x72
  ) {
    if (b[o + 262] === 0) return Magic.Ustar;
    if (b[o + 262] === 0x20 && b[o + 263] === 0x20 && b[o + 264] === 0) {
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
  const want = parseOctal(b, o + 148, 8);
  if (want < 0) return false;
  const u = (b.byteOffset + o) % 4 === 0
    ? unsignedSum32(b, o)
    : unsignedSumBytes(b, o);
  if (want === u) return true;
  let s = 8 * 0x20;
  for (let i = o, end = o + BLOCK; i < end; i++) {
    if (i === o + 148) i += 8;
    const c = b[i];
    s += c < 128 ? c : c - 256;
  }
  return want === s;
}

/** Byte sum with the checksum field counted as spaces. */
function unsignedSumBytes(b: Uint8Array, o: number): number {
  let u = 8 * 0x20;
  for (let i = o, end = o + 148; i < end; i++) u += b[i];
  for (let i = o + 156, end = o + BLOCK; i < end; i++) u += b[i];
  return u;
}

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
  // Words 37 and 38 are the checksum field (bytes 148-155). `| 0` keeps the
  // sums int32 (each lane stays below 65536, the whole below 2^31).
  for (let i = w0, end = w0 + 37; i < end; i++) {
    const w = ws[i];
    even = (even + (w & 0x00ff00ff)) | 0;
    odd = (odd + ((w >>> 8) & 0x00ff00ff)) | 0;
  }
  for (let i = w0 + 39, end = w0 + 128; i < end; i++) {
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
  writeOctal(b, o + 148, 7, sum);
  b[o + 155] = 0x20;
}

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const utf8enc = new TextEncoder();

/** Encodes a string as UTF-8. */
export function encodeUtf8(s: string): Uint8Array {
  return utf8enc.encode(s);
}

/**
 * Decodes bytes `[o, o+len)` up to the first NUL. ASCII (nearly every real
 * name) is built char by char, which V8 does ~5x faster than TextDecoder for
 * short strings; anything else goes through a fatal UTF-8 decoder. Returns
 * `null` for bytes that are not UTF-8: a JS string cannot carry them, and a
 * lossy U+FFFD mapping could merge two distinct names.
 */
export function decodeString(
  b: Uint8Array,
  o: number,
  len: number,
): string | null {
  let end = o;
  const max = o + len;
  let ascii = true;
  while (end < max) {
    const c = b[end];
    if (c === 0) break;
    if (c > 0x7f) ascii = false;
    end++;
  }
  if (end === o) return "";
  if (ascii) {
    if (end - o <= 64) {
      let s = "";
      for (let i = o; i < end; i++) s += String.fromCharCode(b[i]);
      return s;
    }
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

/** Decodes a whole byte string (may contain NULs) as strict UTF-8, or `null`. */
export function decodeUtf8Exact(b: Uint8Array): string | null {
  if (b.length <= 64) {
    // Short ASCII (PAX keys, most names): skip the TextDecoder op call.
    let s = "";
    let i = 0;
    for (; i < b.length; i++) {
      const c = b[i];
      if (c > 0x7f) break;
      s += String.fromCharCode(c);
    }
    if (i === b.length) return s;
  }
  try {
    return utf8.decode(b);
  } catch {
    return null;
  }
}
