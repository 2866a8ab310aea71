/**
 * `recordedTarSize`: the length of the tar a layer was applied from, as its
 * tar-split record says (the `E` op), without rebuilding anything.
 *
 * @module
 */

import { decodeRecord } from "./_format.ts";

/**
 * The byte length of the tar recorded in the record file `path`, or null
 * when there is no such file or it is corrupt (then nothing can be said).
 * Reads the record's frames (headers and padding only: small next to the
 * layer), not the layer's files.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { recordedTarSize } from "./recorded_size.ts";
 * assert.equal(await recordedTarSize("/no/such/record"), null);
 * ```
 */
export async function recordedTarSize(path: string): Promise<number | null> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
  try {
    for await (const op of decodeRecord(file)) {
      if (op.op === "end") return op.size;
    }
    return null;
  } catch {
    return null; // corrupt: the caller falls back to what the files say
  } finally {
    file.close();
  }
}
