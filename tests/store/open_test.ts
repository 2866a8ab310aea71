/** Opening with `auto` on this host (not per backend: it is the choice among them). */
import assert from "node:assert/strict";
import { BackendNotSupported, openStore, StoreError } from "../../mod.ts";
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

Deno.test("store: an unknown backend name is BackendNotSupported, and nothing is made", async () => {
  await using tmp = await tempDir();
  const root = `${tmp.path}/s`;
  await assert.rejects(
    openStore({ root, backend: "zfs" as "vfs" }),
    (e: unknown) =>
      e instanceof BackendNotSupported && e.backend === "zfs" &&
      e.message ===
        'Backend "zfs" cannot be used: layerfs has no such backend; use one of auto, overlay, aufs, vfs',
  );
  await assert.rejects(Deno.lstat(root), Deno.errors.NotFound);
});

Deno.test("store: a root that is a file (or under one) is a StoreError naming it, and the file stays as it was", async () => {
  await using tmp = await tempDir();
  const file = `${tmp.path}/file`;
  await Deno.writeTextFile(file, "x");
  await Deno.symlink(file, `${tmp.path}/link`);
  for (const root of [file, `${tmp.path}/link`]) {
    await assert.rejects(
      openStore({ root, backend: "vfs" }),
      (e: unknown) =>
        e instanceof StoreError &&
        e.message ===
          `Cannot open a store at ${root}: it is not a directory; give a directory, or a path that does not exist yet, as the root`,
    );
  }
  await assert.rejects(
    openStore({ root: `${file}/store`, backend: "vfs" }),
    (e: unknown) =>
      e instanceof StoreError &&
      e.message.startsWith(`Cannot open a store at ${file}/store: `),
  );
  assert.equal(await Deno.readTextFile(file), "x");
  assert.deepEqual(
    (await Array.fromAsync(Deno.readDir(tmp.path))).map((e) => e.name).sort(),
    ["file", "link"],
  );
});
