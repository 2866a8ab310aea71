/**
 * View scenarios: what `get` hands out for read-only and read-write layers,
 * read-only views where the backend declares them, reading through deep
 * chains and whiteouts, the chain limit, and `get`/`put` counting.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  LayerInUse,
  LayerNotFound,
  LayerNotMounted,
  StoreError,
} from "../../../mod.ts";
import { describe, mountsUnder, put, whiteout } from "../_helpers.ts";
import { chain } from "./_fixtures.ts";
import { assertOnly, EROFS, type Suite } from "./_harness.ts";

export function viewScenarios(s: Suite): void {
  s.store(
    "read-write layers write into their own dir; the parent is unchanged",
    async ({ store }) => {
      await store.create("base");
      await put(`${(await store.metadata("base")).diff}/f`, "base");
      await store.create("img", "base");
      await store.createReadWrite("ctr", "img");
      const rw = await store.get("ctr");
      await Deno.writeTextFile(`${rw}/new`, "n");
      await Deno.writeTextFile(`${rw}/f`, "changed");
      await store.put("ctr");
      const own = await describe((await store.metadata("ctr")).diff);
      assert.equal(own.get("/new")?.content, "n");
      assert.equal(own.get("/f")?.content, "changed");
      assert.equal(
        (await describe((await store.metadata("base")).diff)).get("/f")
          ?.content,
        "base",
      );
      assert.equal(
        (await describe((await store.metadata("img")).diff)).get("/new"),
        undefined,
      );
      // A read-write base layer's view is its own dir: nothing to mount.
      await store.createReadWrite("scratch");
      const view = await store.get("scratch");
      assert.equal(view, (await store.metadata("scratch")).diff);
      await Deno.writeTextFile(`${view}/x`, "x");
      assert.deepEqual(await mountsUnder(view), []);
      await store.put("scratch");
    },
  );

  s.store(
    "a read-only layer's view rejects writes with EROFS (base layers and layers with parents)",
    {
      unless: (b) =>
        b.capabilities.readOnlyViews
          ? undefined
          : "the backend declares readOnlyViews: false (a view is the layer's own dir)",
    },
    async ({ store }) => {
      await store.create("base");
      await put(`${(await store.metadata("base")).diff}/f`, "base");
      await store.create("img", "base");
      for (const id of ["base", "img"]) {
        const before = await describe((await store.metadata(id)).diff);
        const ro = await store.get(id);
        assert.notEqual(ro, (await store.metadata(id)).diff, id);
        assert.equal(await Deno.readTextFile(`${ro}/f`), "base");
        await assert.rejects(Deno.writeTextFile(`${ro}/x`, "y"), EROFS, id);
        await assert.rejects(Deno.writeTextFile(`${ro}/f`, "y"), EROFS, id);
        await assert.rejects(Deno.mkdir(`${ro}/d`), EROFS, id);
        await assert.rejects(Deno.remove(`${ro}/f`), EROFS, id);
        await assert.rejects(Deno.chmod(`${ro}/f`, 0o600), EROFS, id);
        await store.put(id);
        assert.deepEqual(
          await describe((await store.metadata(id)).diff),
          before,
          id,
        );
      }
    },
  );

  s.store(
    "a get asking a mounted view for another mount label is refused (LayerInUse); the view and its count stay",
    {
      unless: (b) =>
        b.capabilities.mounts
          ? undefined
          : "the backend mounts nothing (labels are unused)",
    },
    async ({ store }) => {
      await store.create("base");
      await store.create("img", "base");
      const view = await store.get("img");
      await assert.rejects(
        store.get("img", {
          mountLabel: "system_u:object_r:container_file_t:s0",
        }),
        (e) =>
          e instanceof LayerInUse &&
          /Cannot give a new mount label to layer "img": it is mounted 1 time/
            .test(e.message),
      );
      assert.equal((await store.metadata("img")).mountLabel, undefined);
      assert.equal((await store.list()).find((l) => l.id === "img")?.mounts, 1);
      assert.equal(await store.get("img"), view); // no label asked: counted
      await store.put("img");
      await store.put("img");
    },
  );

  for (const depth of depths(s)) {
    s.store(`a file in the base is read through ${depth} layers`, async (c) => {
      const { store } = c;
      await store.create("base");
      await put(
        `${(await store.metadata("base")).diff}/etc/hello`,
        "from the base\n",
      );
      const top = await chain(store, "base", depth - 1, "l");
      await store.createReadWrite("ctr", top);
      assert.equal((await store.parents("ctr")).length, depth);
      const view = await store.get("ctr");
      assert.equal(
        await Deno.readTextFile(`${view}/etc/hello`),
        "from the base\n",
      );
      await store.put("ctr");
      // A read-only layer as deep: its view stacks it and its parents as
      // lower dirs (500 at overlay's limit), with no upper dir.
      await store.create("ro", top);
      const ro = await store.get("ro");
      assert.equal(
        await Deno.readTextFile(`${ro}/etc/hello`),
        "from the base\n",
      );
      await store.put("ro");
      assert.deepEqual(await mountsUnder(`${c.root}/mnt`), []);
    });
  }

  s.store(
    "a chain longer than maxDepth is refused with StoreError and leaves nothing",
    {
      unless: (b) =>
        Number.isFinite(b.capabilities.maxDepth)
          ? undefined
          : "the backend declares no chain limit (maxDepth is infinite)",
    },
    async (c) => {
      const { store } = c;
      const max = c.caps.maxDepth;
      await store.create("base");
      const top = await chain(store, "base", max - 1, "l"); // max layers
      await store.create("deepest", top); // max parents: allowed
      assert.equal((await store.parents("deepest")).length, max);
      const ids = (await store.list()).map((l) => l.id);
      for (
        const make of [
          () => store.create("too-deep", "deepest"),
          () => store.createReadWrite("too-deep", "deepest"),
          () => store.applyDiff("too-deep", "deepest", new Uint8Array(1024)),
        ]
      ) {
        await assert.rejects(
          make(),
          (e) => e instanceof StoreError && e.message.includes(String(max)),
        );
      }
      assert.equal(await store.exists("too-deep"), false);
      await assertOnly(c, ids);
    },
  );

  s.store(
    "126 layers where every tenth deletes its parent's file",
    async ({ store }) => {
      const expected = new Set<string>();
      await store.create("l0");
      await put(`${(await store.metadata("l0")).diff}/f0`, "0");
      expected.add("f0");
      for (let i = 1; i < 126; i++) {
        await store.create(`l${i}`, `l${i - 1}`);
        await put(`${(await store.metadata(`l${i}`)).diff}/f${i}`, String(i));
        expected.add(`f${i}`);
        if (i % 10 === 0) {
          await whiteout(store, `l${i}`, `f${i - 1}`);
          expected.delete(`f${i - 1}`);
        }
      }
      const view = await store.get("l125");
      const seen = (await Array.fromAsync(Deno.readDir(view))).map((e) =>
        e.name
      )
        .sort();
      assert.deepEqual(seen, [...expected].sort());
      assert.equal(seen.length, 126 - 12);
      await store.put("l125");
    },
  );

  s.store(
    "gets are counted and share one view; the last put releases it",
    async (c) => {
      const { store } = c;
      await store.create("base");
      await store.createReadWrite("ctr", "base");
      for (const id of ["base", "ctr"]) {
        const a = await store.get(id);
        const b = await store.get(id);
        assert.equal(a, b);
        assert.equal((await store.list()).find((l) => l.id === id)?.mounts, 2);
        const mounted = c.caps.mounts ? [a] : [];
        assert.deepEqual(await mountsUnder(a), mounted, id);
        await store.put(id);
        assert.deepEqual(await mountsUnder(a), mounted, id);
        await store.put(id);
        assert.deepEqual(await mountsUnder(a), [], id);
        assert.equal((await store.list()).find((l) => l.id === id)?.mounts, 0);
      }
    },
  );

  s.store(
    "put without an outstanding get is LayerNotMounted",
    async ({ store }) => {
      await store.create("base");
      await store.create("img", "base");
      await store.createReadWrite("ctr", "img");
      await store.createReadWrite("scratch");
      const notMounted = (id: string) => (e: unknown) =>
        e instanceof LayerNotMounted && e.id === id;
      for (const id of ["base", "img", "ctr", "scratch"]) {
        await assert.rejects(store.put(id), notMounted(id));
        await store.get(id);
        await store.put(id);
        await assert.rejects(store.put(id), notMounted(id));
        assert.equal((await store.list()).find((l) => l.id === id)?.mounts, 0);
      }
      await assert.rejects(store.put("nope"), LayerNotFound);
    },
  );
}

/** Chain depths read through: 128, and the backend's limit where it has one. */
function depths(s: Suite): number[] {
  const max = s.caps.maxDepth;
  return Number.isFinite(max) && max !== 128 ? [128, max] : [128];
}
