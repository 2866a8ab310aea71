/**
 * A separate process for the multi-process store tests.
 *
 *   hold <root> <id>    get, print the path, wait for stdin to close, put
 *   churn <root> <base> create/get/put/remove layers on <base> until killed
 *
 * @module
 */

import { openStore } from "../../../mod.ts";

const [op, root, id] = Deno.args;
const store = await openStore({ root });
if (op === "hold") {
  console.log(await store.get(id));
  for await (const _ of Deno.stdin.readable) { /* wait for EOF */ }
  await store.put(id);
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
