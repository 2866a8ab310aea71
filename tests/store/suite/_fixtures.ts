/**
 * Fixtures the suite's scenarios share: chains of layers, layers made the
 * way a container makes them (writes through the view of a read-write layer,
 * then commit), tars of source trees.
 *
 * @module
 */

import type { Store } from "../../../mod.ts";

/** Creates read-only layers `<prefix>1..n` on `base`, each on the previous; returns the top. */
export async function chain(
  store: Store,
  base: string,
  n: number,
  prefix: string,
): Promise<string> {
  let prev = base;
  for (let i = 1; i <= n; i++) {
    await store.create(`${prefix}${i}`, prev);
    prev = `${prefix}${i}`;
  }
  return prev;
}

/**
 * Makes read-only layer `id` on `parent` as a container does: a read-write
 * layer `<id>-rw`, `change` run on its mounted view, then commit.
 */
export async function layerBy(
  store: Store,
  id: string,
  parent: string | undefined,
  change: (root: string) => Promise<void>,
): Promise<void> {
  await store.createReadWrite(`${id}-rw`, parent);
  const root = await store.get(`${id}-rw`);
  try {
    await change(root);
  } finally {
    await store.put(`${id}-rw`);
  }
  await store.commit(`${id}-rw`, id);
}

/** `n` bytes that do not compress or dedupe (so st_blocks reflects them). */
export function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) {
    crypto.getRandomValues(out.subarray(i, Math.min(n, i + 65536)));
  }
  return out;
}

/** The view of `id`, described while it is held, then released. */
export async function withView<T>(
  store: Store,
  id: string,
  fn: (root: string) => Promise<T>,
): Promise<T> {
  const root = await store.get(id);
  try {
    return await fn(root);
  } finally {
    await store.put(id);
  }
}
