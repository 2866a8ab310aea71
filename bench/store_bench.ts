/**
 * Store benchmark: time of `get` (mount) and `put` (unmount) of a read-write
 * layer on chains of 1, 128 and 500 layers (overlay, real mounts, needs
 * root), median of several repetitions, with the ratio to the 1-layer time.
 *
 * @module
 */

import { openStore } from "../mod.ts";
import { median } from "./_util.ts";

const DEPTHS = [1, 128, 500];
const REPS = 15;

/**
 * Runs the store benchmark and prints a table.
 *
 * @example
 * ```ts ignore
 * import { runStoreBench } from "./store_bench.ts";
 * await runStoreBench();
 * ```
 */
export async function runStoreBench(): Promise<void> {
  if (Deno.uid() !== 0) {
    console.log("store bench: skipped (needs root for real mounts)");
    return;
  }
  const tmp = await Deno.makeTempDir({ prefix: "layerfs-bench-" });
  const store = await openStore({ root: `${tmp}/store`, backend: "overlay" });
  try {
    // One chain of 500 layers; the 1/128/500-layer views are containers on its prefixes.
    await store.create("l1");
    await Deno.writeTextFile(`${store.root}/diff/l1/hello`, "hi\n");
    for (let i = 2; i <= Math.max(...DEPTHS); i++) {
      await store.create(`l${i}`, `l${i - 1}`);
    }
    const rows: { depth: number; get: number; put: number }[] = [];
    for (const depth of DEPTHS) {
      const id = `ctr${depth}`;
      // The container sits on l<depth>: its view has `depth` lower layers.
      await store.createReadWrite(id, `l${depth}`);
      const gets: number[] = [];
      const puts: number[] = [];
      for (let r = 0; r < REPS + 2; r++) {
        let t = performance.now();
        const view = await store.get(id);
        const g = performance.now() - t;
        if ((await Deno.readTextFile(`${view}/hello`)) !== "hi\n") {
          throw new Error("bad view");
        }
        t = performance.now();
        await store.put(id);
        const p = performance.now() - t;
        if (r >= 2) { // two warm-up rounds
          gets.push(g);
          puts.push(p);
        }
      }
      rows.push({ depth, get: median(gets), put: median(puts) });
    }
    const base = rows[0];
    console.log(
      `store bench (overlay, ${REPS} reps, median; lower layers = depth):`,
    );
    console.log("depth  get ms   (ratio)  put ms   (ratio)");
    for (const r of rows) {
      console.log(
        `${String(r.depth).padStart(5)}  ${r.get.toFixed(2).padStart(6)}  (${
          (r.get / base.get).toFixed(2)
        }x)  ${r.put.toFixed(2).padStart(6)}  (${
          (r.put / base.put).toFixed(2)
        }x)`,
      );
    }
  } finally {
    await store.cleanup();
    store.close();
    await Deno.remove(tmp, { recursive: true });
  }
}

if (import.meta.main) await runStoreBench();
