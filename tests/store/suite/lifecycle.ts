/**
 * Lifecycle scenarios: create, list, parents, ids, modes and owners,
 * remove, and which layers can be parents.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  BackendNotSupported,
  InvalidLayerId,
  LayerExists,
  LayerHasChildren,
  LayerInUse,
  LayerNotFound,
  openStore,
  ParentNotCommitted,
  ParentNotFound,
} from "../../../mod.ts";
import { backendNames } from "../../../src/backends/registry.ts";
import { isRoot } from "../../_privileged.ts";
import { describe, mountsUnder, put } from "../_helpers.ts";
import { gnuTar } from "../../integration/_tree.ts";
import { assertOnly, entries, storeDirs, type Suite } from "./_harness.ts";

export function lifecycleScenarios(s: Suite): void {
  s.store("create empty: 0755, the store user's, empty view", async (c) => {
    const { store } = c;
    await store.create("base");
    await store.createReadWrite("ctr", "base");
    for (const id of ["base", "ctr"]) {
      const st = await Deno.stat((await store.metadata(id)).diff);
      assert.equal(st.mode! & 0o7777, 0o755);
      assert.deepEqual([st.uid, st.gid], [Deno.uid(), Deno.gid()]);
      const view = await store.get(id);
      assert.deepEqual(await entries(view), []);
      await store.put(id);
    }
    assert.equal(await store.exists("ctr"), true);
    assert.equal(await store.exists("nope"), false);
    assert.deepEqual(await store.parents("ctr"), ["base"]);
    assert.deepEqual(await store.parents("base"), []);
    assert.deepEqual(await store.list(), [
      { id: "base", parent: undefined, readWrite: false, mounts: 0 },
      { id: "ctr", parent: "base", readWrite: true, mounts: 0 },
    ]);
    await assert.rejects(store.create("base"), LayerExists);
    await assert.rejects(store.createReadWrite("ctr", "base"), LayerExists);
    await assertOnly(c, ["base", "ctr"]);
  });

  s.store(
    "odd modes and owners are kept exactly; a child sees its parent exactly",
    async ({ store }) => {
      // Foreign owners need root (chown); without it the tree keeps ours.
      const [u1, g1, u2, g2] = isRoot
        ? [1, 2, 1000, 1001]
        : [Deno.uid()!, Deno.gid()!, Deno.uid()!, Deno.gid()!];
      // A write-only file (0o4222) can be read back only with CAP_DAC_OVERRIDE.
      const setuidMode = isRoot ? 0o4222 : 0o4622;
      if (!isRoot) {
        console.warn(
          "odd modes and owners: files owned by other users (chown) and reading a write-only file need root; " +
            "checking own-user owners and mode 4622 instead of 4222",
        );
      }
      await store.create("base");
      const d = (await store.metadata("base")).diff;
      await Deno.mkdir(`${d}/sticky`);
      await Deno.chown(`${d}/sticky`, u1, g1);
      await Deno.chmod(`${d}/sticky`, 0o1705);
      await put(`${d}/setuid`, "s", setuidMode);
      await put(`${d}/etc/owned`, "o", 0o640, u2, g2);
      await Deno.symlink("../setuid", `${d}/etc/link`);
      const want = await describe(d);
      assert.deepEqual(want.get("/sticky"), {
        kind: "dir",
        mode: 0o1705,
        uid: u1,
        gid: g1,
        content: "",
      });
      assert.deepEqual(want.get("/setuid"), {
        kind: "file",
        mode: setuidMode,
        uid: Deno.uid(),
        gid: Deno.gid()!,
        content: "s",
      });
      assert.deepEqual(want.get("/etc/owned")?.uid, u2);

      await store.create("snap", "base");
      const view = await store.get("snap");
      assert.deepEqual(await describe(view), want);
      await store.put("snap");
      await store.createReadWrite("ctr", "snap");
      const rw = await store.get("ctr");
      assert.deepEqual(await describe(rw), want);
      await store.put("ctr");
    },
  );

  s.store(
    "a read-write layer is no parent: create, createReadWrite and applyDiff on it are ParentNotCommitted",
    async (c) => {
      const { store } = c;
      await store.create("base");
      await store.createReadWrite("rw", "base");
      await store.createReadWrite("rwbase");
      await Deno.mkdir(`${c.src}/t`, { recursive: true });
      await put(`${c.src}/t/f`, "f\n");
      const tar = await gnuTar(`${c.src}/t`);
      for (const parent of ["rw", "rwbase"]) {
        const notCommitted = (e: unknown) =>
          e instanceof ParentNotCommitted && e.parent === parent;
        await assert.rejects(store.create("x", parent), notCommitted);
        await assert.rejects(store.createReadWrite("x", parent), notCommitted);
        await assert.rejects(store.applyDiff("x", parent, tar), notCommitted);
      }
      assert.equal(await store.exists("x"), false);
      await assertOnly(c, ["base", "rw", "rwbase"]);
      // A read-only layer is a parent.
      await store.createReadWrite("x", "base");
      assert.deepEqual(await store.parents("x"), ["base"]);
    },
  );

  s.store(
    "remove: refused while mounted or a parent, forced otherwise",
    async (c) => {
      const { store, root } = c;
      await store.create("base");
      await store.create("mid", "base");
      await store.createReadWrite("ctr", "mid");
      await store.get("ctr");
      await assert.rejects(store.remove("ctr"), LayerInUse);
      await assert.rejects(store.remove("mid"), LayerHasChildren);
      assert.equal(await store.exists("ctr"), true);
      await store.put("ctr");
      await store.remove("ctr");
      assert.equal(await store.exists("ctr"), false);
      await assert.rejects(store.get("ctr"), LayerNotFound);
      await assert.rejects(store.remove("ctr"), LayerNotFound);

      await store.createReadWrite("ctr2", "mid");
      await store.get("ctr2");
      await store.get("ctr2");
      await assert.rejects(
        store.remove("ctr2"),
        (e) => e instanceof LayerInUse && e.mounts === 2,
      );
      // A read-only layer in use is refused too (its view is read-only).
      await store.create("leaf", "mid");
      await store.get("leaf");
      await assert.rejects(store.remove("leaf"), LayerInUse);
      await store.put("leaf");
      // Force takes the named layer's own view, never a descendant's: a
      // mounted descendant is refused and nothing is removed.
      await store.get("base");
      await assert.rejects(
        store.remove("base", { force: true }),
        (e) => e instanceof LayerInUse && e.id === "ctr2" && e.mounts === 2,
      );
      assert.equal((await store.list()).length, 4);
      await store.put("ctr2");
      await store.put("ctr2");
      assert.deepEqual(
        (await store.remove("base", { force: true })).sort(),
        ["base", "ctr2", "leaf", "mid"],
      );
      assert.deepEqual(await store.list(), []);
      assert.deepEqual(await mountsUnder(`${root}/mnt`), []);
      for (const d of storeDirs(c.backend)) {
        assert.deepEqual(await entries(`${root}/${d}`), [], d);
      }
    },
  );

  s.store(
    "create with a missing parent fails and leaves nothing",
    async (c) => {
      const { store } = c;
      await assert.rejects(store.create("child", "nope"), ParentNotFound);
      await assert.rejects(
        store.createReadWrite("child", "nope"),
        ParentNotFound,
      );
      assert.equal(await store.exists("child"), false);
      await assertOnly(c, []);
    },
  );

  s.store(
    "invalid ids are refused by every operation before touching disk",
    async (c) => {
      const { store } = c;
      await store.create("ok");
      await store.createReadWrite("rw", "ok");
      for (
        const bad of [
          "..",
          "a/b",
          "a,b",
          "a:b",
          "a\nb",
          "a\0b",
          "x-removing",
          "",
        ]
      ) {
        await assert.rejects(store.create(bad), InvalidLayerId);
        await assert.rejects(store.createReadWrite(bad), InvalidLayerId);
        await assert.rejects(
          store.applyDiff(bad, undefined, new Uint8Array(1024)),
          InvalidLayerId,
        );
        // "" as a parent means "no parent" (moby's convention), so it is no bad parent.
        if (bad !== "") {
          await assert.rejects(store.create("fine", bad), InvalidLayerId);
        }
        await assert.rejects(store.get(bad), InvalidLayerId);
        await assert.rejects(store.put(bad), InvalidLayerId);
        await assert.rejects(store.remove(bad), InvalidLayerId);
        await assert.rejects(store.exists(bad), InvalidLayerId);
        await assert.rejects(store.parents(bad), InvalidLayerId);
        await assert.rejects(store.metadata(bad), InvalidLayerId);
        await assert.rejects(store.usage(bad), InvalidLayerId);
        await assert.rejects(store.commit(bad, "new"), InvalidLayerId);
        await assert.rejects(store.commit("rw", bad), InvalidLayerId);
      }
      assert.deepEqual((await store.list()).map((l) => l.id), ["ok", "rw"]);
      await assertOnly(c, ["ok", "rw"]);
    },
  );

  s.store("reopening with another backend is refused", async (c) => {
    for (const other of backendNames().filter((n) => n !== s.name)) {
      await assert.rejects(
        openStore({ root: c.root, backend: other }),
        BackendNotSupported,
        other,
      );
    }
    const auto = await openStore({ root: c.root, backend: "auto" });
    assert.equal(auto.backend, s.name);
    auto.close();
    assert.equal((await c.reopen()).backend, s.name);
  });
}
