/**
 * usage scenarios: bytes allocated and inodes of a layer's own dir and of
 * its chain, hard links once (containerd's `Usage`).
 *
 * @module
 */

import assert from "node:assert/strict";
import { InvalidLayerId, LayerNotFound } from "../../../mod.ts";
import { randomBytes } from "./_fixtures.ts";
import type { Suite } from "./_harness.ts";

const BASE_BYTES = 300_000;
const APP_BYTES = 120_000;

export function usageScenarios(s: Suite): void {
  s.store(
    "usage: a file of known size counts its bytes and inodes; the chain is the layer plus its parents; hard links once",
    async (c) => {
      const { store } = c;
      await store.create("base");
      const base = (await store.metadata("base")).diff;
      await Deno.writeFile(`${base}/blob`, randomBytes(BASE_BYTES));
      const u0 = await store.usage("base");
      assert.ok(u0.layer.size >= BASE_BYTES, JSON.stringify(u0));
      assert.equal(u0.layer.inodes, 2); // the dir and the file
      assert.deepEqual(u0.chain, u0.layer);

      // Two children, the same but for a hard link in one.
      for (const id of ["app", "app-linked"]) {
        await store.create(id, "base");
        const d = (await store.metadata(id)).diff;
        await Deno.mkdir(`${d}/bin`);
        await Deno.writeFile(`${d}/bin/tool`, randomBytes(APP_BYTES));
        if (id === "app-linked") {
          await Deno.link(`${d}/bin/tool`, `${d}/bin/tool-link`);
        }
      }
      const app = await store.usage("app");
      const linked = await store.usage("app-linked");
      // Own dir: the dir, bin/, bin/tool, and (a backend that copies its
      // parent) the parent's file.
      const copied = c.caps.copiesParent ? 1 : 0;
      assert.equal(app.layer.inodes, 3 + copied, JSON.stringify(app));
      assert.ok(
        app.layer.size >= APP_BYTES + copied * BASE_BYTES,
        JSON.stringify(app),
      );
      assert.deepEqual(linked.layer, app.layer, "a hard link counts once");
      for (const u of [app, linked]) {
        assert.deepEqual(u.chain, {
          size: u.layer.size + u0.layer.size,
          inodes: u.layer.inodes + u0.layer.inodes,
        });
      }
      await store.create("top", "app");
      const top = await store.usage("top");
      assert.deepEqual(top.chain, {
        size: top.layer.size + app.layer.size + u0.layer.size,
        inodes: top.layer.inodes + app.layer.inodes + u0.layer.inodes,
      });
      await assert.rejects(store.usage("nope"), LayerNotFound);
      await assert.rejects(store.usage("../x"), InvalidLayerId);
    },
  );
}
