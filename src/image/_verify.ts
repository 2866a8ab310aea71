/**
 * Internal: a byte stream that hashes (sha256: Web Crypto while small,
 * `node:crypto` past that, see `src/_sha256.ts`) and counts what
 * flows through it, refuses to grow past a cap, and can be drained to its
 * end by the code that made it, whoever reads the stream. The tar extractor
 * stops at the end-of-archive blocks and leaves the padding after them
 * unread; a DiffID or blob digest must cover every byte, so the loader
 * drains the rest before it compares. A consumer that cancels the stream
 * (a decoder or the extractor that failed) leaves the input to its maker,
 * which may still drain it (to tell a corrupted blob by its digest) and
 * cancels it in the end.
 *
 * @module
 */

import { Sha256Stream } from "../_sha256.ts";
import { InvalidImage } from "../errors.ts";

/** A hashed, counted, drainable view of a byte stream. */
export class HashedStream {
  /** Bytes seen so far. */
  bytes = 0;
  /** The stream to hand to a consumer (it pulls only on demand). */
  readonly stream: ReadableStream<Uint8Array>;
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #hash: Sha256Stream | null;
  /** The digest, once the input ended (so {@link digest} is synchronous). */
  #hex: string | undefined;
  readonly #max: number;
  readonly #subject: string;
  readonly #onBytes: (n: number) => void;
  #done = false;
  #busy: Promise<unknown> = Promise.resolve();

  /**
   * @param input The bytes.
   * @param subject Names them in errors.
   * @param max More bytes than this is an error (default: no cap).
   * @param onBytes Told each chunk's length.
   * @param hash Whether to hash (without, {@link digest} throws): a source that checks itself needs no second hash.
   * @param sizeHint About how many bytes to expect when `max` does not say (a layer tar: its blob's size, which it hardly ever undercuts): only picks how to hash.
   */
  constructor(
    input: ReadableStream<Uint8Array>,
    subject: string,
    max = Infinity,
    onBytes: (n: number) => void = () => {},
    hash = true,
    sizeHint?: number,
  ) {
    this.#hash = hash
      ? new Sha256Stream({
        expectedSize: Number.isFinite(max) ? max : sizeHint,
      })
      : null;
    this.#reader = input.getReader();
    this.#subject = subject;
    this.#max = max;
    this.#onBytes = onBytes;
    this.stream = new ReadableStream<Uint8Array>({
      pull: async (c) => {
        const v = await this.#next();
        if (v === null) c.close();
        else c.enqueue(v);
      },
      // Not the input: its maker drains or cancels it (see the module doc).
      cancel: () => {},
    }, { highWaterMark: 0 });
  }

  /** Reads one chunk from the input, hashing it; one read at a time. */
  #next(): Promise<Uint8Array | null> {
    const p = this.#busy.then(async () => {
      if (this.#done) return null;
      const r = await this.#reader.read();
      if (r.done) {
        this.#done = true;
        if (this.#hash !== null) this.#hex = await this.#hash.digest();
        return null;
      }
      this.bytes += r.value.length;
      if (this.bytes > this.#max) {
        throw new InvalidImage(
          this.#subject,
          `it is longer than the ${this.#max} bytes its descriptor says`,
        );
      }
      this.#hash?.update(r.value);
      this.#onBytes(r.value.length);
      return r.value;
    });
    this.#busy = p.catch(() => {});
    return p;
  }

  /** Reads (and hashes) whatever the consumer left unread. */
  async drain(): Promise<void> {
    while ((await this.#next()) !== null) { /* hashing */ }
  }

  /** The sha256 hex of every byte seen; call after the end. */
  digest(): string {
    if (this.#hash === null) throw new Error("internal: a stream not hashed");
    if (this.#hex === undefined) {
      throw new Error("internal: a stream's digest asked before its end");
    }
    return this.#hex;
  }

  /** Cancels the input (releases its file). */
  async cancel(reason?: unknown): Promise<void> {
    this.#done = true;
    await this.#reader.cancel(reason).catch(() => {});
  }
}
