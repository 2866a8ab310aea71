/**
 * Multi-process scenarios: several processes on one store share one view
 * with one count, a get waits for the store lock another process holds,
 * kill -9 in the middle of create/remove/get followed by a reopen finds the
 * store consistent, and kill -9 in each window of get and put (after the
 * mount before its count; after the unmount before its uncount) leaves no
 * mount and no count once the store is opened again.
 *
 * @module
 */
import assert from "node:assert/strict";
import { LayerNotMounted, type Store } from "../../../mod.ts";
import { StoreLayout } from "../../../src/layout.ts";
import type { Backend } from "../../../src/backends/types.ts";
import { mountsUnder } from "../_helpers.ts";
import { entries, type StoreCase, type Suite } from "./_harness.ts";
import { firstLine, spawn } from "./_spawn.ts";

/** Runs a child `op` until it prints `word`, then kills it with SIGKILL. */
async function killAfter(
  word: string,
  ...args: string[]
): Promise<void> {
  const child = spawn(...args);
  try {
    assert.equal(await firstLine(child), word);
  } finally {
    child.kill("SIGKILL");
    await child.status;
    await child.stdout.cancel().catch(() => {});
    await child.stdin.close().catch(() => {});
  }
}

const mountsOnly = (b: Backend) =>
  b.capabilities.mounts
    ? undefined
    : "the backend mounts nothing (capabilities.mounts: false): get and put have no mount step";

/** The `mounts` count `list` reports for `id`. */
async function countOf(store: Store, id: string): Promise<number | undefined> {
  return (await store.list()).find((l) => l.id === id)?.mounts;
}

/** Asserts the store on disk is consistent: nothing half-made, nothing half-removed. */
async function assertConsistent(c: StoreCase, store: Store): Promise<void> {
  const root = store.root;
  const layers = await store.list();
  const ids = new Set(layers.map((l) => l.id));
  for (const l of layers) {
    assert.ok(
      (await Deno.stat(`${root}/diff/${l.id}`)).isDirectory,
      `diff/${l.id}`,
    );
    assert.ok((await Deno.stat(`${root}/meta/${l.id}`)).isFile, `meta/${l.id}`);
    for (const p of await store.parents(l.id)) {
      assert.ok(ids.has(p), `parent ${p} of ${l.id}`);
    }
  }
  for (const d of ["diff", "meta", "mnt", "layers"]) {
    for (const name of await entries(`${root}/${d}`)) {
      assert.ok(ids.has(name), `${d}/${name} belongs to no layer`);
    }
  }
  // The backend's own entries (overlay: work/<id>, l/<link>) by its rule.
  assert.deepEqual(
    await c.backend.leftovers(new StoreLayout(root), ids),
    [],
    "backend entries of no layer",
  );
  assert.deepEqual(await entries(`${root}/staging`), []);
  for (const t of await mountsUnder(`${root}/mnt`)) {
    assert.ok(
      ids.has(t.slice(`${root}/mnt/`.length)),
      `mount ${t} of no layer`,
    );
  }
}

export function processScenarios(s: Suite): void {
  s.store(
    "processes: two processes share one view; the last put anywhere unmounts",
    async (c) => {
      const { store } = c;
      await store.create("base");
      await Deno.writeTextFile(`${store.root}/diff/base/hello`, "hi");
      await store.createReadWrite("ctr", "base");
      const meta = await store.metadata("ctr");
      const viewPath = meta.mnt ?? meta.diff;
      const mounted = c.caps.mounts ? [viewPath] : [];

      const a = spawn("hold", store.root, "ctr");
      const b = spawn("hold", store.root, "ctr");
      const [pa, pb] = await Promise.all([firstLine(a), firstLine(b)]);
      assert.equal(pa, pb);
      assert.equal(pa, viewPath);
      assert.deepEqual(await mountsUnder(pa), mounted); // one mount, not two
      assert.equal(await Deno.readTextFile(`${pa}/hello`), "hi");
      assert.equal((await store.list()).find((l) => l.id === "ctr")?.mounts, 2);

      await a.stdin.close();
      await a.stdout.cancel();
      assert.equal((await a.status).code, 0);
      assert.deepEqual(await mountsUnder(pa), mounted); // b still holds it
      assert.equal((await store.list()).find((l) => l.id === "ctr")?.mounts, 1);

      await b.stdin.close();
      await b.stdout.cancel();
      assert.equal((await b.status).code, 0);
      assert.deepEqual(await mountsUnder(pa), []);
      assert.equal((await store.list()).find((l) => l.id === "ctr")?.mounts, 0);
    },
  );

  s.store(
    "processes: kill -9 during create/remove/get, then reopen finds a consistent store",
    async (c) => {
      const { store } = c;
      await store.create("base");
      await Deno.writeTextFile(`${store.root}/diff/base/hello`, "hi");
      for (const delay of [30, 90, 180, 300, 500, 800]) {
        const child = spawn("churn", store.root, "base");
        assert.equal(await firstLine(child), "ready");
        await new Promise((r) => setTimeout(r, delay));
        child.kill("SIGKILL");
        await child.status;
        await child.stdout.cancel().catch(() => {});
        await child.stdin.close().catch(() => {});

        const reopened = await c.reopen();
        await assertConsistent(c, reopened);
        // Mounts the dead process left are either counted (its gets) or adopted/cleaned.
        await reopened.cleanup();
        assert.deepEqual(await mountsUnder(`${store.root}/mnt`), []);
        // And the store still works.
        await reopened.createReadWrite(`probe-${delay}`, "base");
        const view = await reopened.get(`probe-${delay}`);
        assert.equal(await Deno.readTextFile(`${view}/hello`), "hi");
        await reopened.put(`probe-${delay}`);
        await reopened.remove(`probe-${delay}`);
      }
    },
  );
  s.store(
    "processes: a get waits for the store lock another process holds",
    async (c) => {
      const { store } = c;
      await store.create("base");
      await store.createReadWrite("ctr", "base");
      const holder = spawn("lock", store.root);
      let settled = false;
      let got: Promise<string> | undefined;
      try {
        assert.equal(await firstLine(holder), "locked");
        got = store.get("ctr").finally(() => settled = true);
        // However long we wait, the get cannot finish while the lock is held.
        await new Promise((r) => setTimeout(r, 200));
        assert.equal(settled, false, "get went ahead without the store lock");
      } finally {
        await holder.stdin.close();
        await holder.stdout.cancel().catch(() => {});
        assert.equal((await holder.status).code, 0);
      }
      const view = await got!;
      assert.equal(
        view,
        (await store.metadata("ctr")).mnt ?? (await store.metadata("ctr")).diff,
      );
      assert.equal(await countOf(store, "ctr"), 1);
      await store.put("ctr");
      assert.equal(await countOf(store, "ctr"), 0);
    },
  );

  s.store(
    "processes: kill -9 after a get's mount, before its count: open unmounts it and counts 0",
    { unless: mountsOnly },
    async (c) => {
      const { store, root } = c;
      await store.create("base");
      await Deno.writeTextFile(`${root}/diff/base/hello`, "hi");
      await store.createReadWrite("ctr", "base");
      const view = `${root}/mnt/ctr`;
      await killAfter("mounted", "stall-mount", root, "ctr");
      assert.deepEqual(await mountsUnder(view), [view], "the child did mount");
      const again = await c.reopen();
      assert.deepEqual(
        await mountsUnder(view),
        [],
        "left mounted by the dead get",
      );
      assert.equal(await countOf(again, "ctr"), 0);
      assert.deepEqual(await entries(`${root}/run/counts`).catch(() => []), []);
      // The layer works as before.
      assert.equal(await again.get("ctr"), view);
      assert.equal(await Deno.readTextFile(`${view}/hello`), "hi");
      await again.put("ctr");
      assert.deepEqual(await mountsUnder(view), []);
    },
  );

  s.store(
    "processes: a stale count is dropped before the mount, so kill -9 after the mount cannot revive it",
    { unless: mountsOnly },
    async (c) => {
      const { store, root } = c;
      await store.create("base");
      await store.createReadWrite("ctr", "base");
      const view = `${root}/mnt/ctr`;
      // The child counts 2, unmounts behind the store's back (the count is
      // stale now), and dies in the next get after its mount.
      await killAfter("mounted", "stale-stall-mount", root, "ctr");
      assert.deepEqual(await mountsUnder(view), [view]);
      const again = await c.reopen();
      assert.deepEqual(await mountsUnder(view), []);
      assert.equal(await countOf(again, "ctr"), 0);
      await assert.rejects(again.put("ctr"), LayerNotMounted);
    },
  );

  s.store(
    "processes: kill -9 after a put's unmount, before its uncount: open drops the count",
    { unless: mountsOnly },
    async (c) => {
      const { store, root } = c;
      await store.create("base");
      await store.createReadWrite("ctr", "base");
      const view = await store.get("ctr");
      await killAfter("unmounted", "stall-unmount", root, "ctr");
      assert.deepEqual(await mountsUnder(view), []);
      const again = await c.reopen();
      assert.equal(await countOf(again, "ctr"), 0);
      await assert.rejects(again.put("ctr"), LayerNotMounted);
      assert.equal(await again.get("ctr"), view);
      assert.equal(await countOf(again, "ctr"), 1);
      await again.put("ctr");
      assert.deepEqual(await mountsUnder(view), []);
    },
  );
}
