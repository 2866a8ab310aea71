/**
 * Internal: views taken for the duration of one call (a comparison's), as
 * holds of this process (`holds.ts`): if it dies before giving them back,
 * the next open does. Counted first and recorded after; on release the
 * record goes first and the put after, all under one store lock each way.
 * Plain `get`/`put` stay as they are: their counts are cross-process by
 * design, and cost no record.
 *
 * @module
 */

import { LayerNotFound, LayerNotMounted } from "../errors.ts";
import type { StoreContext } from "./_context.ts";
import { countView, uncountView } from "./_views.ts";
import { addHolds, removeHolds } from "./holds.ts";

/** Gets the views of `ids` (in order) and records them as this process's holds; returns their paths. */
export function holdViews(
  ctx: StoreContext,
  ids: string[],
): Promise<string[]> {
  return ctx.locked(async () => {
    const taken: string[] = [];
    const paths: string[] = [];
    try {
      for (const id of ids) {
        paths.push(await countView(ctx, id, undefined));
        taken.push(id);
      }
      addHolds(ctx.layout, taken);
    } catch (e) {
      for (const id of taken.reverse()) {
        await putTaken(ctx, id).catch(() => {});
      }
      throw e;
    }
    return paths;
  });
}

/**
 * Gives back what {@link holdViews} took: removes the holds, then puts the
 * views whose hold was still recorded (one dropped meanwhile, with a stale
 * count, a removed layer or a `cleanup`, is no longer part of any count).
 */
export function releaseHeld(ctx: StoreContext, ids: string[]): Promise<void> {
  return ctx.locked(async () => {
    let failure: unknown;
    for (const id of removeHolds(ctx.layout, ids)) {
      try {
        await putTaken(ctx, id);
      } catch (e) {
        failure ??= e; // the other views are still given back
      }
    }
    if (failure !== undefined) throw failure;
  });
}

/** Puts a held view; a layer force-removed meanwhile has none left. */
async function putTaken(ctx: StoreContext, id: string): Promise<void> {
  try {
    await uncountView(ctx, id);
  } catch (e) {
    if (!(e instanceof LayerNotFound || e instanceof LayerNotMounted)) throw e;
  }
}
