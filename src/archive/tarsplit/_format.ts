/**
 * Internal: the on-disk form of a tar-split record (after vbatts/tar-split,
 * whose `tar/storage` keeps JSON lines of "segment" and "file" entries; ours
 * is binary and framed so it is read back with flat memory).
 *
 * ```
 * file    := MAGIC frame*
 * frame   := u32le gzipLength, u32le rawLength, gzip member (of rawLength bytes of ops)
 * op      := 'S' u32le n, n raw bytes                 every byte of the tar that is not file content
 *          | 'F' u32le pathLength, path (UTF-8), f64le size, u32le crc32
 *                                                     a regular file's content: `size` bytes of
 *                                                     the layer's file at `path` (root-relative)
 *          | 'E' f64le tarBytes, 32 bytes sha256      the end: length and sha256 of the whole tar
 * ```
 *
 * An op never straddles a frame (a long segment is cut into several `S`
 * ops), so a frame is decoded on its own. Frames hold at most
 * {@link FRAME_RAW} bytes of ops and are compressed one by one with
 * `gzipSync` at level 1 (several GB/s here on header-and-padding bytes, vs
 * 0.4 GB/s through `CompressionStream` at its default level), which is what keeps recording cheap.
 * A small stream's frames are gzip members of stored (uncompressed) deflate
 * blocks instead, written and read here: loading `node:zlib` would set up
 * Node compatibility, ~25 ms, for a record of a few KB (`_sums.ts`). Any
 * gzip reader reads both; a frame with compressed blocks goes to `node:zlib`.
 *
 * @module
 */

import { nodeZlib } from "../../_node.ts";
import { decodeUtf8Exact, encodeUtf8 } from "../tar/_block.ts";
import { crc32 } from "./_sums.ts";

const utf8 = new TextEncoder();

/** First bytes of every record file. */
export const MAGIC: Uint8Array = encodeUtf8("layerfs-tarsplit/1\n");

/** Raw op bytes per frame. */
export const FRAME_RAW = 1 << 20;

/** Op tags. */
export const Op = {
  Segment: 0x53, // 'S'
  File: 0x46, // 'F'
  End: 0x45, // 'E'
} as const;

/** One decoded op. */
export type RecordOp =
  | { op: "segment"; bytes: Uint8Array }
  | { op: "file"; path: string; size: number; crc: number }
  | { op: "end"; size: number; sha256: Uint8Array };

/** Writes ops into frames of an open file, synchronously (a staging file). */
export class RecordEncoder {
  readonly #file: Deno.FsFile;
  readonly #buf = new Uint8Array(FRAME_RAW);
  readonly #view = new DataView(this.#buf.buffer);
  readonly #stored: () => boolean;
  #at = 0;

  /**
   * Starts a record in `file` (empty, opened for writing). `stored` tells
   * at each frame whether to write it uncompressed (a small stream).
   */
  constructor(file: Deno.FsFile, stored: () => boolean = () => false) {
    this.#file = file;
    this.#stored = stored;
    writeAllSync(file, MAGIC);
  }

  /** Appends raw tar bytes (cut across frames as needed). */
  segment(b: Uint8Array): void {
    let off = 0;
    while (off < b.length) {
      if (FRAME_RAW - this.#at < 6) this.flush();
      const n = Math.min(b.length - off, FRAME_RAW - this.#at - 5);
      this.#buf[this.#at] = Op.Segment;
      this.#view.setUint32(this.#at + 1, n, true);
      this.#buf.set(b.subarray(off, off + n), this.#at + 5);
      this.#at += 5 + n;
      off += n;
    }
  }

  /** Appends a file op (`path` root-relative, encoded as UTF-8 here). */
  file(path: string, size: number, crc: number): void {
    // UTF-8 takes at most 3 bytes per UTF-16 unit.
    const need = 1 + 4 + 3 * path.length + 8 + 4;
    if (FRAME_RAW - this.#at < need) this.flush();
    const v = this.#view;
    const b = this.#buf;
    let at = this.#at;
    b[at] = Op.File;
    // ASCII (nearly every path) char by char: an encoder call per file
    // was ~7% of recording a 55k-file layer.
    let n = 0;
    for (; n < path.length; n++) {
      const c = path.charCodeAt(n);
      if (c > 0x7f) break;
      b[at + 5 + n] = c;
    }
    if (n < path.length) {
      n = utf8.encodeInto(path, b.subarray(at + 5)).written;
    }
    v.setUint32(at + 1, n, true);
    at += 5 + n;
    v.setFloat64(at, size, true);
    v.setUint32(at + 8, crc >>> 0, true);
    this.#at = at + 12;
  }

  /** Appends the end op and writes the last frame. */
  end(size: number, sha256: Uint8Array): void {
    if (FRAME_RAW - this.#at < 41) this.flush();
    this.#buf[this.#at] = Op.End;
    this.#view.setFloat64(this.#at + 1, size, true);
    this.#buf.set(sha256, this.#at + 9);
    this.#at += 41;
    this.flush();
  }

  /** Compresses and writes the pending ops as one frame. */
  flush(): void {
    if (this.#at === 0) return;
    const raw = this.#buf.subarray(0, this.#at);
    // Level 1: ~1.5x the record size of level 6 (2.2 vs 1.5 MB for a
    // 50k-file layer) at a third less recording time.
    const z = this.#stored()
      ? storedGzip(raw)
      : nodeZlib().gzipSync(raw, { level: 1 });
    const head = new Uint8Array(8);
    const hv = new DataView(head.buffer);
    hv.setUint32(0, z.length, true);
    hv.setUint32(4, this.#at, true);
    writeAllSync(this.#file, head);
    writeAllSync(this.#file, z);
    this.#at = 0;
  }
}

/** Largest stored deflate block. */
const STORED_MAX = 0xffff;

/**
 * `raw` as one gzip member of stored deflate blocks (RFC 1952, RFC 1951
 * section 3.2.4): a 10-byte header, per block its final bit, LEN and NLEN,
 * then the bytes; the CRC-32 and length of `raw` at the end.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { gunzipSync } from "node:zlib";
 * import { storedGzip } from "./_format.ts";
 * const raw = new Uint8Array(70000).map((_, i) => i % 251);
 * assert.deepEqual(new Uint8Array(gunzipSync(storedGzip(raw))), raw);
 * assert.deepEqual(new Uint8Array(gunzipSync(storedGzip(new Uint8Array(0)))), new Uint8Array(0));
 * ```
 */
export function storedGzip(raw: Uint8Array): Uint8Array {
  const blocks = Math.max(1, Math.ceil(raw.length / STORED_MAX));
  const z = new Uint8Array(10 + 5 * blocks + raw.length + 8);
  const v = new DataView(z.buffer);
  z.set([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]); // no flags, no mtime, Unix
  let at = 10;
  for (let b = 0; b < blocks; b++) {
    const part = raw.subarray(b * STORED_MAX, (b + 1) * STORED_MAX);
    z[at] = b === blocks - 1 ? 1 : 0;
    v.setUint16(at + 1, part.length, true);
    v.setUint16(at + 3, ~part.length & 0xffff, true);
    z.set(part, at + 5);
    at += 5 + part.length;
  }
  v.setUint32(at, crc32(raw, 0), true);
  v.setUint32(at + 4, raw.length, true);
  return z;
}

/**
 * One gzip member's content: read here when every block is stored (what
 * {@link storedGzip} writes), else by `node:zlib`. Throws when the member
 * is malformed, its CRC-32 or length differs, or bytes follow it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { gzipSync } from "node:zlib";
 * import { gunzipFrame, storedGzip } from "./_format.ts";
 * const raw = new TextEncoder().encode("segment bytes ".repeat(5000));
 * assert.deepEqual(gunzipFrame(storedGzip(raw)), raw);
 * assert.deepEqual(gunzipFrame(new Uint8Array(gzipSync(raw))), raw);
 * const bad = storedGzip(raw);
 * bad[20] ^= 1;
 * assert.throws(() => gunzipFrame(bad), /CRC-32/);
 * ```
 */
export function gunzipFrame(z: Uint8Array): Uint8Array {
  const plain = () => new Uint8Array(nodeZlib().gunzipSync(z));
  // Only the header storedGzip writes is parsed here (no optional fields).
  if (z.length < 18 || z[0] !== 0x1f || z[1] !== 0x8b || z[2] !== 8) {
    return plain();
  }
  if (z[3] !== 0) return plain();
  const v = new DataView(z.buffer, z.byteOffset, z.length);
  const parts: Uint8Array[] = [];
  let size = 0;
  let at = 10;
  for (;;) {
    if (at + 5 > z.length) throw new Error("truncated deflate block");
    const head = z[at];
    if ((head & 6) !== 0) return plain(); // a compressed block
    const len = v.getUint16(at + 1, true);
    if ((v.getUint16(at + 3, true) ^ 0xffff) !== len) {
      throw new Error("stored block length and its complement differ");
    }
    if (at + 5 + len > z.length) throw new Error("truncated stored block");
    parts.push(z.subarray(at + 5, at + 5 + len));
    size += len;
    at += 5 + len;
    if (head & 1) break;
  }
  if (at + 8 !== z.length) {
    throw new Error(
      at + 8 > z.length ? "truncated gzip trailer" : "bytes after the member",
    );
  }
  const raw = new Uint8Array(size);
  let o = 0;
  for (const p of parts) {
    raw.set(p, o);
    o += p.length;
  }
  if (crc32(raw, 0) !== v.getUint32(at, true)) {
    throw new Error("CRC-32 of the content differs from the trailer's");
  }
  if ((size >>> 0) !== v.getUint32(at + 4, true)) {
    throw new Error("length of the content differs from the trailer's");
  }
  return raw;
}

function writeAllSync(f: Deno.FsFile, b: Uint8Array): void {
  for (let off = 0; off < b.length;) off += f.writeSync(b.subarray(off));
}

/** Why a record cannot be read. */
export class CorruptRecord extends Error {
  /** @param why What is wrong. */
  constructor(why: string) {
    super(`the tar-split record is corrupt (${why})`);
    this.name = "CorruptRecord";
  }
}

/** Reads the ops of a record file, one frame in memory at a time. */
export async function* decodeRecord(
  file: Deno.FsFile,
): AsyncGenerator<RecordOp> {
  const magic = await readExactly(file, MAGIC.length);
  if (!magic || !magic.every((c, i) => c === MAGIC[i])) {
    throw new CorruptRecord("bad magic");
  }
  let ended = false;
  for (;;) {
    const head = await readExactly(file, 8);
    if (head === null) break;
    const hv = new DataView(head.buffer, head.byteOffset, 8);
    const zlen = hv.getUint32(0, true);
    const rlen = hv.getUint32(4, true);
    if (zlen > 2 * FRAME_RAW || rlen > FRAME_RAW) {
      throw new CorruptRecord("frame too large");
    }
    const z = await readExactly(file, zlen);
    if (z === null) throw new CorruptRecord("truncated frame");
    let raw: Uint8Array;
    try {
      raw = gunzipFrame(z);
    } catch (e) {
      throw new CorruptRecord(`frame does not decompress: ${e}`);
    }
    if (raw.length !== rlen) throw new CorruptRecord("frame length");
    const v = new DataView(raw.buffer, raw.byteOffset, raw.length);
    for (let at = 0; at < raw.length;) {
      if (ended) throw new CorruptRecord("ops after the end");
      const tag = raw[at];
      if (tag === Op.Segment) {
        const n = v.getUint32(at + 1, true);
        if (at + 5 + n > raw.length) throw new CorruptRecord("segment");
        yield { op: "segment", bytes: raw.subarray(at + 5, at + 5 + n) };
        at += 5 + n;
      } else if (tag === Op.File) {
        const n = v.getUint32(at + 1, true);
        if (at + 17 + n > raw.length) throw new CorruptRecord("file op");
        const path = decodeUtf8Exact(raw.subarray(at + 5, at + 5 + n));
        if (path === null) throw new CorruptRecord("file path");
        const size = v.getFloat64(at + 5 + n, true);
        const crc = v.getUint32(at + 13 + n, true);
        if (!Number.isSafeInteger(size) || size < 0) {
          throw new CorruptRecord("file size");
        }
        yield { op: "file", path, size, crc };
        at += 17 + n;
      } else if (tag === Op.End) {
        if (at + 41 > raw.length) throw new CorruptRecord("end op");
        const size = v.getFloat64(at + 1, true);
        yield { op: "end", size, sha256: raw.slice(at + 9, at + 41) };
        ended = true;
        at += 41;
      } else throw new CorruptRecord(`unknown op ${tag}`);
    }
  }
  if (!ended) throw new CorruptRecord("no end op");
}

/** Exactly `n` bytes, `null` at a clean end; throws on a short read mid-way. */
async function readExactly(
  file: Deno.FsFile,
  n: number,
): Promise<Uint8Array | null> {
  const b = new Uint8Array(n);
  let have = 0;
  while (have < n) {
    const r = await file.read(b.subarray(have));
    if (r === null) {
      if (have === 0) return null;
      throw new CorruptRecord("truncated");
    }
    have += r;
  }
  return b;
}
