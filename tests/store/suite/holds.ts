/**
 * Hold scenarios: the views a comparison against a non-parent takes are
 * holds of its process (`src/store/holds.ts`). A process killed with
 * SIGKILL while holding them is reported by `checkStore`, and the next open
 * (or `check --repair`) gives them back: no mount left, counts 0, `remove`
 * works. A live holder's views survive another process's open; a count
 * dropped without its puts (stale, force-removed layer) takes its holds
 * with it, so releasing them later never takes someone else's count.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { Store } from "../../../mod.ts";
import type { Backend } from "../../../src/backends/types.ts";
import { checkStore } from "../../../src/cli/check.ts";
import { unmountTarget } from "../../../src/mount/perform.ts";
import { mountsUnder } from "../_helpers.ts";
import { entries, type StoreCase, type Suite } from "./_harness.ts";
import { firstLine, killNow, spawn } from "./_spawn.ts";

const mountsOnly = (b: Backend) =>
  b.capabilities.mounts
    ? undefined
    : "the backend mounts nothing (capabilities.mounts: false): no mount goes stale";

/** `base`, and read-write `ctr` on it with a tree big enough that a diff takes more than one chunk. */
async function fixture(store: Store): Promise<void> {
  await store.create("base");
  await Deno.writeTextFile(`${store.root}/diff/base/hello`, "hi");
  await store.createReadWrite("ctr", "base");
  const view = await store.get("ctr");
  await Deno.writeFile(`${view}/big`, new Uint8Array(4 << 20).fill(7));
  for (let i = 0; i < 50; i++) {
    await Deno.writeTextFile(`${view}/f${i}`, `${i}`);
  }
  await store.put("ctr");
}

/**
 * A child holding the views of `diff(base, ctr)` (ctr is base's child, not
 * its parent, so both complete views are taken), once it says so.
 */
async function holder(root: string): Promise<Deno.ChildProcess> {
  const child = spawn("diff-hold", root, "base", "ctr");
  try {
    assert.equal(await firstLine(child), "holding");
  } catch (e) {
    await killNow(child);
    throw e;
  }
  return child;
}

/** Lets a holder finish: it gives its views back and exits 0. */
async function finish(child: Deno.ChildProcess): Promise<void> {
  await child.stdin.close();
  await child.stdout.cancel();
  assert.equal((await child.status).code, 0);
}

async function countOf(store: Store, id: string): Promise<number | undefined> {
  return (await store.list()).find((l) => l.id === id)?.mounts;
}

/** The hold records in `run/holds/` (none when the dir does not exist). */
async function records(root: string): Promise<string[]> {
  return await entries(`${root}/run/holds`).catch(() => []);
}

/** The ids a record holds: the lines after its header, up to an empty one. */
async function idsIn(root: string, file: string): Promise<string[]> {
  const lines = (await Deno.readTextFile(`${root}/run/holds/${file}`))
    .split("\n").slice(1);
  return lines.slice(0, lines.indexOf("")).sort();
}

/** Every id any record holds. */
async function heldIds(root: string): Promise<string[]> {
  const out: string[] = [];
  for (const f of await records(root)) out.push(...await idsIn(root, f));
  return out.sort();
}

/** What a holder of base's and ctr's views leaves while it lives: counts, records, mounts. */
async function assertHeld(c: StoreCase, store: Store, pid: number) {
  assert.equal(await countOf(store, "base"), 1);
  assert.equal(await countOf(store, "ctr"), 1);
  const files = await records(c.root);
  assert.equal(files.length, 1);
  assert.match(files[0], new RegExp(`^${pid}-[0-9]+$`));
  assert.deepEqual(await idsIn(c.root, files[0]), ["base", "ctr"]);
  assert.deepEqual(
    await mountsUnder(`${c.root}/mnt`),
    c.caps.mounts ? [`${c.root}/mnt/base`, `${c.root}/mnt/ctr`] : [],
  );
}

/** Nothing held: counts 0, no record, nothing mounted, both layers removable. */
async function assertReleased(c: StoreCase, store: Store): Promise<void> {
  assert.equal(await countOf(store, "base"), 0);
  assert.equal(await countOf(store, "ctr"), 0);
  // A live process's record stays, empty; a dead one's are deleted by open.
  assert.deepEqual(await heldIds(c.root), []);
  assert.deepEqual(await mountsUnder(`${c.root}/mnt`), []);
  assert.deepEqual((await checkStore(c.root)).problems, []);
  await store.remove("ctr");
  await store.remove("base");
  assert.deepEqual(await store.list(), []);
}

export function holdScenarios(s: Suite): void {
  s.store(
    "holds: kill -9 of a diff holding its views: check reports the dead holder, reopen releases them",
    async (c) => {
      await fixture(c.store);
      const child = await holder(c.root);
      await assertHeld(c, c.store, child.pid);
      await killNow(child);
      // Nothing released them yet: still counted (and mounted).
      assert.equal(await countOf(c.store, "ctr"), 1);
      const report = await checkStore(c.root);
      assert.deepEqual(
        report.problems.map((p) => [p.kind, p.subject, p.repaired]).sort(),
        [["dead-holder", "base", false], ["dead-holder", "ctr", false]],
      );
      for (const p of report.problems) {
        assert.match(
          p.message,
          new RegExp(`process ${child.pid}, which has exited`),
        );
      }
      const again = await c.reopen();
      await assertReleased(c, again);
    },
  );

  s.store(
    "holds: check --repair releases a dead holder's views",
    async (c) => {
      await fixture(c.store);
      await killNow(await holder(c.root));
      const report = await checkStore(c.root, { repair: true });
      assert.deepEqual(
        report.problems.map((p) => [p.kind, p.subject, p.repaired]).sort(),
        [["dead-holder", "base", true], ["dead-holder", "ctr", true]],
      );
      await assertReleased(c, c.store);
    },
  );

  s.store(
    "holds: a live holder's views survive another process's open and check",
    async (c) => {
      await fixture(c.store);
      const child = await holder(c.root);
      try {
        const other = await c.reopen();
        await assertHeld(c, other, child.pid);
        assert.deepEqual((await checkStore(c.root)).problems, []);
        assert.deepEqual(
          (await checkStore(c.root, { repair: true })).problems,
          [],
        );
        await assertHeld(c, other, child.pid);
      } catch (e) {
        await killNow(child);
        throw e;
      }
      await finish(child);
      await assertReleased(c, c.store);
    },
  );

  s.store(
    "holds: diff, changes and diffSize against a non-parent hold their views only while they run",
    async (c) => {
      const { store } = c;
      await fixture(store);
      const reader = store.diff("base", "ctr").getReader();
      assert.equal((await reader.read()).done, false);
      const files = await records(c.root);
      assert.equal(files.length, 1);
      assert.ok(files[0].startsWith(`${Deno.pid}-`), files[0]);
      assert.deepEqual(await heldIds(c.root), ["base", "ctr"]);
      await reader.cancel();
      assert.deepEqual(await heldIds(c.root), []);
      assert.deepEqual(
        (await store.changes("base", "ctr")).filter((x) => x.path === "/big"),
        [{ path: "/big", kind: "delete" }],
      );
      assert.equal(await store.diffSize("base", "ctr"), 0);
      assert.deepEqual(await heldIds(c.root), []);
      await assertReleased(c, store);
    },
  );

  s.store(
    "holds: a store without run/holds (an older version's) opens, compares and recovers",
    async (c) => {
      await fixture(c.store);
      await Deno.remove(`${c.root}/run/holds`).catch(() => {});
      await c.reopen();
      assert.deepEqual(await records(c.root), []);
      await killNow(await holder(c.root));
      const third = await c.reopen();
      await assertReleased(c, third);
    },
  );

  s.store(
    "holds: a count dropped as stale takes its holds with it, so a later release takes nobody's count",
    { unless: mountsOnly },
    async (c) => {
      await fixture(c.store);
      const child = await holder(c.root);
      const view = `${c.root}/mnt/ctr`;
      unmountTarget(view); // behind the store's back: ctr's count is stale
      await killNow(child);
      // This get drops the stale count (and the dead hold of ctr with it).
      assert.equal(await c.store.get("ctr"), view);
      const again = await c.reopen(); // releases the dead hold of base only
      assert.equal(await countOf(again, "ctr"), 1);
      assert.equal(await countOf(again, "base"), 0);
      assert.deepEqual(await mountsUnder(view), [view]);
      assert.deepEqual(await records(c.root), []);
      await again.put("ctr");
      await assertReleased(c, again);
    },
  );

  s.store(
    "holds: force-removing a held layer drops its holds, so a new layer of that id keeps its count",
    async (c) => {
      await fixture(c.store);
      const child = await holder(c.root);
      try {
        await c.store.remove("ctr", { force: true });
        await c.store.createReadWrite("ctr", "base");
        await c.store.get("ctr");
      } finally {
        await killNow(child);
      }
      const again = await c.reopen();
      assert.equal(await countOf(again, "ctr"), 1, "the new ctr's get");
      assert.equal(await countOf(again, "base"), 0);
      assert.deepEqual(await records(c.root), []);
      await again.put("ctr");
      await assertReleased(c, again);
    },
  );
}
