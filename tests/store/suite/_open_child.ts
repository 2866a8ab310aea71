/**
 * A separate process for the suite's failed-first-open scenario, run as
 * another user: opens a store at `<root>` with `<backend>` and prints the
 * error's name (or "opened").
 *
 *   _open_child.ts <root> <backend>
 *
 * @module
 */

import { type BackendName, openStore } from "../../../mod.ts";

const [root, backend] = Deno.args;
try {
  const store = await openStore({ root, backend: backend as BackendName });
  store.close();
  console.log("opened");
} catch (e) {
  console.log((e as Error).name);
}
