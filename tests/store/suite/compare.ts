/**
 * Comparison scenarios: diff/changes/diffSize against any layer, not only
 * the direct parent (moby's NaiveDiffDriver): both complete views are
 * compared. The chain base -> mid -> top is built the way a container
 * changes its rootfs (writes through the view of a read-write layer, then
 * commit), plus an unrelated base layer.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  type Change,
  LayerInUse,
  LayerNotFound,
  type Store,
} from "../../../mod.ts";
import { describe, mountsUnder, put } from "../_helpers.ts";
import { collect, gnuTar } from "../../integration/_tree.ts";
import { readByob } from "../../_byob.ts";
import { layerBy } from "./_fixtures.ts";
import type { StoreCase, Suite } from "./_harness.ts";
/** 3 MiB, so a diff carrying it spans many stream chunks. */
const BIG = "0123456789abcdef".repeat(3 << 16);

async function chain({ store, src }: StoreCase): Promise<void> {
  await put(`${src}/base/etc/hosts`, "h\n");
  await put(`${src}/base/etc/passwd`, "p\n");
  await put(`${src}/base/usr/bin/a`, "a\n", 0o755);
  await put(`${src}/base/usr/lib/x/y`, "y\n");
  await put(`${src}/base/keep`, "k\n");
  await put(`${src}/base/gone/f`, "f\n");
  await put(`${src}/base/same/s`, "s\n");
  await Deno.symlink("etc/hosts", `${src}/base/link`);
  await store.applyDiff("base", undefined, await gnuTar(`${src}/base`));

  await layerBy(store, "mid", "base", async (r) => {
    await put(`${r}/mid-new`, "m\n");
    await put(`${r}/etc/hosts`, "h2\n");
    await Deno.remove(`${r}/etc/passwd`);
    await Deno.remove(`${r}/gone`, { recursive: true });
    await put(`${r}/newdir/f`, "f\n");
    await put(`${r}/newdir/g`, "g\n");
    await Deno.chmod(`${r}/keep`, 0o600);
  });

  await layerBy(store, "top", "mid", async (r) => {
    await put(`${r}/top-new`, "t\n");
    await put(`${r}/mid-new`, "m2\n"); // added by mid, changed by top
    await Deno.remove(`${r}/usr/bin/a`);
    await Deno.remove(`${r}/newdir/f`); // added by mid, deleted by top
    await put(`${r}/etc/new`, "n\n");
    await Deno.remove(`${r}/usr/lib/x`, { recursive: true });
    await put(`${r}/usr/lib/x`, "now a file\n"); // a dir became a file
    await Deno.symlink("keep", `${r}/link2`);
    await put(`${r}/top-dir/big`, BIG);
    await Deno.link(`${r}/top-dir/big`, `${r}/top-dir/hl`);
  });

  await put(`${src}/other/etc/hosts`, "other\n");
  await put(`${src}/other/o/p`, "o\n");
  await store.applyDiff("other", undefined, await gnuTar(`${src}/other`));
}

/** What moby's ChangesDirs reports for top against base. */
const TOP_VS_BASE: Change[] = [
  { path: "/etc", kind: "modify" },
  { path: "/etc/hosts", kind: "modify" },
  { path: "/etc/new", kind: "add" },
  { path: "/etc/passwd", kind: "delete" },
  { path: "/gone", kind: "delete" },
  { path: "/keep", kind: "modify" },
  { path: "/link2", kind: "add" },
  { path: "/mid-new", kind: "add" },
  { path: "/newdir", kind: "add" },
  { path: "/newdir/g", kind: "add" },
  { path: "/top-dir", kind: "add" },
  { path: "/top-dir/big", kind: "add" },
  { path: "/top-dir/hl", kind: "add" },
  { path: "/top-new", kind: "add" },
  { path: "/usr", kind: "modify" },
  { path: "/usr/bin", kind: "modify" },
  { path: "/usr/bin/a", kind: "delete" },
  { path: "/usr/lib", kind: "modify" },
  { path: "/usr/lib/x", kind: "modify" },
];

/** Added/modified regular file bytes of top against base (the hard link once). */
const TOP_VS_BASE_SIZE = [
  "h2\n", // /etc/hosts
  "n\n", // /etc/new
  "k\n", // /keep (mode change)
  "m2\n", // /mid-new
  "g\n", // /newdir/g
  BIG, // /top-dir/big = /top-dir/hl
  "t\n", // /top-new
  "now a file\n", // /usr/lib/x
].reduce((n, s) => n + s.length, 0);

/** Mount state to compare before and after: outstanding gets and mounts under the store. */
async function mountState(store: Store) {
  return {
    gets: Object.fromEntries(
      (await store.list()).map((l) => [l.id, l.mounts]),
    ),
    mounts: (await mountsUnder(store.root)).sort(),
  };
}

/** A view's tree, read while it is mounted. */
async function viewOf(store: Store, id: string) {
  const root = await store.get(id);
  try {
    return await describe(root);
  } finally {
    await store.put(id);
  }
}

export function compareScenarios(s: Suite): void {
  const t = (name: string, fn: (store: Store, c: StoreCase) => Promise<void>) =>
    s.store(`naive diff: ${name}`, async (c) => {
      await chain(c);
      await fn(c.store, c);
      assert.deepEqual(await mountsUnder(c.root), []);
    });

  t("changes and diffSize against a grandparent", async (store) => {
    const before = await mountState(store);
    assert.deepEqual(await store.changes("top", "base"), TOP_VS_BASE);
    assert.equal(await store.diffSize("top", "base"), TOP_VS_BASE_SIZE);
    assert.deepEqual(await mountState(store), before);
    // The direct parent still takes the layer's own content.
    assert.deepEqual(
      (await store.changes("top", "mid")).map((c) => c.path).includes(
        "/newdir/g",
      ),
      false,
    );
  });

  t("diff against a grandparent rebuilds top on base", async (store) => {
    const before = await mountState(store);
    const tar = await collect(store.diff("top", "base"));
    assert.deepEqual(await mountState(store), before);
    await store.applyDiff("squashed", "base", tar);
    assert.deepEqual(
      await viewOf(store, "squashed"),
      await viewOf(store, "top"),
    );
    // Same mtimes, sizes and links too: nothing differs between the two views.
    assert.deepEqual(await store.changes("squashed", "top"), []);
    // (changes against the direct parent follow the upper-dir rules on
    // overlay, which do not list unchanged parent dirs: not compared here.)
    assert.equal(await store.diffSize("squashed", "base"), TOP_VS_BASE_SIZE);
  });

  t(
    "diff against an unrelated layer and against a descendant",
    async (store) => {
      const onOther = await collect(store.diff("top", "other"));
      await store.applyDiff("top-on-other", "other", onOther);
      assert.deepEqual(
        await viewOf(store, "top-on-other"),
        await viewOf(store, "top"),
      );
      const changes = await store.changes("top", "other");
      assert.deepEqual(
        changes.filter((c) => c.kind === "delete").map((c) => c.path),
        ["/o"],
      );
      // base against its own grandchild: top's additions become deletions.
      const back = await collect(store.diff("base", "top"));
      await store.applyDiff("base-again", "top", back);
      assert.deepEqual(
        await viewOf(store, "base-again"),
        await viewOf(store, "base"),
      );
      assert.deepEqual(await store.changes("top", "top"), []);
    },
  );

  t("views taken by the caller survive; refcounts come back", async (store) => {
    const root = await store.get("top");
    const held = await mountState(store);
    await store.changes("top", "base");
    await store.diffSize("top", "base");
    await collect(store.diff("top", "base"));
    assert.deepEqual(await mountState(store), held);
    assert.equal(await Deno.readTextFile(`${root}/top-new`), "t\n");
    await store.put("top");
  });

  t("a cancelled or never-read diff releases its views", async (store, c) => {
    const before = await mountState(store);
    const stream = store.diff("top", "base");
    const reader = stream.getReader();
    const first = await reader.read();
    assert.equal(first.done, false);
    // Mid-stream both views are held: counted on every backend, and mounts
    // where views are mounts (base, a read-only layer without parents, gets
    // its read-only bind mount).
    const during = await mountState(store);
    assert.equal(during.gets.top, (before.gets.top ?? 0) + 1);
    assert.equal(during.gets.base, (before.gets.base ?? 0) + 1);
    assert.deepEqual(
      during.mounts,
      c.caps.mounts ? [`${store.root}/mnt/base`, `${store.root}/mnt/top`] : [],
    );
    await reader.cancel();
    assert.deepEqual(await mountState(store), before);
    store.diff("top", "base"); // never read: mounts nothing
    assert.deepEqual(await mountState(store), before);
  });

  t(
    "a layer being compared cannot be removed until the diff ends",
    async (store) => {
      const reader = store.diff("top", "other").getReader();
      assert.equal((await reader.read()).done, false);
      await assert.rejects(store.remove("top"), LayerInUse);
      await assert.rejects(store.remove("other"), LayerInUse);
      await reader.cancel();
      await store.remove("top");
      await store.remove("other");
      assert.deepEqual(await store.exists("top"), false);
    },
  );

  t(
    "a BYOB reader gets the same bytes and the views are released",
    async (store) => {
      const before = await mountState(store);
      for (const parent of ["base", undefined]) {
        const want = await collect(store.diff("top", parent));
        for (const size of [1000, 65536]) {
          const got = await readByob(store.diff("top", parent), size);
          assert.ok(
            got.length === want.length && got.every((x, i) => x === want[i]),
            `diff(top, ${parent}) read with ${size}-byte BYOB buffers differs`,
          );
          assert.deepEqual(await mountState(store), before);
        }
      }
    },
  );

  t("a missing layer is LayerNotFound", async (store) => {
    const notFound = (id: string) => (e: unknown) =>
      e instanceof LayerNotFound && e.id === id;
    const before = await mountState(store);
    await assert.rejects(store.changes("top", "nope"), notFound("nope"));
    await assert.rejects(store.diffSize("top", "nope"), notFound("nope"));
    await assert.rejects(collect(store.diff("top", "nope")), notFound("nope"));
    await assert.rejects(store.changes("nope", "base"), notFound("nope"));
    assert.deepEqual(await mountState(store), before);
  });
}
