/**
 * Internal: what a layer argument of the CLI names, as docker habits read
 * it. The id itself first; else a unique prefix of a 64-hex layer id (the
 * 12 characters `images` and `ls` show); else, where a command reads a
 * layer's view or contents, an image reference (its top layer, as `podman
 * image mount` takes an image). The library takes exact ids only.
 *
 * @module
 */

import { InvalidLayerId, UsageError } from "../errors.ts";
import { validateLayerId } from "../store/id.ts";
import type { Store } from "../store/store.ts";
import { findImage } from "../image/lazy.ts";

/** Shortest id prefix taken (docker takes any unique prefix; 4 keeps typos from matching). */
const MIN_PREFIX = 4;
const HEX_PREFIX = /^[0-9a-f]+$/;
const HEX_ID = /^[0-9a-f]{64}$/;

/** Whether `s` can be a layer id at all. */
function isLayerIdText(s: string): boolean {
  try {
    validateLayerId(s);
    return true;
  } catch {
    return false;
  }
}

/** How far {@link resolveLayer} may read an argument. */
export interface LayerArgOptions {
  /** Also take an image reference for its top layer (commands that read a layer). */
  images?: boolean;
}

/**
 * The layer id `arg` names in `store` (see the module doc); `arg` itself when
 * it names none, so the store's own error (LayerNotFound, InvalidLayerId)
 * is what the user sees.
 *
 * @throws {UsageError} A prefix that several layers share, or an image with no layers.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { openStore } from "../../mod.ts";
 * import { resolveLayer } from "./_layer_arg.ts";
 * const root = await Deno.makeTempDir();
 * const store = await openStore({ root, backend: "vfs" });
 * const id = "ab12".repeat(16);
 * await store.create(id);
 * assert.equal(await resolveLayer(store, id.slice(0, 12)), id);
 * assert.equal(await resolveLayer(store, "nope"), "nope");
 * store.close();
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function resolveLayer(
  store: Store,
  arg: string,
  options: LayerArgOptions = {},
): Promise<string> {
  if (isLayerIdText(arg) && await store.exists(arg)) return arg;
  if (arg.length >= MIN_PREFIX && arg.length < 64 && HEX_PREFIX.test(arg)) {
    const hits = (await store.list()).map((l) => l.id).filter((id) =>
      HEX_ID.test(id) && id.startsWith(arg)
    );
    if (hits.length === 1) return hits[0];
    if (hits.length > 1) {
      throw new UsageError(
        `${hits.length} layers start with ${arg} (${
          hits.map((h) => h.slice(0, 16)).join(", ")
        }); give more of the id`,
      );
    }
  }
  if (!options.images) return arg;
  const image = await findImage(store, arg).catch(() => undefined);
  if (image) {
    if (image.topLayer === null) {
      throw new UsageError(`Image ${arg} has no layers`);
    }
    return image.topLayer;
  }
  if (isLayerIdText(arg)) return arg; // the store says it does not exist
  throw new InvalidLayerId(
    arg,
    `it names no layer, and no image of this store ("layerfs images" lists them)`,
  );
}
