/**
 * The store's thin wrappers over the archive contract: applyDiff builds in
 * staging and publishes atomically (nothing visible on failure), re-applies
 * onto an existing empty layer with an atomic swap, and diff/changes/diffSize
 * take the direct parent or any other layer (see naive_diff_test.ts).
 */
import assert from "node:assert/strict";
import { LayerfsError, LayerInUse, openStore, type Store } from "../../mod.ts";
import { privilegedTest, tempDir } from "../_privileged.ts";
import { describe, put } from "./_helpers.ts";
import { collect, gnuTar as tarOf, gnuTarList } from "../integration/_tree.ts";

/** Member names of a diff stream, without "./" and trailing "/". */
async function tarNames(stream: ReadableStream<Uint8Array>): Promise<string[]> {
  return (await gnuTarList(await collect(stream)))
    .map((n) => n.replace(/^\.\//, "").replace(/\/$/, ""))
    .filter((n) => n && n !== ".");
}

async function entries(dir: string): Promise<string[]> {
  return (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();
}

for (const backend of ["overlay", "vfs"] as const) {
  const t = (name: string, fn: (store: Store, src: string) => Promise<void>) =>
    privilegedTest(`applyDiff (${backend}): ${name}`, async () => {
      await using tmp = await tempDir();
      const store = await openStore({ root: `${tmp.path}/store`, backend });
      try {
        await fn(store, `${tmp.path}/src`);
      } finally {
        await store.cleanup();
        store.close();
      }
    });

  t(
    "a new layer is published whole; its diff lists its files",
    async (store, src) => {
      await put(`${src}/base/etc/hosts`, "h\n");
      await put(`${src}/base/bin/sh`, "#!\n", 0o755);
      const n = await store.applyDiff(
        "base",
        undefined,
        await tarOf(`${src}/base`),
      );
      assert.equal(typeof n, "number");
      assert.equal(n, await store.diffSize("base"));
      assert.deepEqual(await store.parents("base"), []);
      await put(`${src}/child/etc/new`, "n\n");
      await store.applyDiff("child", "base", await tarOf(`${src}/child`));
      const view = await store.get("child");
      const tree = await describe(view);
      assert.equal(tree.get("/etc/hosts")?.content, "h\n");
      assert.equal(tree.get("/etc/new")?.content, "n\n");
      assert.equal(tree.get("/bin/sh")?.mode, 0o755);
      await store.put("child");
      const names = await tarNames(store.diff("child"));
      assert.ok(names.includes("etc/new"), names.join(","));
      assert.ok(!names.includes("etc/hosts"), names.join(","));
      assert.deepEqual(await entries(`${store.root}/staging`), []);
    },
  );

  t("a failing tar leaves nothing visible", async (store, src) => {
    await put(`${src}/base/a`, "x".repeat(5000));
    const good = await tarOf(`${src}/base`);
    const truncated = good.slice(0, 1024 + 700); // header + part of the data
    await assert.rejects(
      store.applyDiff("bad", undefined, truncated),
      LayerfsError,
    );
    assert.equal(await store.exists("bad"), false);
    for (const d of ["diff", "layers", "meta", "staging", "work", "mnt"]) {
      assert.deepEqual(await entries(`${store.root}/${d}`), [], d);
    }
  });

  t(
    "applying onto an existing empty layer swaps content in; refused while mounted",
    async (store, src) => {
      await store.create("base");
      await store.create("img", "base");
      await put(`${src}/img/usr/x`, "x\n");
      const tar = await tarOf(`${src}/img`);
      await store.get("img");
      await assert.rejects(store.applyDiff("img", "base", tar), LayerInUse);
      await store.put("img");
      await assert.rejects(
        store.applyDiff("img", undefined, tar),
        /exists with parent "base"/,
      );
      await store.applyDiff("img", "base", tar);
      assert.equal(
        await Deno.readTextFile(`${(await store.metadata("img")).diff}/usr/x`),
        "x\n",
      );
      assert.deepEqual(await entries(`${store.root}/staging`), []);
      assert.deepEqual((await store.list()).map((l) => l.id), ["base", "img"]);
    },
  );

  t("diff/changes/diffSize take a grandparent too", async (store) => {
    await store.create("a");
    await store.create("b", "a");
    await store.create("c", "b");
    assert.deepEqual(await store.changes("c", "a"), []);
    assert.equal(await store.diffSize("c", "a"), 0);
    assert.deepEqual(await tarNames(store.diff("c", "a")), []);
    assert.deepEqual(await store.changes("c", "b"), []);
  });
}
