/** Opening with `auto` on this host (not per backend: it is the choice among them). */
import assert from "node:assert/strict";
import { openStore } from "../../mod.ts";
import { privilegedTest, tempDir } from "../_privileged.ts";

privilegedTest(
  "store: auto picks overlay here, and status says why",
  async () => {
    await using tmp = await tempDir();
    const store = await openStore({ root: `${tmp.path}/s`, backend: "auto" });
    assert.equal(store.backend, "overlay");
    const status = new Map(await store.status());
    assert.equal(status.get("backend"), "overlay");
    assert.match(status.get("backend reason")!, /overlay: kernel has it/);
    assert.equal(status.get("root"), store.root);
    assert.equal(status.get("layers"), "0");
    store.close();
  },
);
