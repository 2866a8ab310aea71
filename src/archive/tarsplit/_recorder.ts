/**
 * Internal: the recorder. It sees every byte of an uncompressed tar once, as
 * it flows to the extractor, and parses only block boundaries with the tar
 * codec's named header fields (size, type flag, the ustar prefix, PAX `x`
 * and GNU `L` bodies for the next entry's name and size). Every byte that is
 * not a regular file's content goes to the record verbatim; a regular
 * file's content becomes a file op (its root-relative path, size and
 * crc32). The whole stream is hashed (sha256; or the caller, who hashes it
 * anyway, hands its digest to `finish`) and the record ends with it. The
 * sums are `_sums.ts`'s, off Node while the stream is small, and so are
 * the frames: stored, not compressed, while it is.
 *
 * The rules mirror the reader's (`tar/reader.ts`), so the boundaries are
 * the ones the extractor sees: header-only types carry no body whatever the
 * size field says; a local PAX `size`/`path` applies to the next entry,
 * global ones do not; a NUL-flag entry whose name ends in `/` is a directory.
 * Whenever a content's place in the layer is not certain (a `.wh.` name, a
 * name that does not resolve, a PAX body too large to parse) the content is
 * recorded verbatim instead: a bigger record, never a wrong one. After the
 * first zero block everything (the second one, padding, trailing data up to
 * the end of the stream) is verbatim.
 *
 * @module
 */

import {
  BLOCK,
  emptyAt,
  Hdr,
  isZeroBlock,
  Magic,
  magicOf,
  numberAt,
  stringAt,
  typeflagAt,
} from "../tar/_block.ts";
import { paxInteger, scanPaxRecords } from "../tar/_pax.ts";
import { layerPath } from "../tar/_path.ts";
import { entryTypeOf, TypeFlag } from "../tar/header.ts";
import { RecordEncoder } from "./_format.ts";
import { StreamSums } from "./_sums.ts";

const enum State {
  Header,
  Raw,
  Content,
  Padding,
  Trailer,
}

/** Largest PAX or GNU long-name body parsed for the next entry (the reader's default cap is 1 MiB). */
const META_MAX = 1 << 20;

/** Longest path (UTF-16 units) a file op carries: 3 bytes each fit one frame. */
const PATH_MAX_RECORDED = 1 << 16;

/**
 * Decodes PAX and GNU long names for the next entry. Lossy is enough: the
 * reader refuses a name that is not UTF-8, so no such tar is ever applied.
 */
const lossy = new TextDecoder("utf-8", { fatal: false });

/** What a finished recording says. */
export interface RecordSummary {
  /** Bytes of the tar stream. */
  size: number;
  /** Its sha256, hex (the DiffID of an uncompressed layer). */
  sha256: string;
}

/** Parses block boundaries of a tar as it streams and writes its record. */
export class TarSplitRecorder {
  readonly #enc: RecordEncoder;
  /** The stream's sha256 (unless the caller hashes it) and the crc32s. */
  readonly #sums: StreamSums;
  readonly #hashed: boolean;
  #state = State.Header;
  readonly #hdr = new Uint8Array(BLOCK);
  #hdrFill = 0;
  #left = 0; // bytes of the current body
  #pad = 0; // padding after it
  #meta: Uint8Array | null = null; // a body being collected (x or L)
  // Where #meta lives: reused (parsed as soon as it is complete), since a
  // new Uint8Array per PAX header costs more than parsing it in Deno 2.9.6.
  #metaBuf = new Uint8Array(4096);
  #metaFill = 0;
  #metaFlag = 0;
  #metaLost = false; // a body too large to parse: names unknown for the next entry
  #paxPath: string | undefined;
  #paxSize: number | undefined;
  #longName: string | undefined;
  #path: string | null = null;
  #fileSize = 0;
  #crc = 0;

  /**
   * Records into `file` (empty, open for writing). With `hash: false` the
   * stream is not hashed here: {@link finish} must then be given its sha256.
   * `expectedSize`, when the caller knows the stream's length, picks the
   * way of summing it from the start (see `StreamSums`).
   */
  constructor(
    file: Deno.FsFile,
    options: { hash?: boolean; expectedSize?: number } = {},
  ) {
    this.#hashed = options.hash !== false;
    const sums = this.#sums = new StreamSums({
      hash: this.#hashed,
      expectedSize: options.expectedSize,
    });
    this.#enc = new RecordEncoder(file, () => !sums.large);
  }

  /** Takes the next chunk of the tar (not kept after the call). */
  feed(chunk: Uint8Array): void {
    this.#sums.update(chunk);
    let i = 0;
    const n = chunk.length;
    while (i < n) {
      switch (this.#state) {
        case State.Header: {
          if (this.#hdrFill === 0 && n - i >= BLOCK) {
            const blk = chunk.subarray(i, i + BLOCK);
            this.#enc.segment(blk);
            i += BLOCK;
            this.#header(chunk, i - BLOCK);
          } else {
            const k = Math.min(BLOCK - this.#hdrFill, n - i);
            this.#hdr.set(chunk.subarray(i, i + k), this.#hdrFill);
            this.#hdrFill += k;
            i += k;
            if (this.#hdrFill === BLOCK) {
              this.#hdrFill = 0;
              this.#enc.segment(this.#hdr);
              this.#header(this.#hdr, 0);
            }
          }
          break;
        }
        case State.Raw: {
          const k = Math.min(this.#left, n - i);
          const part = chunk.subarray(i, i + k);
          this.#enc.segment(part);
          if (this.#meta) {
            this.#meta.set(part, this.#metaFill);
            this.#metaFill += k;
          }
          this.#left -= k;
          i += k;
          if (this.#left === 0) this.#bodyDone();
          break;
        }
        case State.Content: {
          const k = Math.min(this.#left, n - i);
          this.#crc = this.#sums.crc32(chunk.subarray(i, i + k), this.#crc);
          this.#left -= k;
          i += k;
          if (this.#left === 0) this.#contentDone();
          break;
        }
        case State.Padding: {
          const k = Math.min(this.#pad, n - i);
          this.#enc.segment(chunk.subarray(i, i + k));
          this.#pad -= k;
          i += k;
          if (this.#pad === 0) this.#state = State.Header;
          break;
        }
        case State.Trailer:
          this.#enc.segment(chunk.subarray(i));
          i = n;
          break;
      }
    }
  }

  /**
   * Ends the record (call after the last chunk); returns the stream's length
   * and digest. `sha256` (hex) is the caller's hash of the same bytes, needed
   * when the recorder was made with `hash: false` and ignored otherwise.
   */
  async finish(sha256?: string): Promise<RecordSummary> {
    if (this.#state === State.Header && this.#hdrFill > 0) {
      this.#enc.segment(this.#hdr.subarray(0, this.#hdrFill));
    } else if (this.#state === State.Content) {
      // A truncated tar: the extractor refused it already; keep the record consistent.
      throw new Error("tar ended inside a file's content");
    }
    let hex: string;
    if (this.#hashed) hex = await this.#sums.digest();
    else if (sha256 !== undefined && /^[0-9a-f]{64}$/.test(sha256)) {
      hex = sha256;
    } else {
      throw new Error(
        `internal: the tar-split recorder needs the tar's sha256 (got ${sha256})`,
      );
    }
    const digest = new Uint8Array(32);
    for (let i = 0; i < 32; i++) {
      digest[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
    }
    const size = this.#sums.size;
    this.#enc.end(size, digest);
    return { size, sha256: hex };
  }

  /** A header block (already recorded) at `b[o]`. */
  #header(b: Uint8Array, o: number): void {
    if (isZeroBlock(b, o)) {
      this.#state = State.Trailer;
      return;
    }
    const flag = typeflagAt(b, o);
    const size = numberAt(b, o, Hdr.size);
    if (typeof size !== "number" || size < 0) {
      // The reader refuses it; nothing after it is parsed.
      this.#state = State.Trailer;
      return;
    }
    if (
      flag === TypeFlag.XHeader || flag === TypeFlag.XGlobalHeader ||
      flag === TypeFlag.GNULongName || flag === TypeFlag.GNULongLink
    ) {
      const collect = flag === TypeFlag.XHeader ||
        flag === TypeFlag.GNULongName;
      if (collect && size > META_MAX) this.#metaLost = true;
      else if (collect) {
        if (this.#metaBuf.length < size) this.#metaBuf = new Uint8Array(size);
        this.#meta = this.#metaBuf.subarray(0, size);
        this.#metaFill = 0;
        this.#metaFlag = flag;
      }
      this.#body(size, State.Raw);
      return;
    }
    const type = entryTypeOf(flag);
    let name = this.#longName;
    if (name === undefined) {
      name = stringAt(b, o, Hdr.name) ?? undefined;
      if (
        name !== undefined && magicOf(b, o) === Magic.Ustar &&
        !emptyAt(b, o, Hdr.prefix)
      ) {
        const prefix = stringAt(b, o, Hdr.prefix);
        name = prefix === null ? undefined : `${prefix}/${name}`;
      }
    }
    const isFile = type === "file" &&
      !(flag === TypeFlag.RegA && name !== undefined && name.endsWith("/"));
    const effSize = this.#paxSize ?? size;
    if (this.#paxPath !== undefined) name = this.#paxPath;
    const lost = this.#metaLost;
    this.#paxPath = this.#paxSize = this.#longName = undefined;
    this.#metaLost = false;
    if (lost) {
      // A PAX body we could not parse may change this entry's size: from
      // here on everything is recorded verbatim (the reader likely refuses).
      this.#state = State.Trailer;
      return;
    }
    if (!isFile) {
      // Header-only types carry no body whatever the size field says (the
      // reader's rule); an unknown type is refused by the reader.
      this.#state = type === undefined ? State.Trailer : State.Header;
      return;
    }
    const path = name === undefined ? null : layerPath(name);
    const base = path?.slice(path.lastIndexOf("/") + 1);
    if (
      path === null || path === "" || base!.startsWith(".wh.") ||
      path.length > PATH_MAX_RECORDED
    ) {
      // Whiteouts and markers become something else on disk: verbatim (and
      // a path too long for one frame's file op, should a tar have one).
      this.#body(effSize, State.Raw);
      return;
    }
    this.#path = path;
    this.#fileSize = effSize;
    this.#crc = 0;
    this.#body(effSize, State.Content);
  }

  #body(size: number, state: State): void {
    this.#left = size;
    this.#pad = (BLOCK - (size % BLOCK)) % BLOCK;
    if (size > 0) this.#state = state;
    else if (state === State.Content) this.#contentDone();
    else this.#bodyDone();
  }

  #bodyDone(): void {
    const meta = this.#meta;
    if (meta) {
      this.#meta = null;
      if (this.#metaFlag === TypeFlag.XHeader) {
        // Only path and size matter here (later records win, as in the
        // reader): no map of every record (GNU tar writes times for each entry).
        let p: Uint8Array | undefined;
        let sz: Uint8Array | undefined;
        const err = scanPaxRecords(meta, (_, k, v) => {
          if (k === "path") p = v;
          else if (k === "size") sz = v;
        }, undefined);
        if (err !== null) this.#metaLost = true;
        if (p !== undefined && p.length > 0) this.#paxPath = lossy.decode(p);
        if (sz !== undefined && sz.length > 0) {
          const v = paxInteger(sz);
          if (typeof v === "number") this.#paxSize = v;
          else this.#metaLost = true;
        }
      } else {
        let end = meta.length;
        while (end > 0 && meta[end - 1] === 0) end--;
        this.#longName = lossy.decode(meta.subarray(0, end));
      }
    }
    this.#afterBody();
  }

  #contentDone(): void {
    this.#enc.file(this.#path!, this.#fileSize, this.#crc);
    this.#path = null;
    this.#afterBody();
  }

  #afterBody(): void {
    this.#state = this.#pad > 0 ? State.Padding : State.Header;
  }
}
