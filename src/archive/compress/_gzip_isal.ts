/**
 * Internal: gzip encoding with Intel ISA-L's deflate (`libisal.so.2`, through
 * FFI) at its level 3, which compressed a text layer as small as `gzip -6`
 * (10.63 against 10.66 MB of 39 MB) in 134 ms against GNU gzip's 1.24 s, and
 * 100 MB of incompressible bytes in 0.45 s against the web
 * `CompressionStream`'s 2.9 s (which runs on the calling thread: layers
 * compressed side by side took as long as one after the other). The layer
 * blobs `push` and `diff --compress gzip` write. Optional, as the decoder
 * is (`_gunzip_isal.ts`): without the library, or with `LAYERFS_GZIP=zlib`,
 * {@link isalGzipAvailable} says no and `CompressionStream` encodes.
 *
 * `struct isal_zstream` is allocated here: the fields set and read are the
 * caller's ones at its start (offsets below, from ISA-L 2.30's
 * `igzip_lib.h`), the buffer is three times the whole struct (82,384 bytes
 * in 2.30), and a known text is compressed and decoded back once before the
 * binding is trusted. Pointers into JS buffers are handed to the
 * library only for the synchronous call that uses them.
 *
 * @module
 */

import { nodeZlib } from "../../_node.ts";
import { isalLoader } from "./_isal_lib.ts";

/** Room for `struct isal_zstream` (82,384 bytes in ISA-L 2.30). */
const STREAM_SIZE = 1 << 18;
/** Field offsets in `struct isal_zstream` (igzip_lib.h). */
const Off = {
  nextIn: 0,
  availIn: 8,
  nextOut: 16,
  availOut: 24,
  level: 40,
  levelBufSize: 44,
  levelBuf: 48,
  endOfStream: 56,
  gzipFlag: 60,
} as const;
/** The level used, and `ISAL_DEF_LVL3_DEFAULT`: the buffer it needs. */
const LEVEL = 3;
const LEVEL_BUF = 348160;
/** `IGZIP_GZIP`: a gzip header and trailer around the deflate data. */
const IGZIP_GZIP = 1;
/** Input handed to one call, and the output buffer. */
const IN_CHUNK = 1 << 20;
const OUT = 1 << 20;

const SYMBOLS = {
  isal_deflate_init: { parameters: ["buffer"], result: "void" },
  isal_deflate: { parameters: ["buffer"], result: "i32" },
} as const;

type Isal = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

/** The library, or `null` when it is missing, disabled or fails its self-test. */
const isal = isalLoader(SYMBOLS, selfTest);

let forcedOff = false;

/**
 * Whether gzip is encoded by ISA-L: `libisal.so.2` loads, `LAYERFS_GZIP` is
 * not `zlib`, and a known text comes back from its own gzip.
 */
export function isalGzipAvailable(): boolean {
  return !forcedOff && isal() !== null;
}

/**
 * For tests of both encoders in one process: `true` makes
 * {@link isalGzipAvailable} say no (`CompressionStream` encodes), `false`
 * undoes it.
 */
export function disableIsalGzipForTests(off: boolean): void {
  forcedOff = off;
}

/**
 * Compresses a known text and decodes it back with `node:zlib` (loaded only
 * here, when a process first compresses gzip; mod.ts's import loads neither).
 */
function selfTest(lib: Isal): boolean {
  const want = new TextEncoder().encode(
    "layerfs isa-l deflate self-test ".repeat(300),
  );
  try {
    const gz: Uint8Array[] = [];
    const e = new IsalGzip((c) => gz.push(c), lib);
    e.push(want);
    e.end();
    const got = nodeZlib().gunzipSync(concatBytes(gz));
    return got.length === want.length && got.every((b, i) => b === want[i]);
  } catch {
    return false;
  }
}

function concatBytes(parts: Uint8Array[]): Uint8Array {
  const all = new Uint8Array(parts.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of parts) all.set(c, at), at += c.length;
  return all;
}

const pointer = (b: Uint8Array) =>
  BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(b)));

/**
 * A push encoder: {@link push} uncompressed chunks, get gzip bytes through
 * `emit` (each a fresh buffer the caller keeps), then {@link end}: one gzip
 * member.
 */
export class IsalGzip {
  readonly #lib: Isal;
  readonly #emit: (chunk: Uint8Array) => void;
  readonly #stream = new Uint8Array(STREAM_SIZE);
  readonly #view = new DataView(this.#stream.buffer);
  // Kept here as long as the stream: the library holds its address.
  readonly #levelBuf = new Uint8Array(LEVEL_BUF);
  readonly #out = new Uint8Array(OUT);

  /**
   * @param emit Receives the compressed bytes.
   * @param lib The bound library (its self-test passes it; else the loaded one).
   */
  constructor(emit: (chunk: Uint8Array) => void, lib: Isal | null = isal()) {
    if (!lib) throw new Error("ISA-L deflate is not available");
    this.#lib = lib;
    this.#emit = emit;
    lib.isal_deflate_init(this.#stream);
    const v = this.#view;
    v.setUint32(Off.level, LEVEL, true);
    v.setUint32(Off.levelBufSize, LEVEL_BUF, true);
    v.setBigUint64(Off.levelBuf, pointer(this.#levelBuf), true);
    v.setUint16(Off.gzipFlag, IGZIP_GZIP, true);
  }

  /** Compresses `chunk` (its bytes are not kept past the call). */
  push(chunk: Uint8Array): void {
    for (let at = 0; at < chunk.length; at += IN_CHUNK) {
      this.#run(chunk.subarray(at, at + IN_CHUNK), false);
    }
  }

  /** Ends the member: the rest of the deflate data and the gzip trailer. */
  end(): void {
    this.#run(new Uint8Array(0), true);
  }

  #run(input: Uint8Array, last: boolean): void {
    const v = this.#view;
    // A zero-length view has no backing store to point at: any address,
    // with nothing available there.
    v.setBigUint64(
      Off.nextIn,
      input.length ? pointer(input) : pointer(this.#out),
      true,
    );
    v.setUint32(Off.availIn, input.length, true);
    v.setUint16(Off.endOfStream, last ? 1 : 0, true);
    for (;;) {
      v.setBigUint64(Off.nextOut, pointer(this.#out), true);
      v.setUint32(Off.availOut, OUT, true);
      const r = this.#lib.isal_deflate(this.#stream);
      if (r !== 0) throw new Error(`ISA-L deflate failed (${r})`);
      const made = OUT - v.getUint32(Off.availOut, true);
      if (made > 0) this.#emit(this.#out.slice(0, made));
      // Done with this input when all of it was taken and the output had
      // room to spare (a full output buffer may hold back more).
      if (v.getUint32(Off.availIn, true) === 0 && made < OUT) return;
    }
  }
}

/**
 * gzip as a web `TransformStream` through ISA-L ({@link isalGzipAvailable}
 * must be true).
 */
export function isalGzipStream(): TransformStream<Uint8Array, Uint8Array> {
  let enc: IsalGzip;
  return new TransformStream<Uint8Array, Uint8Array>({
    start(c) {
      enc = new IsalGzip((chunk) => c.enqueue(chunk));
    },
    transform(chunk) {
      enc.push(chunk);
    },
    flush() {
      enc.end();
    },
  });
}
