/**
 * The tar reader: ustar, PAX (values as bytes), GNU long names and links,
 * base-256 numbers. {@link TarReader} is the fast pull API the extractor uses;
 * {@link readTar} wraps it as an async iterable of entries with streaming bodies.
 *
 * Like Go's archive/tar, errors are sticky (after a failure every later call
 * throws the same error) and the end of the archive ends iteration.
 *
 * ## Checked inputs
 * Every header is checked as it is read, and a hostile or broken archive is
 * refused with an {@link InvalidArchive} naming the entry, never reinterpreted:
 * - names (ustar name + prefix, GNU `L`, PAX `path`) and hard-link targets
 *   (GNU `K`, PAX `linkpath`) whose `..` climbs above the layer root; a
 *   leading `/` is dropped lexically instead, as GNU tar does by default;
 * - entries named `.`, `./` or `/` (the root) unless they are directories,
 *   hard links without a target or to themselves;
 * - mode bits beyond 07777 other than file-type bits matching the type flag
 *   (old Go writers set those);
 * - uids and gids above 2^32 - 2 (octal, base-256 or PAX; 2^32 - 1 is "no
 *   owner" to chown), device numbers above 2^32 - 1;
 * - an input that ends before the end-of-archive blocks (GNU tar accepts one
 *   zero block with a warning, so do we; after the end, nothing is read);
 * - malformed numbers, checksums and PAX records, non-UTF-8 names, sparse
 *   files, unknown types, and anything over the {@link TarReaderOptions} caps.
 *
 * @module
 */

import { InvalidArchive } from "../../errors.ts";
import {
  BLOCK,
  checksumOk,
  decodeUtf8Exact,
  emptyAt,
  type Field,
  Hdr,
  isZeroBlock,
  Magic,
  magicOf,
  numberAt,
  stringAt,
  typeflagAt,
} from "./_block.ts";
import {
  parsePaxRecords,
  paxInteger,
  paxTime,
  type PaxTimeOut,
  scanPaxRecords,
} from "./_pax.ts";
import { type ChunkSource, chunkSource, type TarInput } from "./_source.ts";
import {
  type EntryType,
  entryTypeOf,
  MAX_DEV,
  MAX_ID,
  type TarHeader,
  TypeFlag,
} from "./header.ts";
import { layerPath } from "./_path.ts";

/** The one time {@link paxTime} parses into (the reader runs synchronously here). */
const PAX_TIME: PaxTimeOut = { sec: 0, nsec: 0 };

export type { TarInput } from "./_source.ts";

/** Limits the reader enforces; each breach is an {@link InvalidArchive} error. */
export interface TarReaderOptions {
  /**
   * Largest PAX extended header body (`x` or `g`) accepted, in bytes; also caps
   * the PAX records that pile up before one entry.
   * @default {1048576}
   */
  maxPaxSize?: number;
  /**
   * Longest entry name or link target, in UTF-8 bytes (Linux PATH_MAX).
   * @default {4096}
   */
  maxNameLength?: number;
  /**
   * Longest single path component, in UTF-8 bytes (Linux NAME_MAX).
   * @default {255}
   */
  maxComponentLength?: number;
  /**
   * Most path components in one entry name.
   * @default {1024}
   */
  maxDepth?: number;
  /**
   * Most entries in one archive.
   * @default {10000000}
   */
  maxEntries?: number;
  /**
   * Keep the PAX records the reader does not interpret (`ctime`, `comment`,
   * vendor keys) in {@link TarHeader.pax}, so that the entry can be written
   * back with them. A caller that does not (an extractor) saves a map and a
   * copy per entry: GNU tar's pax format gives every file a `ctime`.
   * @default {true}
   */
  keepOtherPax?: boolean;
}

/** Defaults of {@link TarReaderOptions}. */
const DEFAULTS: Required<TarReaderOptions> = {
  maxPaxSize: 1 << 20,
  maxNameLength: 4096,
  maxComponentLength: 255,
  maxDepth: 1024,
  maxEntries: 10_000_000,
  keepOtherPax: true,
};

/** File-type bits of a mode (S_IFMT) and the types each entry kind may carry. */
const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;
const S_IFIFO = 0o010000;
/** Type bits some writers (Go before 1.10's FileInfoHeader) put into the mode field. */
const TYPE_BITS: Readonly<Record<EntryType, readonly number[]>> = {
  // 0o110000 is tar's own "contiguous" (C_ISCTG).
  file: [S_IFREG, 0o110000],
  dir: [0o040000],
  symlink: [S_IFLNK],
  char: [S_IFCHR],
  block: [S_IFBLK],
  fifo: [S_IFIFO],
  // A hard link carries the mode of what it links to.
  hardlink: [S_IFREG, S_IFLNK, S_IFCHR, S_IFBLK, S_IFIFO],
};
const IFMT_NAME: Record<number, string> = {
  [S_IFREG]: "regular file",
  0o110000: "contiguous file",
  0o040000: "directory",
  [S_IFLNK]: "symlink",
  [S_IFCHR]: "character device",
  [S_IFBLK]: "block device",
  [S_IFIFO]: "FIFO",
  0o140000: "socket",
};

const RESOLVED = Promise.resolve();
const NON_ASCII = /[\u0080-\uffff]/;
/** Skips at least this long use the source's seek instead of reading through. */
const SEEK_SKIP = 256 * 1024;
const EMPTY = new Uint8Array(0);

/**
 * What the metadata entries before a header (PAX `x`, GNU `L` and `K`) carry
 * for it, gathered by {@link TarReader}'s fast and slow paths alike.
 */
interface Pending {
  /** PAX records of the next entry (later records win). */
  local: Map<string, Uint8Array> | undefined;
  /** A PAX header came (it may have held no record the reader keeps). */
  pax: boolean;
  /** Bytes of PAX bodies so far (capped by maxPaxSize). */
  localSize: number;
  /** {@link takeLocalRecord} copies values (else views used before the buffer moves on). */
  copy: boolean;
  /** Records the reader does not use are kept (`keepOtherPax`). */
  keepOther: boolean;
  /** GNU long name ('L'). */
  longName: string | undefined;
  /** GNU long link name ('K'). */
  longLink: string | undefined;
}

function pending(keepOther: boolean): Pending {
  return {
    local: undefined,
    pax: false,
    localSize: 0,
    copy: false,
    keepOther,
    longName: undefined,
    longLink: undefined,
  };
}

/** One record of a PAX `x` header into `p.local` (a module-level function: no closure per header). */
function takeLocalRecord(p: Pending, key: string, v: Uint8Array): void {
  // GNU tar writes a ctime for every entry, which only `keepOtherPax` keeps
  // (#applyRecord ignores it): no map entry and no copy for it.
  if (key === "ctime" && !p.keepOther) return;
  (p.local ??= new Map()).set(key, p.copy ? v.slice() : v);
}

/** True for the flags of metadata entries that describe the next entry. */
function isLocalMeta(flag: number): boolean {
  return flag === TypeFlag.XHeader || flag === TypeFlag.GNULongName ||
    flag === TypeFlag.GNULongLink;
}

/** Bytes of a body of `size` bytes with its padding to a whole block. */
function padded(size: number): number {
  return size + ((BLOCK - (size % BLOCK)) % BLOCK);
}

/** Why a numeric field's value is refused. */
function outOfRange(field: string, v: number | bigint): string {
  const why = field === "size"
    ? ` (over ${Number.MAX_SAFE_INTEGER} bytes)`
    : field === "uid" || field === "gid"
    ? ` (ids are 32-bit, and ${
      MAX_ID + 1
    } means "no owner" to the kernel: the largest usable is ${MAX_ID})`
    : field === "devmajor" || field === "devminor"
    ? ` (device numbers are 32-bit)`
    : "";
  return `${field} ${v} is out of range${why}`;
}

function flagName(flag: number): string {
  return flag >= 0x20 && flag < 0x7f
    ? `'${String.fromCharCode(flag)}'`
    : `0x${flag.toString(16).padStart(2, "0")}`;
}

/**
 * A fast, pull-based tar reader.
 *
 * Call {@link TarReader.next} for each header; read the body with
 * {@link TarReader.readBody} (chunks are views into the reader's buffer, valid
 * only during the callback) or let the next `next()` skip it. Reads the source
 * in ~1 MiB chunks. After an error every call throws that same error.
 *
 * @example Listing an archive
 * ```ts
 * import assert from "node:assert/strict";
 * import { TarReader } from "./reader.ts";
 * import { TarWriter } from "./writer.ts";
 *
 * const w = new TarWriter();
 * const out = new Response(w.readable).bytes();
 * await w.add({
 *   name: "hello.txt", type: "file", size: 5, mode: 0o644, uid: 0, gid: 0,
 *   uname: "", gname: "", mtime: 0, mtimeNsec: 0, linkname: "",
 *   devmajor: 0, devminor: 0, xattrs: new Map(),
 * }, new TextEncoder().encode("hello"));
 * await w.close();
 *
 * const r = new TarReader(await out);
 * const seen: [string, number][] = [];
 * for (let h; (h = await r.next()) !== null;) {
 *   let n = 0;
 *   await r.readBody((chunk) => n += chunk.length);
 *   seen.push([h.name, n]);
 * }
 * assert.deepEqual(seen, [["hello.txt", 5]]);
 * ```
 */
export class TarReader {
  #src: ChunkSource;
  #opts: Required<TarReaderOptions>;
  #buf: Uint8Array = EMPTY;
  #pos = 0;
  /** Rest of a chunk split by a header that straddled two chunks. */
  #next: Uint8Array | null = null;
  #block = new Uint8Array(BLOCK);
  #consumed = 0;
  /** Body bytes of the current entry not yet read, then its padding. */
  #remaining = 0;
  #padding = 0;
  #entry: string | undefined;
  #entries = 0;
  #global = new Map<string, Uint8Array>();
  #err: unknown = undefined;
  #done = false;
  #busy = false;

  /**
   * Opens a reader on `source`; nothing is read until the first call.
   *
   * @param source The archive: a stream, bytes, an async iterable of chunks or an open file
   *   (read from its current position; not closed by the reader).
   * @param options Caps; see {@link TarReaderOptions}.
   */
  constructor(source: TarInput, options: TarReaderOptions = {}) {
    this.#src = chunkSource(source);
    this.#opts = { ...DEFAULTS, ...options };
  }

  /** Archive bytes consumed so far (headers, bodies and padding). */
  get bytesRead(): number {
    return this.#consumed;
  }

  /**
   * Reads the next entry's header, skipping whatever is left of the previous
   * body. Resolves to `null` at the end of the archive: two zero blocks (or
   * one zero block and the end of input, which some writers leave); what
   * follows them is not read. An input that ends anywhere else, including
   * right after an entry, is truncated.
   *
   * @throws {InvalidArchive} A malformed, truncated, refused or over-cap entry:
   *   see the module doc for what is refused.
   */
  next(): Promise<TarHeader | null> {
    try {
      this.#enter();
    } catch (e) {
      return Promise.reject(e);
    }
    if (!this.#done) {
      // Fast path: the rest of the previous body and the whole next header
      // (with its PAX records) are already buffered: no await at all.
      try {
        const h = this.#nextBuffered();
        if (h !== undefined) {
          this.#busy = false;
          return Promise.resolve(h);
        }
      } catch (e) {
        this.#busy = false;
        return Promise.reject(this.#fail(e));
      }
    }
    return this.#guard(() => this.#nextSlow());
  }

  /**
   * {@link TarReader.next} without a promise when it can: the next header
   * when it is already buffered (or `null` at the end), `undefined` when
   * reading it needs I/O; then call `next()`. The extractor's loop uses
   * this so most entries cost no await.
   *
   * @throws {InvalidArchive} As `next()` rejects.
   */
  tryNext(): TarHeader | null | undefined {
    this.#enter();
    try {
      if (this.#done) return null;
      return this.#nextBuffered();
    } catch (e) {
      throw this.#fail(e);
    } finally {
      this.#busy = false;
    }
  }

  /**
   * {@link TarReader.readBody} without a promise when it can: delivers the
   * body and returns true when all of it is buffered; returns false (having
   * done nothing) when reading it needs I/O; then call `readBody()`.
   */
  readBodyNow(onChunk: (chunk: Uint8Array) => void): boolean {
    this.#enter();
    try {
      const rem = this.#remaining;
      if (rem > this.#buf.length - this.#pos) return false;
      if (rem > 0) {
        const p = this.#pos;
        this.#pos = p + rem;
        this.#consumed += rem;
        this.#remaining = 0;
        onChunk(this.#buf.subarray(p, p + rem));
      }
      return true;
    } finally {
      this.#busy = false;
    }
  }

  async #nextSlow(): Promise<TarHeader | null> {
    if (this.#done) return null;
    const skip = this.#remaining + this.#padding;
    if (skip > 0) {
      this.#remaining = 0;
      this.#padding = 0;
      await this.#skip(skip);
    }
    const h = await this.#readHeader();
    if (h === null) {
      this.#done = true;
      this.#src.close();
    }
    return h;
  }

  /**
   * The next header when everything it needs is in the buffer, else
   * `undefined` with no state changed (the async path then does the work,
   * including every error case and global headers).
   */
  #nextBuffered(): TarHeader | undefined {
    const b = this.#buf;
    let pos = this.#pos + this.#remaining + this.#padding;
    let p: Pending | undefined;
    for (;;) {
      // Zero blocks, bad checksums and global headers take the slow path.
      if (b.length - pos < BLOCK || !checksumOk(b, pos)) return undefined;
      const flag = typeflagAt(b, pos);
      if (isLocalMeta(flag)) {
        // The same checks as the slow path, in the same order: an error here
        // is the one the slow path would throw (state is not moved before).
        const size = this.#metaSize(
          b,
          pos,
          flag,
          p ??= pending(this.#opts.keepOtherPax),
        );
        const end = pos + BLOCK + padded(size);
        if (end > b.length) return undefined;
        // Views: #build uses them (copying what it keeps) before any read.
        this.#takeMeta(
          flag,
          b.subarray(pos + BLOCK, pos + BLOCK + size),
          p,
          false,
        );
        pos = end;
        continue;
      }
      if (flag === TypeFlag.XGlobalHeader) return undefined;
      // Commit: from here on errors are real and state moves forward.
      this.#consumed += pos + BLOCK - this.#pos;
      this.#pos = pos + BLOCK;
      this.#remaining = 0;
      this.#padding = 0;
      return this.#build(b, pos, flag, p);
    }
  }

  /**
   * Delivers the rest of the current entry's body to `onChunk`, as views that
   * are valid only during the call (copy what you keep). A body that is already
   * buffered is delivered synchronously, before this returns.
   *
   * @throws {InvalidArchive} The archive ends inside the body.
   */
  readBody(onChunk: (chunk: Uint8Array) => void): Promise<void> {
    try {
      this.#enter();
    } catch (e) {
      return Promise.reject(e);
    }
    const avail = this.#buf.length - this.#pos;
    const rem = this.#remaining;
    if (rem <= avail) {
      // Fast path: the whole (small) body is in the buffer.
      try {
        if (rem > 0) {
          const p = this.#pos;
          this.#pos = p + rem;
          this.#consumed += rem;
          this.#remaining = 0;
          onChunk(this.#buf.subarray(p, p + rem));
        }
        return RESOLVED;
      } catch (e) {
        return Promise.reject(e);
      } finally {
        this.#busy = false;
      }
    }
    return this.#readBodySlow(onChunk);
  }

  async #readBodySlow(onChunk: (chunk: Uint8Array) => void): Promise<void> {
    try {
      while (this.#remaining > 0) {
        const c = await this.#bodyChunk();
        onChunk(c);
      }
    } catch (e) {
      // An error thrown by onChunk is the caller's; only archive errors poison the reader.
      if (e instanceof InvalidArchive || this.#err !== undefined) {
        throw this.#fail(e);
      }
      throw e;
    } finally {
      this.#busy = false;
    }
  }

  /**
   * Returns the next piece of the current body (a view valid until the next
   * call on this reader), or `null` when the body is finished.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { TarReader } from "./reader.ts";
   * const r = new TarReader(new Uint8Array(1024)); // just the end-of-archive blocks
   * assert.equal(await r.next(), null);
   * assert.equal(await r.readBodyChunk(), null);
   * ```
   */
  readBodyChunk(): Promise<Uint8Array | null> {
    return this.#call(() =>
      this.#remaining === 0 ? Promise.resolve(null) : this.#bodyChunk()
    );
  }

  /** Skips the rest of the current body (next() would do it too). */
  skipBody(): Promise<void> {
    return this.#call(async () => {
      const n = this.#remaining;
      this.#remaining = 0;
      if (n > 0) await this.#skip(n);
    });
  }

  /**
   * Stops reading: a stream source is cancelled, and every later call throws.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { InvalidArchive } from "../../errors.ts";
   * import { TarReader } from "./reader.ts";
   * const r = new TarReader(new Uint8Array(1024));
   * r.cancel();
   * await assert.rejects(r.next(), InvalidArchive); // sticky: every later call fails
   * ```
   */
  cancel(reason?: unknown): void {
    if (this.#err !== undefined) return;
    this.#err = new InvalidArchive("the reader was cancelled", this.#entry, {
      cause: reason,
    });
    this.#src.close(reason ?? this.#err);
  }

  /** One public call: exclusive, and its error fails the reader for good. */
  async #call<T>(op: () => Promise<T>): Promise<T> {
    this.#enter();
    return await this.#guard(op);
  }

  /** Runs the rest of a call #enter began; an error is made sticky. */
  async #guard<T>(op: () => Promise<T>): Promise<T> {
    try {
      return await op();
    } catch (e) {
      throw this.#fail(e);
    } finally {
      this.#busy = false;
    }
  }

  #enter(): void {
    if (this.#err !== undefined) throw this.#err;
    if (this.#busy) {
      throw new TypeError(
        "TarReader: a call is already in progress; await it before the next one",
      );
    }
    this.#busy = true;
  }

  #fail(e: unknown): unknown {
    if (this.#err === undefined) {
      this.#err = e;
      this.#src.close(e);
    }
    return this.#err;
  }

  #truncated(where: string): InvalidArchive {
    return new InvalidArchive(
      `truncated: the input ends ${where}; the archive is incomplete`,
      this.#entry,
    );
  }

  async #pull(): Promise<Uint8Array | null> {
    const n = this.#next;
    if (n !== null) {
      this.#next = null;
      return n;
    }
    return await this.#src.read();
  }

  /**
   * Makes `n` contiguous bytes available at `#buf[#pos]`, copying only when
   * they straddle chunks. Returns the number available (< n only at the end).
   */
  async #ensure(n: number, carry?: Uint8Array): Promise<number> {
    const avail = this.#buf.length - this.#pos;
    if (avail >= n) return n;
    const dst = carry ?? new Uint8Array(n);
    if (avail > 0) dst.set(this.#buf.subarray(this.#pos), 0);
    let have = avail;
    // The leftover is now in dst: chunks we pull may reuse the old buffer.
    this.#buf = EMPTY;
    this.#pos = 0;
    while (have < n) {
      const c = await this.#pull();
      if (c === null) break;
      const take = Math.min(n - have, c.length);
      if (have === 0 && c.length >= n) {
        // The new chunk alone suffices: no copy.
        this.#buf = c;
        this.#pos = 0;
        return n;
      }
      dst.set(c.subarray(0, take), have);
      have += take;
      if (take < c.length) this.#next = c.subarray(take);
    }
    this.#buf = dst.subarray(0, have);
    this.#pos = 0;
    return have;
  }

  async #bodyChunk(): Promise<Uint8Array> {
    if (this.#pos >= this.#buf.length) {
      const c = await this.#pull();
      if (c === null) throw this.#truncated("inside the body");
      this.#buf = c;
      this.#pos = 0;
    }
    const p = this.#pos;
    const n = Math.min(this.#buf.length - p, this.#remaining);
    this.#pos = p + n;
    this.#consumed += n;
    this.#remaining -= n;
    return this.#buf.subarray(p, p + n);
  }

  async #skip(n: number): Promise<void> {
    // Big bodies of a seekable file are skipped with lseek (listing a 2 GB
    // layer then costs its headers only, as with GNU tar -t).
    const avail = this.#buf.length - this.#pos;
    if (
      n - avail >= SEEK_SKIP && this.#src.skip !== undefined &&
      this.#next === null
    ) {
      this.#pos = this.#buf.length;
      this.#consumed += avail;
      n -= avail;
      if (!(await this.#src.skip(n))) {
        throw this.#truncated("inside the body or its padding");
      }
      this.#consumed += n;
      return;
    }
    while (n > 0) {
      if (this.#pos >= this.#buf.length) {
        const c = await this.#pull();
        if (c === null) throw this.#truncated("inside the body or its padding");
        this.#buf = c;
        this.#pos = 0;
      }
      const k = Math.min(this.#buf.length - this.#pos, n);
      this.#pos += k;
      this.#consumed += k;
      n -= k;
    }
  }

  /** Reads a metadata body (PAX or GNU long name) of `size` bytes plus padding; returns a view. */
  async #readMeta(size: number, what: string): Promise<Uint8Array> {
    const n = padded(size);
    const got = await this.#ensure(n);
    if (got < n) throw this.#truncated(`inside a ${what}`);
    const p = this.#pos;
    this.#pos = p + n;
    this.#consumed += n;
    return this.#buf.subarray(p, p + size);
  }

  /**
   * The body size of the metadata header at `b[off]`, checked against its cap
   * (maxPaxSize for PAX, counting what `p` holds; maxNameLength for GNU names).
   */
  #metaSize(b: Uint8Array, off: number, flag: number, p: Pending): number {
    const o = this.#opts;
    const size = this.#numField(b, off, Hdr.size, "size");
    if (flag === TypeFlag.XHeader || flag === TypeFlag.XGlobalHeader) {
      if (size > o.maxPaxSize || p.localSize + size > o.maxPaxSize) {
        throw new InvalidArchive(
          `PAX header of ${size} bytes exceeds the ${o.maxPaxSize}-byte cap (maxPaxSize)`,
          this.#entry,
        );
      }
    } else if (size > o.maxNameLength + 1) { // +1: GNU tar counts the terminating NUL
      throw new InvalidArchive(
        `GNU long ${
          flag === TypeFlag.GNULongName ? "name" : "link"
        } of ${size} bytes exceeds the ${o.maxNameLength}-byte cap (maxNameLength)`,
        this.#entry,
      );
    }
    return size;
  }

  /**
   * Takes in one metadata body for the next entry: PAX `x` records (values
   * copied, or views when `copy` is false and they are used before the buffer
   * moves on) or a GNU long name/link.
   */
  #takeMeta(
    flag: number,
    body: Uint8Array,
    p: Pending,
    copy: boolean,
  ): void {
    if (flag === TypeFlag.XHeader) {
      p.localSize += body.length;
      p.pax = true;
      p.copy = copy;
      const err = scanPaxRecords(body, takeLocalRecord, p);
      if (err !== null) {
        throw new InvalidArchive(`${err} (PAX header)`, this.#entry);
      }
      return;
    }
    let end = body.length;
    while (end > 0 && body[end - 1] === 0) end--;
    const raw = body.subarray(0, end);
    if (raw.includes(0)) {
      throw new InvalidArchive(
        "GNU long name contains a NUL byte",
        this.#entry,
      );
    }
    const s = decodeUtf8Exact(raw);
    if (s === null) {
      throw new InvalidArchive("GNU long name is not valid UTF-8", this.#entry);
    }
    if (flag === TypeFlag.GNULongName) p.longName = s;
    else p.longLink = s;
  }

  async #readHeader(): Promise<TarHeader | null> {
    const p = pending(this.#opts.keepOtherPax);
    for (;;) {
      const got = await this.#ensure(BLOCK, this.#block);
      if (got === 0) {
        // An end of input where a header should be: the end-of-archive
        // blocks are missing (GNU tar accepts this silently; we do not, or a
        // cut-off layer would pass as a complete one).
        throw this.#truncated(
          this.#consumed === 0
            ? "before the first header (the input is empty)"
            : p.pax || p.longName !== undefined ||
                p.longLink !== undefined
            ? "after a PAX or GNU long-name header, before its entry"
            : "before the end-of-archive blocks (two zero blocks)",
        );
      }
      if (got < BLOCK) {
        // Shorter than one header and nothing before it: a cut tar, or
        // something that is no tar at all (a text file, an error page).
        if (this.#consumed === 0) {
          throw new InvalidArchive(
            `truncated: the input ends inside the first header: it is ${got} byte${
              got === 1 ? "" : "s"
            }, shorter than one 512-byte tar header (cut short, or not a tar at all); pass a whole tar`,
          );
        }
        throw this.#truncated(
          this.#entry === undefined
            ? "inside the first header"
            : "inside the header after this entry",
        );
      }
      const b = this.#buf;
      const off = this.#pos;
      if (!checksumOk(b, off)) {
        if (isZeroBlock(b, off)) {
          this.#pos += BLOCK;
          this.#consumed += BLOCK;
          // End of archive: a second zero block, or the input just ends.
          const g2 = await this.#ensure(BLOCK, this.#block);
          if (g2 === 0) return null;
          if (g2 === BLOCK && isZeroBlock(this.#buf, this.#pos)) {
            this.#pos += BLOCK;
            this.#consumed += BLOCK;
            return null;
          }
          if (g2 < BLOCK) return null; // zero block then a stub: nothing more to read
          throw new InvalidArchive(
            "a zero block is followed by data; the archive is corrupt",
            this.#entry,
          );
        }
        const name = stringAt(b, off, Hdr.name) ?? undefined;
        throw new InvalidArchive(
          `header checksum mismatch at byte ${this.#consumed}${
            name ? ` (name field ${JSON.stringify(name)})` : ""
          }; the archive is corrupt or not a tar`,
          this.#entry,
        );
      }
      const flag = typeflagAt(b, off);
      if (isLocalMeta(flag) || flag === TypeFlag.XGlobalHeader) {
        // Checked before the block is consumed, as the fast path does.
        const size = this.#metaSize(b, off, flag, p);
        this.#pos += BLOCK;
        this.#consumed += BLOCK;
        const body = await this.#readMeta(
          size,
          flag === TypeFlag.GNULongName || flag === TypeFlag.GNULongLink
            ? "GNU long name"
            : "PAX header",
        );
        // Copies: the buffer moves on before the entry header is read.
        if (flag !== TypeFlag.XGlobalHeader) {
          this.#takeMeta(flag, body, p, true);
        } else this.#takeGlobal(body);
        continue;
      }
      this.#pos += BLOCK;
      this.#consumed += BLOCK;
      return this.#build(b, off, flag, p);
    }
  }

  /** Merges a PAX global header into the defaults of every later entry. */
  #takeGlobal(body: Uint8Array): void {
    const o = this.#opts;
    const recs = new Map<string, Uint8Array>();
    const err = parsePaxRecords(body, recs);
    if (err !== null) {
      throw new InvalidArchive(`${err} (PAX header)`, this.#entry);
    }
    for (const [k, v] of recs) {
      // POSIX: an empty global value removes the default.
      if (v.length === 0) this.#global.delete(k);
      else this.#global.set(k, v);
    }
    let total = 0;
    for (const [k, v] of this.#global) total += k.length + v.length;
    if (total > o.maxPaxSize) {
      throw new InvalidArchive(
        `PAX global headers exceed the ${o.maxPaxSize}-byte cap (maxPaxSize)`,
        this.#entry,
      );
    }
  }

  /** Builds the header of the block at `b[off]` (already consumed) with its PAX and long-name records. */
  #build(
    b: Uint8Array,
    off: number,
    flag: number,
    p: Pending | undefined,
  ): TarHeader {
    const o = this.#opts;
    const magic = magicOf(b, off);
    let name = p?.longName;
    if (name === undefined) {
      const n = stringAt(b, off, Hdr.name);
      if (n === null) throw this.#notUtf8("name");
      name = n;
      if (magic === Magic.Ustar && !emptyAt(b, off, Hdr.prefix)) {
        const prefix = stringAt(b, off, Hdr.prefix);
        if (prefix === null) throw this.#notUtf8("name prefix");
        name = prefix + "/" + name;
      }
    }
    let type = entryTypeOf(flag);
    if (type === undefined) {
      this.#entry = name;
      throw new InvalidArchive(
        flag === TypeFlag.GNUSparse
          ? "GNU sparse files (type 'S') are not supported; re-create the archive without --sparse"
          : `unsupported entry type ${flagName(flag)}`,
        name,
      );
    }
    if (flag === TypeFlag.RegA && name.endsWith("/")) type = "dir"; // V7 directories
    let linkname = p?.longLink;
    if (linkname === undefined) {
      const l = stringAt(b, off, Hdr.linkname);
      if (l === null) throw this.#notUtf8("link name");
      linkname = l;
    }
    const h: TarHeader = {
      name,
      type,
      size: this.#numField(b, off, Hdr.size, "size"),
      mode: this.#numField(b, off, Hdr.mode, "mode"),
      uid: this.#numField(b, off, Hdr.uid, "uid", false, MAX_ID),
      gid: this.#numField(b, off, Hdr.gid, "gid", false, MAX_ID),
      uname: magic === Magic.V7 ? "" : stringAt(b, off, Hdr.uname) ?? "",
      gname: magic === Magic.V7 ? "" : stringAt(b, off, Hdr.gname) ?? "",
      mtime: this.#numField(b, off, Hdr.mtime, "mtime", true),
      mtimeNsec: 0,
      linkname,
      devmajor: 0,
      devminor: 0,
      xattrs: new Map(),
    };
    if (type === "char" || type === "block") {
      h.devmajor = this.#numField(
        b,
        off,
        Hdr.devmajor,
        "devmajor",
        false,
        MAX_DEV,
      );
      h.devminor = this.#numField(
        b,
        off,
        Hdr.devminor,
        "devminor",
        false,
        MAX_DEV,
      );
    }
    if (this.#global.size > 0) this.#applyPax(h, this.#global, true);
    if (p?.local !== undefined) this.#applyPax(h, p.local, false);
    // Header-only types carry no body whatever the size field says.
    if (type !== "file") h.size = 0;
    this.#checkName(h);
    this.#checkPaths(h);
    // Beyond the permission bits only file-type bits that match the entry.
    if (h.mode > 0o7777) this.#checkMode(h);
    h.mode &= 0o7777;
    if (++this.#entries > o.maxEntries) {
      throw new InvalidArchive(
        `more than ${o.maxEntries} entries (maxEntries)`,
        h.name,
      );
    }
    this.#entry = h.name;
    this.#remaining = h.size;
    this.#padding = padded(h.size) - h.size;
    return h;
  }

  #notUtf8(field: string): InvalidArchive {
    return new InvalidArchive(
      `the ${field} is not valid UTF-8; layerfs keeps names as strings and refuses bytes it cannot represent exactly`,
      this.#entry,
    );
  }

  /** A numeric field of the header at `b[off]`; refuses malformed and out-of-range values. */
  #numField(
    b: Uint8Array,
    off: number,
    f: Field,
    field: string,
    signed = false,
    max = Number.MAX_SAFE_INTEGER,
  ): number {
    const v = numberAt(b, off, f);
    if (
      v === null || typeof v === "bigint" || (!signed && v < 0) || v > max
    ) {
      // Name the entry from the header's own name field: this is its header.
      const name = stringAt(b, off, Hdr.name) ?? undefined;
      throw new InvalidArchive(
        v === null ? `malformed ${field} field` : outOfRange(field, v),
        name ?? this.#entry,
      );
    }
    return v;
  }

  /** Refuses mode bits beyond 07777 other than the file-type bits of the entry's kind. */
  #checkMode(h: TarHeader): void {
    const name = h.name;
    const mode = h.mode;
    const oct = `0${mode.toString(8)}`;
    if (mode > 0o177777) {
      throw new InvalidArchive(
        `mode ${oct} has bits beyond the permission and file-type bits; refusing to guess what they mean`,
        name,
      );
    }
    const t = mode & S_IFMT;
    if (t !== 0 && !TYPE_BITS[h.type].includes(t)) {
      throw new InvalidArchive(
        `mode ${oct} has the file-type bits of a ${
          IFMT_NAME[t] ?? `type 0${t.toString(8)}`
        } but the entry is a ${h.type}`,
        name,
      );
    }
  }

  /**
   * Refuses names that climb above the layer root, non-directories named as
   * the root itself (`.`, `./`, `/`), and hard links that climb out, have no
   * target or link to themselves (see `_path.ts`).
   */
  #checkPaths(h: TarHeader): void {
    const path = layerPath(h.name);
    if (path === null) {
      throw new InvalidArchive(
        `its name climbs above the layer root with ".."; refusing it rather than extracting it elsewhere`,
        h.name,
      );
    }
    if (path === "" && h.type !== "dir") {
      throw new InvalidArchive(
        `a ${h.type} cannot be named ${
          JSON.stringify(h.name)
        }: that is the layer root, which only a directory entry may name`,
        h.name,
      );
    }
    if (h.type !== "hardlink") return;
    if (h.linkname === "") {
      throw new InvalidArchive("a hard link without a target", h.name);
    }
    const target = layerPath(h.linkname);
    if (target === null) {
      throw new InvalidArchive(
        `its hard-link target ${
          JSON.stringify(h.linkname)
        } climbs above the layer root with ".."`,
        h.name,
      );
    }
    if (target === path) {
      throw new InvalidArchive(
        "it is a hard link to itself; a link needs an earlier entry to point to",
        h.name,
      );
    }
  }

  /** The header {@link #applyRecord} applies to, and whether the records are global. */
  #paxTarget: TarHeader | undefined;
  #paxGlobal = false;

  #applyPax(
    h: TarHeader,
    recs: Map<string, Uint8Array>,
    global: boolean,
  ): void {
    // forEach with one bound callback: a for-of over the entries allocated
    // an entry array per record, and a closure per call.
    this.#paxTarget = h;
    this.#paxGlobal = global;
    try {
      recs.forEach(this.#applyRecord);
    } finally {
      this.#paxTarget = undefined;
    }
  }

  #badPax(h: TarHeader, k: string, why = "is malformed"): InvalidArchive {
    return new InvalidArchive(`PAX record ${k} ${why}`, h.name);
  }

  readonly #applyRecord = (v: Uint8Array, k: string): void => {
    const h = this.#paxTarget!;
    const global = this.#paxGlobal;
    switch (k) {
      case "path":
      case "linkpath": {
        // Per-file by nature: a global path would rename every entry.
        if (global || v.length === 0) break;
        if (v.includes(0)) throw this.#badPax(h, k, "contains a NUL byte");
        const s = decodeUtf8Exact(v);
        if (s === null) throw this.#badPax(h, k, "is not valid UTF-8");
        if (k === "path") h.name = s;
        else h.linkname = s;
        break;
      }
      case "size": {
        if (global || v.length === 0) break;
        const n = paxInteger(v);
        if (n === null) throw this.#badPax(h, k);
        if (typeof n === "bigint") {
          throw this.#badPax(
            h,
            k,
            `(${n}) exceeds ${Number.MAX_SAFE_INTEGER} bytes`,
          );
        }
        h.size = n;
        break;
      }
      case "uid":
      case "gid": {
        if (v.length === 0) break;
        const n = paxInteger(v);
        if (n === null) throw this.#badPax(h, k);
        if (typeof n === "bigint" || n > MAX_ID) {
          throw new InvalidArchive(
            `PAX record ${outOfRange(k, n)}`,
            h.name,
          );
        }
        h[k] = n;
        break;
      }
      case "uname":
      case "gname": {
        if (v.length === 0) break;
        const s = decodeUtf8Exact(v);
        if (s === null) throw this.#badPax(h, k, "is not valid UTF-8");
        h[k] = s;
        break;
      }
      case "mtime":
      case "atime": {
        if (v.length === 0) break;
        const t = PAX_TIME;
        if (!paxTime(v, t)) throw this.#badPax(h, k);
        if (k === "mtime") {
          h.mtime = t.sec;
          h.mtimeNsec = t.nsec;
        } else {
          h.atime = t.sec;
          h.atimeNsec = t.nsec;
        }
        break;
      }
      default:
        if (k.startsWith("SCHILY.xattr.")) {
          const name = k.slice(13);
          if (name.length > 0) h.xattrs.set(name, v.slice());
        } else if (k.startsWith("GNU.sparse.")) {
          throw new InvalidArchive(
            "GNU sparse files (PAX GNU.sparse.*) are not supported; re-create the archive without --sparse",
            h.name,
          );
        } else if (!global && this.#opts.keepOtherPax) {
          (h.pax ??= new Map()).set(k, v.slice());
        }
    }
  };

  #checkName(h: TarHeader): void {
    const o = this.#opts;
    const name = h.name;
    if (name.length === 0) {
      throw new InvalidArchive("entry has an empty name", this.#entry);
    }
    if (!NON_ASCII.test(name)) {
      // ASCII (nearly every name): UTF-8 length is the string length.
      if (name.length > o.maxNameLength) {
        throw new InvalidArchive(
          `name is ${name.length} bytes, over the ${o.maxNameLength}-byte cap (maxNameLength)`,
          name,
        );
      }
      if (name.includes("\0")) {
        throw new InvalidArchive("entry name contains a NUL byte", name);
      }
      let depth = 0;
      for (let start = 0;;) {
        const j = name.indexOf("/", start);
        const len = (j < 0 ? name.length : j) - start;
        if (len > 0) {
          depth++;
          if (len > o.maxComponentLength) {
            throw new InvalidArchive(
              `a path component is longer than ${o.maxComponentLength} bytes (maxComponentLength)`,
              name,
            );
          }
        }
        if (j < 0) break;
        start = j + 1;
      }
      if (depth > o.maxDepth) {
        throw new InvalidArchive(
          `name is ${depth} components deep, over the cap of ${o.maxDepth} (maxDepth)`,
          name,
        );
      }
      this.#checkLink(h);
      return;
    }
    // One pass: total UTF-8 length, component lengths, depth, NUL.
    let total = 0;
    let comp = 0;
    let depth = 0;
    for (let i = 0; i < name.length; i++) {
      const c = name.charCodeAt(i);
      if (c === 0x2f) {
        if (comp > 0) depth++;
        comp = 0;
        total++;
        continue;
      }
      const w = c < 0x80
        ? 1
        : c < 0x800
        ? 2
        : (c >= 0xd800 && c < 0xe000)
        ? 2
        : 3;
      if (c === 0) {
        throw new InvalidArchive("entry name contains a NUL byte", name);
      }
      comp += w;
      total += w;
      if (comp > o.maxComponentLength) {
        throw new InvalidArchive(
          `a path component is longer than ${o.maxComponentLength} bytes (maxComponentLength)`,
          name,
        );
      }
    }
    if (comp > 0) depth++;
    if (total > o.maxNameLength) {
      throw new InvalidArchive(
        `name is ${total} bytes, over the ${o.maxNameLength}-byte cap (maxNameLength)`,
        name,
      );
    }
    if (depth > o.maxDepth) {
      throw new InvalidArchive(
        `name is ${depth} components deep, over the cap of ${o.maxDepth} (maxDepth)`,
        name,
      );
    }
    this.#checkLink(h);
  }

  #checkLink(h: TarHeader): void {
    const o = this.#opts;
    const name = h.name;
    const l = h.linkname;
    if (l.length > 0) {
      if (l.includes("\0")) {
        throw new InvalidArchive("link target contains a NUL byte", name);
      }
      if (l.length > o.maxNameLength) {
        // UTF-16 length <= UTF-8 length, so only long strings need encoding.
        const bytes = new TextEncoder().encode(l).length;
        if (bytes > o.maxNameLength) {
          throw new InvalidArchive(
            `link target is ${bytes} bytes, over the ${o.maxNameLength}-byte cap (maxNameLength)`,
            name,
          );
        }
      }
    }
  }
}

/**
 * One entry of {@link readTar}: the header and its body. The body must be read
 * before the iteration moves on (it is skipped otherwise and becomes unreadable).
 */
export interface TarEntry {
  /** The entry's metadata. */
  readonly header: TarHeader;
  /** The body as a stream of chunks (each chunk is a fresh copy). */
  readonly body: ReadableStream<Uint8Array>;
  /** The whole body in one array. */
  bytes(): Promise<Uint8Array>;
  /** The whole body decoded as UTF-8. */
  text(): Promise<string>;
}

/**
 * Reads a tar archive as an async iterable of entries with streaming bodies.
 * Breaking out of the loop cancels a stream source.
 *
 * @param source A stream, bytes, async iterable of chunks, or open file.
 * @param options Caps; see {@link TarReaderOptions}.
 * @returns The entries in archive order.
 * @throws {InvalidArchive} A malformed, truncated, refused or over-cap entry (while iterating).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readTar } from "./reader.ts";
 * import { TarWriter } from "./writer.ts";
 *
 * const w = new TarWriter();
 * const out = new Response(w.readable).bytes();
 * await w.add({
 *   name: "etc/hostname", type: "file", size: 4, mode: 0o644, uid: 0, gid: 0,
 *   uname: "", gname: "", mtime: 0, mtimeNsec: 0, linkname: "",
 *   devmajor: 0, devminor: 0, xattrs: new Map(),
 * }, new TextEncoder().encode("box\n"));
 * await w.close();
 *
 * const got: string[] = [];
 * for await (const entry of readTar(await out)) {
 *   got.push(`${entry.header.name}=${await entry.text()}`);
 * }
 * assert.deepEqual(got, ["etc/hostname=box\n"]);
 * ```
 */
export async function* readTar(
  source: TarInput,
  options?: TarReaderOptions,
): AsyncGenerator<TarEntry, void, undefined> {
  const r = new TarReader(source, options);
  let finished = false;
  try {
    let seq = 0;
    for (;;) {
      const header = await r.next();
      if (header === null) {
        finished = true;
        return;
      }
      const mine = ++seq;
      const live = () => {
        if (seq !== mine) {
          throw new TypeError(
            `The body of ${
              JSON.stringify(header.name)
            } is gone: read it before moving to the next entry`,
          );
        }
      };
      let stream: ReadableStream<Uint8Array> | undefined;
      const entry: TarEntry = {
        header,
        get body() {
          return stream ??= new ReadableStream<Uint8Array>({
            async pull(c) {
              live();
              const chunk = await r.readBodyChunk();
              if (chunk === null) c.close();
              else c.enqueue(chunk.slice());
            },
          }, { highWaterMark: 0 });
        },
        async bytes() {
          live();
          const out = new Uint8Array(header.size);
          let at = 0;
          await r.readBody((c) => {
            out.set(c, at);
            at += c.length;
          });
          return at === out.length ? out : out.subarray(0, at);
        },
        async text() {
          return new TextDecoder().decode(await entry.bytes());
        },
      };
      yield entry;
    }
  } finally {
    if (!finished) r.cancel();
  }
}
