/**
 * Internal: sha256 off Deno's Node compatibility layer while the input is
 * small, the one home of that choice (tar-split sums, image digests).
 *
 * Why not always `node:crypto`: it is the fast one (~1.8 GB/s here against
 * Web Crypto's ~1 GB/s, and it streams), but the first `node:` module a
 * process loads sets up Node compatibility first, ~25 ms of CPU (Deno
 * 2.9.6), more than a small apply or load takes otherwise. Up to
 * {@link SMALL_STREAM} bytes a stream is kept and hashed by Web Crypto (one
 * call, at its end); the first byte past it hands what was kept to
 * `node:crypto`. A stream known to be larger goes to Node from its start:
 * what a large stream of unknown length pays is its first SMALL_STREAM
 * bytes copied (~2 ms), once. Once this isolate has `node:crypto` loaded
 * anyway, every new stream uses it: nothing is won by keeping bytes. What
 * is kept is at most SMALL_STREAM bytes a stream (8 MiB for a layer's blob
 * and tar together, in the worker that unpacks it, next to the ~40 MiB
 * the worker itself takes), and only until its end. The digest is the
 * same either way.
 *
 * @module
 */

import { loadedBuiltins, nodeCrypto } from "./_node.ts";

/**
 * Bytes hashed without Node. By time alone Web Crypto (~0.45 ms/MiB slower
 * here) would win up to ~50 MiB against loading Node (~25 ms); 4 MiB bounds
 * the bytes a stream holds until its end.
 */
export const SMALL_STREAM = 4 << 20;

type NodeHash = ReturnType<ReturnType<typeof nodeCrypto>["createHash"]>;

/**
 * A streaming sha256 (see the module doc).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Sha256Stream } from "./_sha256.ts";
 * const h = new Sha256Stream();
 * h.update(new TextEncoder().encode("ab"));
 * h.update(new TextEncoder().encode("c"));
 * assert.equal(h.size, 3);
 * assert.equal(
 *   await h.digest(),
 *   "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
 * );
 * assert.equal(await h.digest(), await h.digest()); // the same, asked again
 * ```
 */
export class Sha256Stream {
  #size = 0;
  /** The stream so far while small; null after the hand-over. */
  #kept: Uint8Array<ArrayBuffer> | null;
  #node: NodeHash | null = null;
  #digest: Promise<string> | null = null;

  /** `expectedSize` is the stream's length when known. */
  constructor(options: { expectedSize?: number } = {}) {
    if (
      (options.expectedSize ?? 0) > SMALL_STREAM ||
      loadedBuiltins().includes("node:crypto")
    ) {
      this.#node = nodeCrypto().createHash("sha256");
      this.#kept = null;
    } else this.#kept = new Uint8Array(64 << 10);
  }

  /** Bytes seen so far. */
  get size(): number {
    return this.#size;
  }

  /** Whether `node:crypto` does the hashing (the stream is, or is known to be, large, or Node was loaded already). */
  get large(): boolean {
    return this.#node !== null;
  }

  /** Takes the next bytes (not kept by reference). */
  update(chunk: Uint8Array): void {
    if (this.#digest !== null) {
      throw new Error("internal: Sha256Stream updated after its digest");
    }
    const at = this.#size;
    this.#size += chunk.length;
    if (this.#node !== null) {
      this.#node.update(chunk);
      return;
    }
    let kept = this.#kept!;
    if (this.#size > SMALL_STREAM) {
      this.#node = nodeCrypto().createHash("sha256");
      this.#node.update(kept.subarray(0, at));
      this.#node.update(chunk);
      this.#kept = null;
      return;
    }
    if (this.#size > kept.length) {
      const grown = new Uint8Array(
        Math.min(SMALL_STREAM, Math.max(2 * kept.length, this.#size)),
      );
      grown.set(kept.subarray(0, at));
      kept = this.#kept = grown;
    }
    kept.set(chunk, at);
  }

  /** The sha256 (hex) of everything given; later calls give the same. */
  digest(): Promise<string> {
    if (this.#digest === null) {
      const node = this.#node;
      const kept = this.#kept;
      this.#kept = null;
      this.#digest = node !== null
        ? Promise.resolve(node.digest("hex"))
        : webSha256(kept!.subarray(0, this.#size));
    }
    return this.#digest;
  }
}

/**
 * The sha256 (hex) of `bytes` (a string as UTF-8): Web Crypto when small,
 * `node:crypto` when larger.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sha256Of } from "./_sha256.ts";
 * assert.equal((await sha256Of("")).slice(0, 8), "e3b0c442");
 * ```
 */
export function sha256Of(bytes: Uint8Array | string): Promise<string> {
  const b = typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes;
  if (b.length > SMALL_STREAM) {
    return Promise.resolve(
      nodeCrypto().createHash("sha256").update(b).digest("hex"),
    );
  }
  return webSha256(b);
}

async function webSha256(b: Uint8Array): Promise<string> {
  const d = new Uint8Array(
    await crypto.subtle.digest("SHA-256", b as Uint8Array<ArrayBuffer>),
  );
  let hex = "";
  for (const x of d) hex += (x < 16 ? "0" : "") + x.toString(16);
  return hex;
}
