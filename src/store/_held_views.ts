/**
 * Internal: views taken for the duration of one call (a comparison's), as
 * holds of this process (`holds.ts`): if it dies before giving them back,
 * the next open does. Each view is counted first and recorded right after;
 * on release each record goes first and its put after, all under one store
 * lock each way: a kill -9 in a window leaks at most one count.
 * Plain `get`/`put` stay as they are: their counts are cross-process by
 * design, and cost no record.
 *
 * @module
 */

import { LayerNotFound, LayerNotMounted } from "../errors.ts";
import type { StoreContext } from "./_context.ts";
import { countView, uncountView } from "./_views.ts";
import { addHolds, removeHolds } from "./holds.ts";

/**
 * Gets the views of `ids` (in order) and records each as this process's
 * hold right after its count: a kill between the two leaks at most that
 * one count (never takes someone else's). Returns their paths.
 */
export function holdViews(
  ctx: StoreContext,
  ids: string[],
): Promise<string[]> {
  return ctx.locked(async () => {
    const taken: string[] = [];
    const paths: string[] = [];
    try {
      for (const id of ids) {
        const path = await countView(ctx, id, undefined);
        try {
          addHolds(ctx.layout, [id]);
        } catch (e) {
          await putTaken(ctx, id).catch(() => {});
          throw e;
        }
        taken.push(id);
        paths.push(path);
      }
    } catch (e) {
      for (const id of taken.reverse()) await giveBack(ctx, id).catch(() => {});
      throw e;
    }
    return paths;
  });
}

/**
 * Gives back what {@link holdViews} took, one view at a time: its hold goes,
 * then its put, so a kill in between leaks at most that one count. A view
 * whose hold was dropped meanwhile (a stale count, a removed layer, a
 * `cleanup`) is no longer part of any count and is not put.
 */
export function releaseHeld(ctx: StoreContext, ids: string[]): Promise<void> {
  return ctx.locked(async () => {
    let failure: unknown;
    for (const id of ids) {
      try {
        await giveBack(ctx, id);
      } catch (e) {
        failure ??= e; // the other views are still given back
      }
    }
    if (failure !== undefined) throw failure;
  });
}

/** Removes one hold of `id` and, if it was still recorded, puts its view. */
async function giveBack(ctx: StoreContext, id: string): Promise<void> {
  for (const held of removeHolds(ctx.layout, [id])) await putTaken(ctx, held);
}

/** Puts a held view; a layer force-removed meanwhile has none left. */
async function putTaken(ctx: StoreContext, id: string): Promise<void> {
  try {
    await uncountView(ctx, id);
  } catch (e) {
    if (!(e instanceof LayerNotFound || e instanceof LayerNotMounted)) throw e;
  }
}
