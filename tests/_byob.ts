/**
 * Test helper: reads a byte stream through a BYOB reader with one buffer of
 * `size` bytes, reused for every read (as a careful consumer does), and
 * returns everything read.
 *
 * @module
 */

import { concat } from "./_bytes.ts";

/** All bytes of `s`, read with a BYOB reader and one reused `size`-byte buffer. */
export async function readByob(
  s: ReadableStream<Uint8Array>,
  size: number,
): Promise<Uint8Array> {
  const r = s.getReader({ mode: "byob" });
  const parts: Uint8Array[] = [];
  let buf = new Uint8Array(size);
  for (;;) {
    // Garbage in the buffer: every byte handed back must have been written.
    buf.fill(0xa5);
    const { value, done } = await r.read(buf);
    if (done) break;
    parts.push(value.slice());
    // The read transferred our buffer; it comes back, whole, under value.
    if (value.buffer.byteLength !== size) {
      throw new Error(
        `BYOB buffer came back with ${value.buffer.byteLength} bytes`,
      );
    }
    buf = new Uint8Array(value.buffer);
  }
  return concat(parts);
}
