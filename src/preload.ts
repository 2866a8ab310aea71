/**
 * Loads, at start-up, every module layerfs otherwise loads on first use
 * (`src/_load_module.ts`): import it once, before or beside `mod.ts`.
 *
 * Why you might: a process that runs layerfs from a local copy without read
 * access to that copy (say, `--allow-ffi --allow-read=/var/lib/layerfs`)
 * cannot load code later, and a deployment that fetches or vendors its
 * modules ahead (`deno cache`, an offline machine) sees only the modules a
 * static import names. With this import the whole of layerfs is in the
 * start-up graph, and later loads take the modules already there. What it
 * costs: ~14 ms more of every process's start (2-core VM, Deno 2.9.6: 35
 * against 21.5 ms for a script importing mod.ts), which is why `mod.ts`
 * does not do it.
 *
 * `scripts/compile.ts` embeds it (`--include`) for the same reason;
 * `tests/compile/include_test.ts` checks that it names every module loaded
 * on first use.
 *
 * @example
 * ```ts
 * import "./preload.ts";
 * import assert from "node:assert/strict";
 * import { openStore } from "../mod.ts";
 * const root = await Deno.makeTempDir();
 * const store = await openStore({ root, backend: "vfs" });
 * assert.deepEqual(await store.list(), []);
 * store.close();
 * await Deno.remove(root, { recursive: true });
 * ```
 *
 * @module
 */

import "./archive/compress/decompress.ts";
import "./archive/compress/mod.ts";
import "./archive/compress/tar_source.ts";
import "./archive/changes/layer_changes.ts";
import "./archive/changes/layer_size.ts";
import "./archive/export/_tar_pump.ts";
import "./archive/export/_walk.ts";
import "./archive/export/layer_tar.ts";
import "./archive/tar/encode.ts";
import "./archive/tarsplit/mod.ts";
import "./cli/_commands.ts";
import "./cli/check.ts";
import "../helper/install.ts";
import "./image/images.ts";
import "./image/load.ts";
import "./image/prune.ts";
import "./image/save.ts";
import "./mount/mounter.ts";
import "./mount/perform.ts";
import "./registry/_transport.ts";
import "./registry/auth_file.ts";
import "./registry/client.ts";
import "./registry/pull.ts";
import "./registry/push.ts";
import "./store/_chain.ts";
import "./store/open.ts";
import "./store/plan_layer.ts";
