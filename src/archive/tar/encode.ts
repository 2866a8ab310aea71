/**
 * The tar header encoder: POSIX ustar blocks, preceded by a PAX `x` record
 * when a field does not fit (long or non-ASCII names, sub-second mtimes, big
 * numbers, xattrs). Output is deterministic: the same headers give the same
 * bytes (PAX keys sorted, no pid or time in PAX header names). Used by
 * {@link TarWriter} (./writer.ts) and the exporters' pump.
 *
 * @module
 */

import {
  BLOCK,
  encodeUtf8,
  Hdr,
  isAscii,
  OCTAL12_MAX,
  OCTAL8_MAX,
  putNumber,
  putOctal,
  putString,
  putUstarMagic,
  setTypeflag,
  writeChecksum,
} from "./_block.ts";
import { formatPaxTime } from "./_pax.ts";
import {
  MAX_DEV,
  MAX_ID,
  type TarHeader,
  tarHeader,
  TYPE_FLAG_OF,
  TypeFlag,
} from "./header.ts";

/** Two zero blocks: the end-of-archive marker. */
export const END_OF_ARCHIVE: Uint8Array = new Uint8Array(2 * BLOCK);

const ZEROS = new Uint8Array(BLOCK);

/**
 * The zero bytes that pad a body of `size` bytes to a whole block.
 *
 * @param size The body size.
 * @returns A view of 0-511 zero bytes (shared: do not modify).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { paddingFor } from "./encode.ts";
 * assert.equal(paddingFor(5).length, 507);
 * assert.equal(paddingFor(512).length, 0);
 * ```
 */
export function paddingFor(size: number): Uint8Array {
  return ZEROS.subarray(0, (BLOCK - (size % BLOCK)) % BLOCK);
}

const NAME_MAX = Hdr.name.len;
const PREFIX_MAX = Hdr.prefix.len;

/** Splits a long ASCII name into ustar prefix (<= 155) and name (<= 100), or `null`. */
function splitUstar(name: string): [string, string] | null {
  if (name.length <= NAME_MAX) return ["", name];
  if (name.length > PREFIX_MAX + 1 + NAME_MAX) return null;
  // The rightmost "/" that leaves a prefix of at most 155 bytes.
  let i = name.lastIndexOf("/", PREFIX_MAX);
  while (i > 0) {
    const rest = name.length - i - 1;
    if (rest > NAME_MAX) return null;
    if (rest > 0) return [name.slice(0, i), name.slice(i + 1)];
    i = name.lastIndexOf("/", i - 1);
  }
  return null;
}

function checkInt(
  h: TarHeader,
  k: string,
  v: number,
  max = Number.MAX_SAFE_INTEGER,
  why = "a non-negative safe integer",
): void {
  if (!Number.isSafeInteger(v) || v < 0 || v > max) {
    throw new RangeError(
      `TarHeader.${k} of ${JSON.stringify(h.name)} must be ${why}, got ${v}`,
    );
  }
}

const ID_RANGE = `0-${MAX_ID} (ids are 32-bit; ${MAX_ID + 1} means "no owner")`;
const DEV_RANGE = `0-${MAX_DEV}`;

/** Refuses text that UTF-8 cannot carry (a lone surrogate would become U+FFFD). */
function checkText(h: TarHeader, k: string, v: string): void {
  if (!v.isWellFormed()) {
    throw new TypeError(
      `TarHeader.${k} of ${
        JSON.stringify(h.name)
      } holds a lone UTF-16 surrogate, which UTF-8 cannot encode`,
    );
  }
}

function checkHeader(h: TarHeader): void {
  if (!(h.type in TYPE_FLAG_OF)) {
    throw new TypeError(`TarHeader.type ${JSON.stringify(h.type)} is unknown`);
  }
  if (h.name.length === 0 || h.name.includes("\0")) {
    throw new TypeError(
      `TarHeader.name ${
        JSON.stringify(h.name)
      } must be non-empty and free of NUL`,
    );
  }
  if (h.linkname.includes("\0")) {
    throw new TypeError(`TarHeader.linkname of ${h.name} contains NUL`);
  }
  checkText(h, "name", h.name);
  checkText(h, "linkname", h.linkname);
  checkText(h, "uname", h.uname);
  checkText(h, "gname", h.gname);
  checkInt(h, "size", h.size);
  // What readers (ours, the kernel's chown and mknod) can take back.
  checkInt(h, "uid", h.uid, MAX_ID, ID_RANGE);
  checkInt(h, "gid", h.gid, MAX_ID, ID_RANGE);
  // Permission bits only: the type is the entry's type.
  checkInt(h, "mode", h.mode, 0o7777, "permission bits, 0-0o7777");
  checkInt(h, "devmajor", h.devmajor, MAX_DEV, DEV_RANGE);
  checkInt(h, "devminor", h.devminor, MAX_DEV, DEV_RANGE);
  if (!Number.isSafeInteger(h.mtime)) {
    throw new RangeError(`TarHeader.mtime of ${h.name} must be an integer`);
  }
  if (
    !Number.isInteger(h.mtimeNsec) || h.mtimeNsec < 0 || h.mtimeNsec > 999999999
  ) {
    throw new RangeError(
      `TarHeader.mtimeNsec of ${h.name} must be 0-999999999`,
    );
  }
  if (h.atime !== undefined && !Number.isSafeInteger(h.atime)) {
    throw new RangeError(`TarHeader.atime of ${h.name} must be an integer`);
  }
  if (
    h.atimeNsec !== undefined &&
    (!Number.isInteger(h.atimeNsec) || h.atimeNsec < 0 ||
      h.atimeNsec > 999999999)
  ) {
    throw new RangeError(
      `TarHeader.atimeNsec of ${h.name} must be 0-999999999`,
    );
  }
  // Checked, not assumed: a plain object or an array of pairs here would
  // otherwise be written as no xattrs at all.
  if (!(h.xattrs instanceof Map)) {
    throw new TypeError(`TarHeader.xattrs of ${h.name} must be a Map`);
  }
  if (h.pax !== undefined && !(h.pax instanceof Map)) {
    throw new TypeError(`TarHeader.pax of ${h.name} must be a Map`);
  }
}

/**
 * What one header needs: the ustar name split and its PAX records (none when
 * `count` is 0). A record's value is an ASCII string, bytes, or (`vals[i]`
 * null) a time of `secs[i]` >= 0 seconds and `nsecs[i]` > 0 nanoseconds,
 * written as digits straight into the block.
 *
 * One plan is reused for every header ({@link acquirePlan}): a PAX header
 * per entry, which every file with a sub-second mtime needs, allocated a
 * closure, tuples, a plan, record arrays and four strings (~1 µs of a 1.7 µs
 * header). Planning and writing run synchronously; an encode that starts
 * while the shared plan is taken (user code run by planning, such as a Map
 * iterator, encoding a header itself) gets a fresh one.
 */
class Plan {
  prefix = "";
  name = "";
  /** The entry name is ASCII (its PAX header name is written char by char). */
  ascii = true;
  count = 0;
  /** Keys as given (records are sorted by them). */
  names: string[] = [];
  keys: (string | Uint8Array)[] = [];
  vals: (string | Uint8Array | null)[] = [];
  secs: number[] = [];
  nsecs: number[] = [];
  /** Each record's length, its own length digits included. */
  lens: number[] = [];
  /** Total bytes of the records. */
  length = 0;
}

const SHARED_PLAN = new Plan();
let sharedPlanTaken = false;

function acquirePlan(): Plan {
  if (sharedPlanTaken) return new Plan();
  sharedPlanTaken = true;
  return SHARED_PLAN;
}

function releasePlan(p: Plan): void {
  if (p !== SHARED_PLAN) return;
  // Values can be big xattrs: keep none of them alive.
  for (let i = 0; i < p.count; i++) p.vals[i] = null;
  p.count = 0;
  sharedPlanTaken = false;
}

function addRecord(p: Plan, k: string, v: string | Uint8Array): void {
  const i = p.count++;
  p.names[i] = k;
  p.keys[i] = isAscii(k) ? k : encodeUtf8(k);
  p.vals[i] = typeof v === "string" && !isAscii(v) ? encodeUtf8(v) : v;
}

function addTimeRecord(p: Plan, k: string, sec: number, nsec: number): void {
  if (sec < 0 || nsec === 0) return addRecord(p, k, formatPaxTime(sec, nsec));
  const i = p.count++;
  p.names[i] = k;
  p.keys[i] = k;
  p.vals[i] = null;
  p.secs[i] = sec;
  p.nsecs[i] = nsec;
}

/** Sorts the planned records by key (insertion sort: a header has a few) and sizes them. */
function finishRecords(r: Plan): void {
  for (let i = 1; i < r.count; i++) {
    for (let j = i; j > 0 && r.names[j] < r.names[j - 1]; j--) {
      swap(r.names, j);
      swap(r.keys, j);
      swap(r.vals, j);
      swap(r.secs, j);
      swap(r.nsecs, j);
    }
  }
  let total = 0;
  for (let i = 0; i < r.count; i++) {
    const v = r.vals[i];
    // " " "=" "\n" plus the length's own digits (which count themselves).
    const base = 3 + r.keys[i].length +
      (v === null ? decimalDigits(r.secs[i]) + 10 : v.length);
    let len = base + decimalDigits(base);
    if (decimalDigits(len) !== decimalDigits(base)) {
      len = base + decimalDigits(len);
    }
    r.lens[i] = len;
    total += len;
  }
  r.length = total;
}

function swap<T>(a: T[], j: number): void {
  const t = a[j];
  a[j] = a[j - 1];
  a[j - 1] = t;
}

/** Writes the planned PAX records at `b[at]`; returns the end. */
function writeRecords(b: Uint8Array, at: number, r: Plan): number {
  for (let i = 0; i < r.count; i++) {
    at = putDecimal(b, at, r.lens[i]);
    b[at++] = 0x20;
    at = putBytes(b, at, r.keys[i]);
    b[at++] = 0x3d;
    const v = r.vals[i];
    if (v === null) {
      at = putDecimal(b, at, r.secs[i]);
      b[at++] = 0x2e;
      at = putDecimal(b, at, r.nsecs[i], 9); // GNU tar's 9-digit fraction
    } else at = putBytes(b, at, v);
    b[at++] = 0x0a;
  }
  return at;
}

/** Digits of a non-negative integer in decimal (comparisons: a division loop cost more than the rest of a record). */
function decimalDigits(n: number): number {
  if (n < 1e4) return n < 10 ? 1 : n < 100 ? 2 : n < 1000 ? 3 : 4;
  if (n < 1e10) {
    return n < 1e5
      ? 5
      : n < 1e6
      ? 6
      : n < 1e7
      ? 7
      : n < 1e8
      ? 8
      : n < 1e9
      ? 9
      : 10;
  }
  return String(n).length;
}

/** Writes a non-negative integer in decimal at `at`, zero-padded to `width` digits; returns the end. */
function putDecimal(
  b: Uint8Array,
  at: number,
  n: number,
  width = decimalDigits(n),
): number {
  const end = at + width;
  if (n <= 0x7fffffff) {
    // int32 arithmetic: no float division per digit.
    for (let d = end - 1; d >= at; d--) {
      const q = (n / 10) | 0;
      b[d] = 0x30 + n - q * 10;
      n = q;
    }
    return end;
  }
  for (let d = end - 1; d >= at; d--) {
    b[d] = 0x30 + (n % 10);
    n = Math.floor(n / 10);
  }
  return end;
}

/** Writes an ASCII string or bytes at `at`; returns the end. */
function putBytes(b: Uint8Array, at: number, v: string | Uint8Array): number {
  if (typeof v === "string") {
    for (let i = 0; i < v.length; i++) b[at + i] = v.charCodeAt(i);
    return at + v.length;
  }
  b.set(v, at);
  return at + v.length;
}

/** Keys of `TarHeader.pax` the header's own fields already express (not forwarded). */
const OWN_PAX_KEY = /^(path|linkpath|size|uid|gid|uname|gname|mtime|atime)$/;

/** Fills `p` (from {@link acquirePlan}) with what `h` needs. */
function plan(h: TarHeader, p: Plan): void {
  checkHeader(h);
  p.count = 0;
  p.prefix = "";
  p.name = h.name;
  p.ascii = isAscii(h.name);
  if (h.name.length > NAME_MAX || !p.ascii) {
    const split = p.ascii ? splitUstar(h.name) : null;
    if (split) [p.prefix, p.name] = split;
    else addRecord(p, "path", h.name);
  }
  if (h.linkname.length > Hdr.linkname.len || !isAscii(h.linkname)) {
    addRecord(p, "linkpath", h.linkname);
  }
  if (h.uname.length > Hdr.uname.len || !isAscii(h.uname)) {
    addRecord(p, "uname", h.uname);
  }
  if (h.gname.length > Hdr.gname.len || !isAscii(h.gname)) {
    addRecord(p, "gname", h.gname);
  }
  if (h.uid > OCTAL8_MAX) addRecord(p, "uid", String(h.uid));
  if (h.gid > OCTAL8_MAX) addRecord(p, "gid", String(h.gid));
  const size = h.type === "file" ? h.size : 0;
  if (size > OCTAL12_MAX) addRecord(p, "size", String(size));
  if (h.mtimeNsec !== 0 || h.mtime < 0 || h.mtime > OCTAL12_MAX) {
    addTimeRecord(p, "mtime", h.mtime, h.mtimeNsec);
  }
  if (h.atime !== undefined) {
    addTimeRecord(p, "atime", h.atime, h.atimeNsec ?? 0);
  }
  // The size test spares an iterator per entry: nearly every file has none.
  if (h.xattrs.size > 0) {
    for (const [k, v] of h.xattrs) {
      if (!paxKeyOk(k)) throw badPaxKey("xattr", k, h);
      addRecord(p, "SCHILY.xattr." + k, v);
    }
  }
  if (h.pax) {
    for (const [k, v] of h.pax) {
      // The header's own fields and xattrs win over records that restate them.
      if (
        OWN_PAX_KEY.test(k) || k.startsWith("SCHILY.xattr.") ||
        k.startsWith("GNU.sparse.")
      ) continue;
      if (!paxKeyOk(k)) throw badPaxKey("PAX record", k, h);
      addRecord(p, k, v);
    }
  }
  if (p.count > 0) finishRecords(p);
}

/** A key a PAX record can carry: not empty, no "=" or NUL, valid Unicode. */
function paxKeyOk(k: string): boolean {
  return k.length > 0 && !k.includes("=") && !k.includes("\0") &&
    k.isWellFormed();
}

function badPaxKey(what: string, k: string, h: TarHeader): TypeError {
  return new TypeError(
    `${what} name ${
      JSON.stringify(k)
    } of ${h.name} cannot be stored in PAX (empty, "=", NUL or a lone surrogate)`,
  );
}

/** Bytes {@link writePlanned} writes for a plan. */
function plannedSize(p: Plan): number {
  return p.count > 0
    ? 2 * BLOCK + p.length + ((BLOCK - (p.length % BLOCK)) % BLOCK)
    : BLOCK;
}

/** Writes the ustar block of `h` at `b[o]` (zero-filled) with the given name split. */
function writeBlock(
  b: Uint8Array,
  o: number,
  h: TarHeader,
  prefix: string,
  name: string,
  flag: number = TYPE_FLAG_OF[h.type],
): void {
  putString(b, o, Hdr.name, name);
  putOctal(b, o, Hdr.mode, h.mode & 0o7777);
  putNumber(b, o, Hdr.uid, h.uid);
  putNumber(b, o, Hdr.gid, h.gid);
  putNumber(b, o, Hdr.size, h.type === "file" ? h.size : 0);
  putNumber(b, o, Hdr.mtime, h.mtime);
  setTypeflag(b, o, flag);
  putString(b, o, Hdr.linkname, h.linkname);
  putUstarMagic(b, o);
  putString(b, o, Hdr.uname, h.uname);
  putString(b, o, Hdr.gname, h.gname);
  if (h.type === "char" || h.type === "block") {
    putNumber(b, o, Hdr.devmajor, h.devmajor);
    putNumber(b, o, Hdr.devminor, h.devminor);
  } else {
    putOctal(b, o, Hdr.devmajor, 0);
    putOctal(b, o, Hdr.devminor, 0);
  }
  if (prefix.length > 0) putString(b, o, Hdr.prefix, prefix);
  writeChecksum(b, o);
}

/**
 * The ustar block of every PAX `x` header but its name, size, mtime and
 * checksum (GNU tar's fields: mode 0644, owner 0, no user names).
 */
const PAX_BLOCK = (() => {
  const b = new Uint8Array(BLOCK);
  writeBlock(b, 0, tarHeader({ name: "" }), "", "", TypeFlag.XHeader);
  return b;
})();

/** Writes the PAX header's name, GNU tar's "%d/PaxHeaders/%f" without the pid (deterministic). */
function putPaxHeaderName(b: Uint8Array, o: number, name: string): void {
  let end = name.length;
  while (end > 1 && name.charCodeAt(end - 1) === 0x2f) end--;
  const slash = name.lastIndexOf("/", end - 1);
  const at = o + Hdr.name.at;
  const max = at + Hdr.name.len;
  let w = at;
  // dir ("." without one), "/PaxHeaders/", then the rest of the name, cut at 100.
  if (slash < 0) b[w++] = 0x2e;
  for (let i = 0; i < slash && w < max; i++) b[w++] = name.charCodeAt(i);
  for (let i = 0; i < PAX_DIR.length && w < max; i++) b[w++] = PAX_DIR[i];
  for (let i = slash + 1; i < name.length && w < max; i++) {
    b[w++] = name.charCodeAt(i);
  }
}

const PAX_DIR = new TextEncoder().encode("/PaxHeaders/");

/** Writes a planned header at `b[o]`, which must be zero-filled; returns the bytes written. */
function writePlanned(
  b: Uint8Array,
  o: number,
  h: TarHeader,
  p: Plan,
): number {
  let at = o;
  if (p.count > 0) {
    b.set(PAX_BLOCK, at);
    if (p.ascii) putPaxHeaderName(b, at, h.name);
    else {
      // Non-ASCII: the same name as a string, cut at 100 bytes of UTF-8.
      let end = h.name.length;
      while (end > 1 && h.name.charCodeAt(end - 1) === 0x2f) end--;
      const slash = h.name.lastIndexOf("/", end - 1);
      const dir = slash < 0 ? "." : h.name.slice(0, slash);
      putString(
        b,
        at,
        Hdr.name,
        `${dir}/PaxHeaders/${h.name.slice(slash + 1)}`,
      );
    }
    putNumber(b, at, Hdr.size, p.length);
    putOctal(b, at, Hdr.mtime, Math.min(Math.max(h.mtime, 0), OCTAL12_MAX));
    writeChecksum(b, at);
    at += BLOCK;
    writeRecords(b, at, p);
    at += p.length + ((BLOCK - (p.length % BLOCK)) % BLOCK);
  }
  writeBlock(b, at, h, p.prefix, p.name);
  return at + BLOCK - o;
}

/**
 * Encodes one entry's header: a ustar block, preceded by a PAX `x` header when
 * a value does not fit ustar (names over 100 bytes that cannot be split into
 * prefix/name, non-ASCII names, sub-second or negative mtimes, numbers over
 * the octal range, xattrs as `SCHILY.xattr.<name>` with raw byte values).
 * Only `file` entries carry a size; other types are written with size 0.
 *
 * @param h The header.
 * @returns The header bytes (a multiple of 512).
 * @throws {TypeError} An unknown type, an empty name, NUL bytes, a lone
 *   surrogate in a name, or an xattr or PAX record name with "=".
 * @throws {RangeError} A negative or non-integer number, a uid or gid over
 *   4294967294, a device number over 4294967295, or a mode with more than
 *   permission bits (over 0o7777).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeHeader } from "./encode.ts";
 * const block = encodeHeader({
 *   name: "bin/", type: "dir", size: 0, mode: 0o755, uid: 0, gid: 0,
 *   uname: "root", gname: "root", mtime: 1700000000, mtimeNsec: 0,
 *   linkname: "", devmajor: 0, devminor: 0, xattrs: new Map(),
 * });
 * assert.equal(block.length, 512);
 * assert.equal(new TextDecoder().decode(block.subarray(0, 4)), "bin/");
 * ```
 */
export function encodeHeader(h: TarHeader): Uint8Array {
  const p = acquirePlan();
  try {
    plan(h, p);
    const out = new Uint8Array(plannedSize(p));
    writePlanned(out, 0, h, p);
    return out;
  } finally {
    releasePlan(p);
  }
}

/**
 * {@link encodeHeader} without the allocation: writes the header straight into
 * `dst` at `at`, for writers that batch entries in their own chunks. The
 * bytes there must be zero (a fresh `Uint8Array` is): only non-zero fields
 * are written.
 *
 * @param h The header.
 * @param dst The buffer; its header bytes must be zero unless `zero` is set.
 * @param at Where to write (any offset; a multiple of 4 is fastest).
 * @param zero Clear the header's bytes first (a reused buffer).
 * @returns Bytes written (a multiple of 512), or minus the bytes needed when
 *   they do not fit in `dst` after `at` (then nothing is written).
 * @throws {TypeError} As {@link encodeHeader}.
 * @throws {RangeError} As {@link encodeHeader}.
 *
 * @example Batching headers into one chunk
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeHeaderInto } from "./encode.ts";
 * const chunk = new Uint8Array(1 << 20);
 * let off = 0;
 * for (const name of ["a", "b"]) {
 *   const n = encodeHeaderInto({
 *     name, type: "file", size: 0, mode: 0o644, uid: 0, gid: 0, uname: "",
 *     gname: "", mtime: 0, mtimeNsec: 5, linkname: "", devmajor: 0,
 *     devminor: 0, xattrs: new Map(),
 *   }, chunk, off);
 *   if (n < 0) throw new Error("chunk full: emit it and retry");
 *   off += n;
 * }
 * assert.equal(off, 3072); // each: a PAX header with its mtime record, then the ustar header
 * ```
 */
export function encodeHeaderInto(
  h: TarHeader,
  dst: Uint8Array,
  at: number,
  zero = false,
): number {
  const p = acquirePlan();
  try {
    plan(h, p);
    const n = plannedSize(p);
    if (dst.length - at < n) return -n;
    if (zero) dst.fill(0, at, at + n);
    return writePlanned(dst, at, h, p);
  } finally {
    releasePlan(p);
  }
}
