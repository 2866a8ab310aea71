/**
 * Internal: the checksums of a tar-split stream (the whole stream's sha256,
 * each file content's crc32), off Deno's Node compatibility layer while the
 * stream is small.
 *
 * Why not always `node:crypto` and `node:zlib`: they are the fast ones
 * (sha256 ~1.8 GB/s, crc32 tens of GB/s here), but the first `node:` module
 * a process loads sets up Node compatibility first: ~25 ms of CPU (Deno
 * 2.9.6, measured in `layerfs apply` of a 50-file tar), more than the rest
 * of the apply. Up to {@link SMALL_STREAM} bytes the sha256 is Web
 * Crypto's (`src/_sha256.ts`) and file contents are crc'd by a slice-by-8
 * table here (~1 GB/s); past it, or when the stream is known to be larger
 * (a file, a byte array), Node's. A large stream of unknown length pays
 * its first SMALL_STREAM bytes summed in JS and copied (~6 ms here), once.
 * The results are the same either way: only their cost differs.
 *
 * @module
 */

import { nodeZlib } from "../../_node.ts";
import { Sha256Stream, SMALL_STREAM } from "../../_sha256.ts";

export { SMALL_STREAM };

/**
 * Streaming sha256 and crc32 for one tar stream (see the module doc).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { StreamSums } from "./_sums.ts";
 * const sums = new StreamSums();
 * const abc = new TextEncoder().encode("abc");
 * sums.update(abc);
 * assert.equal(sums.crc32(abc, 0), 0x352441c2);
 * assert.equal(
 *   await sums.digest(),
 *   "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
 * );
 * assert.equal(sums.large, false);
 * ```
 */
export class StreamSums {
  /** Null when the caller hashes the stream itself. */
  readonly #sha: Sha256Stream | null;
  /** Node from the first byte: the stream is known to be large. */
  readonly #knownLarge: boolean;
  #size = 0;
  #crc32: (data: Uint8Array, value: number) => number = crc32;

  /**
   * With `hash: false` only sizes and crcs are computed (the caller
   * hashes). `expectedSize` is the stream's length when known.
   */
  constructor(options: { hash?: boolean; expectedSize?: number } = {}) {
    this.#knownLarge = (options.expectedSize ?? 0) > SMALL_STREAM;
    this.#sha = options.hash === false
      ? null
      : new Sha256Stream({ expectedSize: options.expectedSize });
    if (this.#knownLarge) this.#crc32 = nodeZlib().crc32;
  }

  /** Bytes seen so far. */
  get size(): number {
    return this.#size;
  }

  /** Whether Node does the sums: the stream is past {@link SMALL_STREAM} or known to be. */
  get large(): boolean {
    return this.#knownLarge || this.#size > SMALL_STREAM;
  }

  /** Takes the next bytes of the stream (not kept by reference). */
  update(chunk: Uint8Array): void {
    this.#size += chunk.length;
    if (this.#size > SMALL_STREAM && this.#crc32 === crc32) {
      this.#crc32 = nodeZlib().crc32;
    }
    this.#sha?.update(chunk);
  }

  /** The crc32 of `data` continued from `value` (0 to start). */
  crc32(data: Uint8Array, value: number): number {
    return this.#crc32(data, value);
  }

  /** The stream's sha256 (hex); call after the last {@link update}. */
  digest(): Promise<string> {
    if (this.#sha === null) {
      return Promise.reject(new Error("internal: StreamSums without hash"));
    }
    return this.#sha.digest();
  }
}

let table: Int32Array | undefined;

/** Slice-by-8 tables of the reflected CRC-32 (IEEE) polynomial. */
function crcTable(): Int32Array {
  const t = new Int32Array(8 * 256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c;
  }
  for (let n = 0; n < 256; n++) {
    let c = t[n];
    for (let k = 1; k < 8; k++) {
      c = t[c & 0xff] ^ (c >>> 8);
      t[k * 256 + n] = c;
    }
  }
  return t;
}

/**
 * CRC-32 (the gzip and zlib one) of `data` continued from `value`, in JS:
 * the same result as `node:zlib`'s `crc32(data, value)`.
 *
 * @param data The bytes.
 * @param value The crc so far (0 to start).
 * @returns The crc as an unsigned 32-bit number.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { crc32 } from "./_sums.ts";
 * const check = new TextEncoder().encode("123456789");
 * assert.equal(crc32(check, 0), 0xcbf43926);
 * assert.equal(crc32(check.subarray(4), crc32(check.subarray(0, 4), 0)), 0xcbf43926);
 * ```
 */
export function crc32(data: Uint8Array, value: number): number {
  const t = table ??= crcTable();
  let c = ~value;
  const n = data.length;
  const n8 = n - (n & 7);
  let i = 0;
  for (; i < n8; i += 8) {
    const a = c ^
      (data[i] | data[i + 1] << 8 | data[i + 2] << 16 | data[i + 3] << 24);
    c = t[1792 + (a & 0xff)] ^ t[1536 + ((a >>> 8) & 0xff)] ^
      t[1280 + ((a >>> 16) & 0xff)] ^ t[1024 + (a >>> 24)] ^
      t[768 + data[i + 4]] ^ t[512 + data[i + 5]] ^ t[256 + data[i + 6]] ^
      t[data[i + 7]];
  }
  for (; i < n; i++) c = t[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}
