/**
 * Internal: finds where each zstd frame of a stream starts and ends, without
 * decoding anything (RFC 8878 §3.1: frame header, block headers, optional
 * content checksum; skippable frames).
 *
 * Why: Deno 2.9.6's `node:zlib` zstd decoder reports neither a stream cut
 * inside a frame (it ends quietly, often with no output at all) nor anything
 * after the first frame (a second frame, or garbage, is dropped). Knowing the
 * frame boundaries lets the decoder get one whole frame at a time and lets a
 * cut or trailing garbage be refused at the end of the input.
 *
 * @module
 */

const ZSTD_MAGIC = 0xfd2fb528;
const SKIPPABLE_MASK = 0xfffffff0;
const SKIPPABLE_MAGIC = 0x184d2a50;

/** What a piece of the input is. */
export type ZstdPiece =
  /** Bytes of a zstd frame (header, blocks, checksum), for the decoder. */
  | { kind: "frame"; bytes: Uint8Array }
  /** The frame being fed ended with the piece before this one. */
  | { kind: "end" };

/** Why the input is not a well-formed sequence of frames. */
export class ZstdFrameError extends Error {
  /** Offset in the compressed input where the problem was found. */
  readonly offset: number;
  /** Builds the error. */
  constructor(message: string, offset: number) {
    super(message);
    this.name = "ZstdFrameError";
    this.offset = offset;
  }
}

type State =
  | "magic" // 4 bytes: a frame, a skippable frame, or garbage
  | "descriptor" // 1 byte: Frame_Header_Descriptor
  | "header" // the rest of the frame header
  | "block" // 3-byte block header
  | "body" // block content
  | "checksum" // 4-byte content checksum
  | "skipSize" // 4-byte skippable frame size
  | "skip"; // skippable frame content

const MAGIC_BYTES = new Uint8Array([0x28, 0xb5, 0x2f, 0xfd]);

/**
 * Splits a zstd stream into frame pieces as bytes arrive.
 *
 * `push` returns the pieces of a chunk in order (views into it: use them
 * before the next push); `finish` throws when the input ended inside a frame.
 * Skippable frames are checked for length and dropped.
 */
export class ZstdFrameScanner {
  #state: State = "magic";
  /** Bytes still wanted in the current state. */
  #need = 4;
  /** Header bytes gathered across chunks. */
  #hdr = new Uint8Array(4);
  #have = 0;
  #checksum = false;
  #last = false;
  #offset = 0;
  #frames = 0;

  /** Frames (zstd and skippable) completed so far. */
  get frames(): number {
    return this.#frames;
  }

  /**
   * Scans `chunk`; returns its frame bytes and frame ends, in order.
   * @throws {ZstdFrameError} on data that is no frame (e.g. trailing garbage).
   */
  push(chunk: Uint8Array): ZstdPiece[] {
    const out: ZstdPiece[] = [];
    // Start in `chunk` of zstd frame bytes not yet handed out, or -1.
    let from = this.#inFrame() ? 0 : -1;
    let i = 0;
    while (i < chunk.length) {
      const n = Math.min(this.#need, chunk.length - i);
      if (this.#state !== "body" && this.#state !== "skip") {
        this.#hdr.set(chunk.subarray(i, i + n), this.#have);
        this.#have += n;
      }
      i += n;
      this.#need -= n;
      this.#offset += n;
      while (this.#need === 0) {
        const ev = this.#step();
        if (ev === "start") {
          out.push({ kind: "frame", bytes: MAGIC_BYTES });
          from = i;
        } else if (ev === "end") {
          if (i > from) {
            out.push({ kind: "frame", bytes: chunk.subarray(from, i) });
          }
          out.push({ kind: "end" });
          from = -1;
        }
      }
    }
    if (from >= 0 && chunk.length > from) {
      out.push({ kind: "frame", bytes: chunk.subarray(from) });
    }
    return out;
  }

  /** @throws {ZstdFrameError} when the input ended inside a frame or held none. */
  finish(): void {
    if (this.#state === "magic" && this.#have === 0) {
      if (this.#frames === 0) {
        throw new ZstdFrameError("the zstd stream holds no frame", 0);
      }
      return;
    }
    if (this.#state === "magic" && this.#frames > 0) {
      // Fewer than 4 bytes after the last frame: no frame starts there.
      throw new ZstdFrameError(
        "garbage after the end of the zstd data",
        this.#offset - this.#have,
      );
    }
    throw new ZstdFrameError(
      "the zstd stream is truncated (ends inside a frame)",
      this.#offset,
    );
  }

  #inFrame(): boolean {
    return this.#state !== "magic" && this.#state !== "skipSize" &&
      this.#state !== "skip";
  }

  /** Acts on a completed field; says when a zstd frame starts or ends. */
  #step(): "start" | "end" | undefined {
    const h = this.#hdr;
    this.#have = 0;
    switch (this.#state) {
      case "magic": {
        const magic = (h[0] | h[1] << 8 | h[2] << 16 | h[3] << 24) >>> 0;
        if (magic === ZSTD_MAGIC) {
          this.#to("descriptor", 1);
          return "start";
        }
        if (((magic & SKIPPABLE_MASK) >>> 0) === SKIPPABLE_MAGIC) {
          this.#to("skipSize", 4);
          return undefined;
        }
        throw new ZstdFrameError(
          this.#frames === 0
            ? "the data is not a zstd frame"
            : "garbage after the end of the zstd data",
          this.#offset - 4,
        );
      }
      case "descriptor": {
        const d = h[0];
        const single = (d & 0x20) !== 0;
        this.#checksum = (d & 0x04) !== 0;
        const dictId = [0, 1, 2, 4][d & 3];
        const contentSize = [single ? 1 : 0, 2, 4, 8][d >> 6];
        const rest = (single ? 0 : 1) + dictId + contentSize;
        if (rest > 0) this.#to("header", rest);
        else this.#to("block", 3);
        return undefined;
      }
      case "header":
        this.#to("block", 3);
        return undefined;
      case "block": {
        const b = h[0] | h[1] << 8 | h[2] << 16;
        this.#last = (b & 1) !== 0;
        const type = (b >> 1) & 3;
        if (type === 3) {
          throw new ZstdFrameError(
            "the zstd stream is corrupt (a block of the reserved type)",
            this.#offset - 3,
          );
        }
        // Raw and compressed blocks carry Block_Size bytes, RLE blocks one.
        this.#to("body", type === 1 ? 1 : b >>> 3);
        return undefined;
      }
      case "body":
        if (!this.#last) this.#to("block", 3);
        else if (this.#checksum) this.#to("checksum", 4);
        else return this.#endFrame();
        return undefined;
      case "checksum":
        return this.#endFrame();
      case "skipSize":
        this.#to("skip", (h[0] | h[1] << 8 | h[2] << 16 | h[3] << 24) >>> 0);
        return undefined;
      case "skip":
        this.#endFrame();
        return undefined;
    }
  }

  #to(state: State, need: number): void {
    this.#state = state;
    this.#need = need;
  }

  #endFrame(): "end" {
    this.#frames++;
    this.#to("magic", 4);
    return "end";
  }
}
