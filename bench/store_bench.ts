/**
 * Store benchmark: time of `get` (mount) and `put` (unmount) of a read-write
 * layer on 1, 128 and 499 parents (a 500-layer view; overlay, real mounts, needs
 * root), each next to the bare kernel work it wraps, measured in the same
 * run and interleaved: the same overlay made with nothing but
 * fsopen/fsconfig/fsmount/move_mount, and removed with one umount2. On a
 * shared machine the kernel's part swings by several times (an overlay
 * umount syncs the upper filesystem, which waits for everyone's writes), so
 * the figure to compare across runs is the overhead: the median of
 * `get - bare mount` (and `put - bare umount`) over the paired runs. A
 * second table times get and put of a view that is already mounted (a count
 * change only, no mount syscalls).
 *
 * @module
 */

import { openStore, planLayerMount } from "../mod.ts";
import { close } from "../src/sys/fd_linux.ts";
import { cstr, libc } from "../src/sys/libc_linux.ts";
import { median } from "./_util.ts";

// 499: a container on 499 parents is a 500-layer view, overlay's limit (the
// backend keeps a lower dir for a read-only view of its top layer).
const DEPTHS = [1, 128, 499];
const REPS = 21;
const WARMUP = 2;

/** The mount alone: what `get` of an unmounted view cannot avoid. */
function bareMount(
  lowers: Uint8Array[],
  upper: string,
  work: string,
  target: string,
): void {
  const c = libc();
  const fd = c.fsopen(cstr("overlay"), 1);
  if (fd < 0) throw new Error("fsopen failed");
  try {
    const key = cstr("lowerdir+");
    for (const l of lowers) {
      if (c.fsconfig(fd, 1, key, l as Uint8Array<ArrayBuffer>, 0) < 0) {
        throw new Error("fsconfig lowerdir+ failed");
      }
    }
    c.fsconfig(fd, 1, cstr("upperdir"), cstr(upper), 0);
    c.fsconfig(fd, 1, cstr("workdir"), cstr(work), 0);
    if (c.fsconfig(fd, 6, null, null, 0) < 0) throw new Error("create failed");
    const mfd = c.fsmount(fd, 1, 0x2 | 0x4); // nosuid, nodev
    if (mfd < 0) throw new Error("fsmount failed");
    const r = c.move_mount(mfd, cstr(""), -100, cstr(target), 0x4);
    close(mfd);
    if (r < 0) throw new Error("move_mount failed");
  } finally {
    close(fd);
  }
}

function bareUmount(target: string): void {
  if (libc().umount2(cstr(target), 2) < 0) throw new Error("umount2 failed");
}

const fmt = (ms: number) => ms.toFixed(3).padStart(7);
const load = () => Deno.loadavg().map((n) => n.toFixed(2)).join(" ");

/**
 * Runs the store benchmark and prints its tables.
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
  const before = load();
  try {
    // One chain of 499 layers; the 1/128/499-parent views are containers on its prefixes.
    await store.create("l1");
    await Deno.writeTextFile(`${store.root}/diff/l1/hello`, "hi\n");
    for (let i = 2; i <= Math.max(...DEPTHS); i++) {
      await store.create(`l${i}`, `l${i - 1}`);
    }
    const rows: string[] = [];
    const counted: string[] = [];
    for (const depth of DEPTHS) {
      const id = `ctr${depth}`;
      // The container sits on l<depth>: its view has `depth` lower layers.
      await store.createReadWrite(id, `l${depth}`);
      const plan = await planLayerMount(store.root, id);
      if (
        plan.kind !== "overlay" || plan.upperdir === undefined ||
        plan.workdir === undefined
      ) {
        throw new Error(`${id}: not a read-write overlay plan`);
      }
      const lowers = plan.lowerdirs.map(cstr);
      const t: Record<"get" | "put" | "mount" | "umount", number[]> = {
        get: [],
        put: [],
        mount: [],
        umount: [],
      };
      for (let r = 0; r < REPS + WARMUP; r++) {
        const keep = r >= WARMUP;
        const storeFirst = r % 2 === 0; // alternate which goes first
        for (const which of storeFirst ? [0, 1] : [1, 0]) {
          if (which === 0) {
            let s = performance.now();
            const view = await store.get(id);
            const g = performance.now() - s;
            if ((await Deno.readTextFile(`${view}/hello`)) !== "hi\n") {
              throw new Error("bad view");
            }
            s = performance.now();
            await store.put(id);
            const p = performance.now() - s;
            if (keep) t.get.push(g), t.put.push(p);
          } else {
            let s = performance.now();
            bareMount(lowers, plan.upperdir, plan.workdir, plan.target);
            const m = performance.now() - s;
            s = performance.now();
            bareUmount(plan.target);
            const u = performance.now() - s;
            if (keep) t.mount.push(m), t.umount.push(u);
          }
        }
      }
      const over = (a: number[], b: number[]) =>
        median(a.map((x, i) => x - b[i]));
      rows.push(
        `${String(depth).padStart(5)}  ${fmt(median(t.get))} ${
          fmt(median(t.mount))
        } ${fmt(over(t.get, t.mount))}   ${fmt(median(t.put))} ${
          fmt(median(t.umount))
        } ${fmt(over(t.put, t.umount))}`,
      );

      // Count-only: the view stays mounted by one outer get.
      await store.get(id);
      const g: number[] = [];
      const p: number[] = [];
      for (let r = 0; r < REPS + WARMUP; r++) {
        let s = performance.now();
        await store.get(id);
        const a = performance.now() - s;
        s = performance.now();
        await store.put(id);
        if (r >= WARMUP) g.push(a), p.push(performance.now() - s);
      }
      await store.put(id);
      counted.push(
        `${String(depth).padStart(5)}  ${fmt(median(g))}  ${fmt(median(p))}`,
      );
    }
    console.log(
      `store bench (overlay, ${REPS} interleaved reps, medians in ms; lower layers = depth; load before: ${before}, after: ${load()}):`,
    );
    console.log("depth      get    bare  overhd       put    bare  overhd");
    console.log("          (get)  mount  get-mnt     (put)  umount  put-um");
    for (const r of rows) console.log(r);
    console.log("get/put of a view already mounted (count only):");
    console.log("depth      get      put");
    for (const r of counted) console.log(r);
  } finally {
    await store.cleanup();
    store.close();
    await Deno.remove(tmp, { recursive: true });
  }
}

if (import.meta.main) await runStoreBench();
