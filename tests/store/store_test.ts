/**
 * The store's conformance suite, with real mounts: the same scenarios run on
 * every backend this machine can run (overlay and vfs; aufs is tested as
 * plans in tests/backends), as containerd's snapshotter test suite does.
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
  ParentNotFound,
  performMountPlan,
  planLayerMount,
  type Store,
} from "../../mod.ts";
import { privilegedTest, tempDir } from "../_privileged.ts";
import { describe, mountsUnder, put, whiteout } from "./_helpers.ts";

async function chain(
  store: Store,
  base: string,
  n: number,
  prefix: string,
): Promise<string> {
  let prev = base;
  for (let i = 1; i <= n; i++) {
    await store.create(`${prefix}${i}`, prev);
    prev = `${prefix}${i}`;
  }
  return prev;
}

for (const backend of ["overlay", "vfs"] as const) {
  const t = (name: string, fn: (store: Store, root: string) => Promise<void>) =>
    privilegedTest(`store (${backend}): ${name}`, async () => {
      await using tmp = await tempDir();
      const store = await openStore({ root: `${tmp.path}/store`, backend });
      try {
        assert.equal(store.backend, backend);
        await fn(store, store.root);
      } finally {
        await store.cleanup();
        store.close();
      }
      assert.deepEqual(await mountsUnder(tmp.path), []);
    });

  t("create empty: 0755, root-owned, empty view", async (store) => {
    await store.create("base");
    await store.createReadWrite("ctr", "base");
    for (const id of ["base", "ctr"]) {
      const st = await Deno.stat((await store.metadata(id)).diff);
      assert.equal(st.mode! & 0o7777, 0o755);
      assert.deepEqual([st.uid, st.gid], [0, 0]);
      const view = await store.get(id);
      assert.deepEqual(await Array.fromAsync(Deno.readDir(view)), []);
      await store.put(id);
    }
    assert.equal(await store.exists("ctr"), true);
    assert.deepEqual(await store.parents("ctr"), ["base"]);
    assert.deepEqual(await store.list(), [
      { id: "base", parent: undefined, readWrite: false, mounts: 0 },
      { id: "ctr", parent: "base", readWrite: true, mounts: 0 },
    ]);
    await assert.rejects(store.create("base"), LayerExists);
  });

  t(
    "odd modes and owners are kept exactly; a snapshot sees its parent exactly",
    async (store) => {
      await store.create("base");
      const d = (await store.metadata("base")).diff;
      await Deno.mkdir(`${d}/sticky`);
      await Deno.chown(`${d}/sticky`, 1, 2);
      await Deno.chmod(`${d}/sticky`, 0o1705);
      await put(`${d}/setuid`, "s", 0o4222);
      await put(`${d}/etc/owned`, "o", 0o640, 1000, 1001);
      await Deno.symlink("../setuid", `${d}/etc/link`);
      const want = await describe(d);
      assert.deepEqual(want.get("/sticky"), {
        kind: "dir",
        mode: 0o1705,
        uid: 1,
        gid: 2,
        content: "",
      });
      assert.deepEqual(want.get("/setuid"), {
        kind: "file",
        mode: 0o4222,
        uid: 0,
        gid: 0,
        content: "s",
      });

      await store.create("snap", "base");
      const view = await store.get("snap");
      assert.deepEqual(await describe(view), want);
      await store.put("snap");
    },
  );

  t(
    "read-write layers write into their own dir; read-only layers get a read-only view",
    async (store) => {
      await store.create("base");
      await put(`${(await store.metadata("base")).diff}/f`, "base");
      await store.create("img", "base");
      await store.createReadWrite("ctr", "img");
      const ro = await store.get("img");
      if (backend === "overlay") {
        await assert.rejects(
          Deno.writeTextFile(`${ro}/x`, "y"),
          /Read-only file system|EROFS|os error 30/,
        );
      }
      await store.put("img");
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
    },
  );

  for (const depth of backend === "overlay" ? [128, 500] : [128]) {
    t(`a file in the base is read through ${depth} layers`, async (store) => {
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
      assert.deepEqual(await mountsUnder(`${store.root}/mnt`), []);
    });
  }

  t("126 layers where every tenth deletes its parent's file", async (store) => {
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
    const seen = (await Array.fromAsync(Deno.readDir(view))).map((e) => e.name)
      .sort();
    assert.deepEqual(seen, [...expected].sort());
    assert.equal(seen.length, 126 - 12);
    await store.put("l125");
  });

  t(
    "remove: refused while mounted or a parent, forced otherwise",
    async (store) => {
      await store.create("base");
      await store.create("mid", "base");
      await store.createReadWrite("ctr", "mid");
      const view = await store.get("ctr");
      await assert.rejects(store.remove("ctr"), LayerInUse);
      await assert.rejects(store.remove("mid"), LayerHasChildren);
      assert.equal(await store.exists("ctr"), true);
      await store.put("ctr");
      await store.remove("ctr");
      assert.equal(await store.exists("ctr"), false);
      await assert.rejects(store.get("ctr"), LayerNotFound);

      await store.createReadWrite("ctr2", "mid");
      await store.get("ctr2");
      await store.get("ctr2");
      await assert.rejects(
        store.remove("ctr2"),
        (e) => e instanceof LayerInUse && e.mounts === 2,
      );
      await store.remove("base", { force: true });
      assert.deepEqual(await store.list(), []);
      assert.deepEqual(await mountsUnder(`${store.root}/mnt`), []);
      for (const d of ["diff", "mnt", "work", "meta", "layers", "staging"]) {
        assert.deepEqual(
          await Array.fromAsync(Deno.readDir(`${store.root}/${d}`)),
          [],
          d,
        );
      }
      void view;
    },
  );

  t("create with a missing parent fails and leaves nothing", async (store) => {
    await assert.rejects(store.create("child", "nope"), ParentNotFound);
    await assert.rejects(
      store.createReadWrite("child", "nope"),
      ParentNotFound,
    );
    assert.equal(await store.exists("child"), false);
    for (const d of ["diff", "layers", "staging", "meta"]) {
      assert.deepEqual(
        await Array.fromAsync(Deno.readDir(`${store.root}/${d}`)),
        [],
        d,
      );
    }
  });

  t(
    "invalid ids are refused by every operation before touching disk",
    async (store) => {
      await store.create("ok");
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
      }
      assert.deepEqual((await store.list()).map((l) => l.id), ["ok"]);
    },
  );

  t(
    "counts survive reopening; a count whose mount vanished is dropped",
    async (store) => {
      await store.create("base");
      await store.createReadWrite("ctr", "base");
      const view = await store.get("ctr");
      await store.get("ctr");
      const again = await openStore({ root: store.root });
      assert.equal((await again.list()).find((l) => l.id === "ctr")?.mounts, 2);
      if (backend === "overlay") {
        // Someone unmounts behind our back: the next open drops the stale count.
        await new Deno.Command("umount", { args: ["-l", view] }).output();
        const third = await openStore({ root: store.root });
        assert.equal(
          (await third.list()).find((l) => l.id === "ctr")?.mounts,
          0,
        );
        // A get mounts again.
        assert.equal(await third.get("ctr"), view);
        assert.equal((await mountsUnder(view)).length, 1);
        await third.put("ctr");
        assert.deepEqual(await mountsUnder(view), []);

        // A mount nobody counted (a process died between mount and count) is
        // adopted by get, not mounted twice...
        await performMountPlan(await planLayerMount(store.root, "ctr"));
        assert.equal(await third.get("ctr"), view);
        assert.equal((await mountsUnder(view)).length, 1);
        assert.equal(
          (await third.list()).find((l) => l.id === "ctr")?.mounts,
          1,
        );
        await third.put("ctr");
        assert.deepEqual(await mountsUnder(view), []);
        // ...or removed by cleanup.
        await performMountPlan(await planLayerMount(store.root, "ctr"));
        assert.equal((await mountsUnder(view)).length, 1);
        await third.cleanup();
        assert.deepEqual(await mountsUnder(view), []);
      }
    },
  );

  t("stale leftovers are swept on open", async (store, root) => {
    await store.create("keep");
    await Deno.mkdir(`${root}/staging/dead.1234/diff`, { recursive: true });
    await Deno.writeTextFile(`${root}/staging/dead.1234/lock`, "");
    await Deno.mkdir(`${root}/staging/nolock.5678`);
    await Deno.mkdir(`${root}/diff/ghost/sub`, { recursive: true });
    await Deno.mkdir(`${root}/diff/keep-removing/x`, { recursive: true });
    await Deno.writeTextFile(`${root}/layers/gone-removing`, "");
    await Deno.mkdir(`${root}/mnt/ghost`);
    await Deno.writeTextFile(`${root}/meta/ghost`, "{}");
    await Deno.mkdir(`${root}/work/ghost`);
    const reopened = await openStore({ root, backend });
    for (const d of ["diff", "mnt", "work", "meta", "layers"]) {
      const names = (await Array.fromAsync(Deno.readDir(`${root}/${d}`))).map((
        e,
      ) => e.name);
      assert.ok(names.every((n) => n === "keep"), `${d}: ${names}`);
    }
    assert.deepEqual(
      await Array.fromAsync(Deno.readDir(`${root}/staging`)),
      [],
    );
    assert.deepEqual((await reopened.list()).map((l) => l.id), ["keep"]);
  });

  t("reopening with another backend is refused", async (store) => {
    const other = backend === "overlay" ? "vfs" : "overlay";
    await assert.rejects(
      openStore({ root: store.root, backend: other }),
      BackendNotSupported,
    );
    assert.equal(
      (await openStore({ root: store.root, backend: "auto" })).backend,
      backend,
    );
  });
}

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
