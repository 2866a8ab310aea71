/**
 * A process that applies a layer from its standard input, for the tar-split
 * crash tests (it is killed with SIGKILL part way):
 *
 *   _apply_child.ts <root> <id>   open the store, print "ready", applyDiff
 *                                 <id> from stdin, print "done"
 *
 * @module
 */

import { openStore } from "../../../mod.ts";

const [root, id] = Deno.args;
const store = await openStore({ root, backend: "vfs" });
console.log("ready");
await store.applyDiff(id, undefined, Deno.stdin.readable);
console.log("done");
store.close();
