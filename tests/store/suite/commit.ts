/**
 * commit scenarios: a read-write layer becomes a read-only one by renames
 * (content kept, the old id gone, the new one a parent), the refusals, and
 * recovery of a commit that crashed on either side of its commit point.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  LayerExists,
  LayerInUse,
  LayerNotFound,
  LayerNotWritable,
} from "../../../mod.ts";
import { exists } from "../../../src/_fs.ts";
import { StoreLayout } from "../../../src/layout.ts";
import { describe, put } from "../_helpers.ts";
import { withView } from "./_fixtures.ts";
import { assertOnly, EROFS, type StoreCase, type Suite } from "./_harness.ts";

/** base (one file) and read-write `ctr` on it, changed through its view. */
async function container(c: StoreCase): Promise<void> {
  const { store } = c;
  await store.create("base");
  const d = (await store.metadata("base")).diff;
  await put(`${d}/etc/hosts`, "h\n");
  await put(`${d}/etc/passwd`, "p\n");
  await store.createReadWrite("ctr", "base");
  await withView(store, "ctr", async (r) => {
    await put(`${r}/etc/hosts`, "changed\n");
    await Deno.remove(`${r}/etc/passwd`);
    await put(`${r}/app/run`, "#!/bin/sh\n", 0o755);
  });
}

const CONTAINER_VIEW = [
  ["/app", "dir"],
  ["/app/run", "file"],
  ["/etc", "dir"],
  ["/etc/hosts", "file"],
];

export function commitScenarios(s: Suite): void {
  s.store(
    "commit keeps the content; the old id is gone; the new layer is read-only and a parent",
    async (c) => {
      const { store } = c;
      await container(c);
      const own = await describe((await store.metadata("ctr")).diff);
      const view = await withView(store, "ctr", describe);
      assert.deepEqual([...view].map(([p, e]) => [p, e.kind]), CONTAINER_VIEW);
      await store.commit("ctr", "img");
      assert.equal(await store.exists("ctr"), false);
      await assert.rejects(store.get("ctr"), LayerNotFound);
      await assert.rejects(store.parents("ctr"), LayerNotFound);
      assert.deepEqual(await store.list(), [
        { id: "base", parent: undefined, readWrite: false, mounts: 0 },
        { id: "img", parent: "base", readWrite: false, mounts: 0 },
      ]);
      assert.equal((await store.metadata("img")).readWrite, "false");
      assert.deepEqual(await describe((await store.metadata("img")).diff), own);
      assert.deepEqual(await withView(store, "img", describe), view);
      if (c.caps.readOnlyViews) {
        await withView(store, "img", async (r) => {
          await assert.rejects(Deno.writeTextFile(`${r}/x`, "x"), EROFS);
        });
      }
      // The new layer is a parent; a read-write base layer commits too.
      await store.createReadWrite("ctr2", "img");
      assert.deepEqual(await withView(store, "ctr2", describe), view);
      await store.createReadWrite("scratch");
      await withView(store, "scratch", (r) => put(`${r}/s`, "s\n"));
      await store.commit("scratch", "scratch-img");
      await store.create("on-scratch", "scratch-img");
      assert.equal(
        (await withView(store, "on-scratch", describe)).get("/s")?.content,
        "s\n",
      );
      await assertOnly(c, [
        "base",
        "ctr2",
        "img",
        "on-scratch",
        "scratch-img",
      ]);
      // The backend's own per-layer entries follow the layer (overlay: work/<id>).
      const layout = new StoreLayout(c.root);
      for (const p of Object.values(c.backend.layerPaths(layout, "ctr"))) {
        assert.equal(await exists(p), false, p);
      }
      for (const p of Object.values(c.backend.layerPaths(layout, "img"))) {
        assert.equal(await exists(p), true, p);
      }
    },
  );

  s.store(
    "commit is refused while mounted, of a read-only layer, onto an existing id, of a missing layer",
    async (c) => {
      const { store } = c;
      await container(c);
      await store.create("taken", "base");
      const own = await describe((await store.metadata("ctr")).diff);
      await store.get("ctr");
      await store.get("ctr");
      await assert.rejects(
        store.commit("ctr", "img"),
        (e) => e instanceof LayerInUse && e.id === "ctr" && e.mounts === 2,
      );
      await store.put("ctr");
      await assert.rejects(store.commit("ctr", "img"), LayerInUse);
      await store.put("ctr");
      await assert.rejects(
        store.commit("base", "img"),
        (e) => e instanceof LayerNotWritable && e.id === "base",
      );
      await assert.rejects(
        store.commit("ctr", "taken"),
        (e) => e instanceof LayerExists && e.id === "taken",
      );
      await assert.rejects(store.commit("ctr", "base"), LayerExists);
      await assert.rejects(store.commit("nope", "img"), LayerNotFound);
      assert.deepEqual(await describe((await store.metadata("ctr")).diff), own);
      assert.deepEqual(
        (await store.list()).map((l) => [l.id, l.readWrite]),
        [["base", false], ["ctr", true], ["taken", false]],
      );
      await assertOnly(c, ["base", "ctr", "taken"]);
      // Unmounted, it commits.
      await store.commit("ctr", "img");
      assert.deepEqual(await describe((await store.metadata("img")).diff), own);
    },
  );

  s.store(
    "a commit that crashed after its commit point is finished on open",
    async (c) => {
      const { store, root } = c;
      await container(c);
      const own = await describe((await store.metadata("ctr")).diff);
      const view = await withView(store, "ctr", describe);
      // What commit leaves when it dies right after its commit point:
      // meta/<new> says where it came from, layers/<rw> is renamed to
      // layers/<new>, everything else still has the old name.
      await Deno.writeTextFile(
        `${root}/meta/img`,
        JSON.stringify({ readWrite: false, committedFrom: "ctr" }),
      );
      await Deno.rename(`${root}/layers/ctr`, `${root}/layers/img`);
      const again = await c.reopen();
      assert.deepEqual(await again.list(), [
        { id: "base", parent: undefined, readWrite: false, mounts: 0 },
        { id: "img", parent: "base", readWrite: false, mounts: 0 },
      ]);
      assert.equal(await again.exists("ctr"), false);
      assert.deepEqual(await describe((await again.metadata("img")).diff), own);
      assert.deepEqual(await withView(again, "img", describe), view);
      await assertOnly(c, ["base", "img"]);
      const meta = JSON.parse(await Deno.readTextFile(`${root}/meta/img`));
      assert.equal(meta.committedFrom, undefined);
      assert.equal(meta.readWrite, false);
      // It is a complete layer: a parent, removable, views on it work.
      await again.createReadWrite("ctr2", "img");
      assert.deepEqual(await withView(again, "ctr2", describe), view);
      await again.remove("ctr2");
      await again.remove("img");
      await assertOnly(c, ["base"]);
    },
  );

  s.store(
    "a commit that crashed before its commit point leaves the read-write layer as it was",
    async (c) => {
      const { store, root } = c;
      await container(c);
      const own = await describe((await store.metadata("ctr")).diff);
      await Deno.writeTextFile(
        `${root}/meta/img`,
        JSON.stringify({ readWrite: false, committedFrom: "ctr" }),
      );
      const again = await c.reopen();
      assert.deepEqual(
        (await again.list()).map((l) => [l.id, l.readWrite]),
        [["base", false], ["ctr", true]],
      );
      assert.deepEqual(await describe((await again.metadata("ctr")).diff), own);
      await assertOnly(c, ["base", "ctr"]);
      await again.commit("ctr", "img");
      assert.deepEqual(await describe((await again.metadata("img")).diff), own);
    },
  );
}
