/**
 * A separate process for the multi-process store tests.
 *
 *   hold <root> <id>          get, print the path, wait for stdin to close, put
 *   churn <root> <base>       create/get/put/remove layers on <base> until killed
 *   stall-mount <root> <id>   get, whose mount is made and then never returns:
 *                             prints "mounted" and waits (to be killed between
 *                             the mount and its count)
 *   stale-stall-mount <root> <id>
 *                             get twice, unmount the view behind the store's
 *                             back (the count of 2 is stale), then as
 *                             stall-mount
 *   stall-unmount <root> <id> put, whose unmount is made and then never returns:
 *                             prints "unmounted" and waits (killed between the
 *                             unmount and the uncount)
 *   lock <root>               takes the store lock, prints "locked", holds it
 *                             until stdin closes
 *   diff-hold <root> <id> <parent>
 *                             reads the first chunk of diff(id, parent) (its
 *                             views held), prints "holding", waits for stdin
 *                             to close, cancels the stream (gives them back)
 *
 * @module
 */

import { directMounter, type Mounter, openStore } from "../../../mod.ts";
import { unmountTarget } from "../../../src/mount/perform.ts";

const [op, root, id, parent] = Deno.args;
let stallNow = false;

/** Prints `word`, then waits until the parent closes stdin (or kills us). */
async function announceAndWait(word: string): Promise<void> {
  console.log(word);
  for await (const _ of Deno.stdin.readable) { /* wait for EOF */ }
}

const stalling: Mounter = {
  async mount(r, i, plan) {
    await directMounter.mount(r, i, plan);
    if (stallNow && op.endsWith("stall-mount")) {
      await announceAndWait("mounted");
    }
  },
  async unmount(r, i, target) {
    await directMounter.unmount(r, i, target);
    if (stallNow && op === "stall-unmount") await announceAndWait("unmounted");
  },
};

if (op === "lock") {
  const f = await Deno.open(`${root}/run/lock`, { read: true, write: true });
  await f.lock(true);
  await announceAndWait("locked");
  f.close();
  Deno.exit(0);
}
const store = await openStore({
  root,
  mounter: op.includes("stall-") ? stalling : undefined,
});
if (op === "hold") {
  console.log(await store.get(id));
  for await (const _ of Deno.stdin.readable) { /* wait for EOF */ }
  await store.put(id);
} else if (op === "stall-mount") {
  stallNow = true;
  await store.get(id);
} else if (op === "stale-stall-mount") {
  const view = await store.get(id);
  await store.get(id);
  unmountTarget(view);
  stallNow = true;
  await store.get(id);
} else if (op === "stall-unmount") {
  stallNow = true;
  await store.put(id);
} else if (op === "diff-hold") {
  const reader = store.diff(id, parent).getReader();
  if ((await reader.read()).done) throw new Error("the diff ended at once");
  await announceAndWait("holding");
  await reader.cancel();
} else if (op === "churn") {
  const tag = crypto.randomUUID().slice(0, 6);
  console.log("ready");
  for (let i = 0;; i++) {
    const img = `img-${tag}-${i}`;
    const ctr = `ctr-${tag}-${i}`;
    await store.create(img, id);
    await store.createReadWrite(ctr, img);
    const view = await store.get(ctr);
    await Deno.writeTextFile(`${view}/file-${i}`, "data");
    if (i % 3 !== 0) await store.put(ctr);
    if (i % 2 === 0) {
      if (i % 3 === 0) await store.put(ctr);
      await store.remove(ctr);
      await store.remove(img);
    }
  }
} else {
  throw new Error(`unknown op ${op}`);
}
store.close();
