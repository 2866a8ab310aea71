/**
 * Whiteout scenarios: a whiteout and entries of the same layer. The OCI
 * image-spec (layer.md, "Whiteouts"): "Whiteout files MUST only apply to
 * resources in lower/parent layers. Files that are present in the same
 * layer as a whiteout file can only be hidden by whiteout files in
 * subsequent layers." So whatever the order of `.wh.<name>` and `<name>` in
 * one tar, the layer keeps its own `<name>`, and a directory of its own
 * hides the parents' entries below it. Every backend must give the same
 * view, changes and diff for the same tars, and `exactDiff` must give back
 * the tar as it was applied.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { Change, Store } from "../../../mod.ts";
import { type E, tar } from "../../archive/extract/_tar.ts";
import { describe } from "../_helpers.ts";
import { withView } from "./_fixtures.ts";
import type { Suite } from "./_harness.ts";

const dir = (name: string): E => ({ name, type: "dir", mode: 0o755 });
const file = (name: string, body = name): E => ({ name, body });

/** A view as paths with their kind and file content (modes differ by design: implicit dirs). */
async function viewOf(store: Store, id: string): Promise<string[]> {
  const tree = await withView(store, id, describe);
  return [...tree].map(([p, e]) =>
    e.kind === "file" ? `${p}=${e.content}` : `${p} ${e.kind}`
  );
}

/** The tar `store.exactDiff(id)` rebuilds, whole. */
async function exact(store: Store, id: string): Promise<Uint8Array> {
  const s = await store.exactDiff(id);
  assert.ok(s !== null, `${id} has a tar-split record`);
  return await new Response(s).bytes();
}

/**
 * Applies `layer` as `id` on `parent` and checks its view, its changes, its
 * exactDiff, and that its diff re-applied on the same parent gives the same
 * view and changes.
 */
async function check(
  store: Store,
  id: string,
  parent: string | undefined,
  layer: Uint8Array,
  view: string[],
  changes: Change[] | null,
): Promise<void> {
  await store.applyDiff(id, parent, layer);
  assert.deepEqual(await viewOf(store, id), view, `view of ${id}`);
  if (changes !== null) {
    assert.deepEqual(await store.changes(id), changes, `changes of ${id}`);
  }
  assert.deepEqual(await exact(store, id), layer, `exactDiff of ${id}`);
  const again = await new Response(store.diff(id)).bytes();
  await store.applyDiff(`${id}-again`, parent, again);
  assert.deepEqual(
    await viewOf(store, `${id}-again`),
    view,
    `view of ${id}'s diff re-applied`,
  );
  if (changes !== null) {
    assert.deepEqual(await store.changes(`${id}-again`), changes);
  }
}

export function whiteoutScenarios(s: Suite): void {
  s.store(
    "whiteouts: `.wh.d` then `d/` in one layer replaces the parents' d (it is opaque), through an opaque parent",
    async ({ store }) => {
      await store.applyDiff(
        "L1",
        undefined,
        tar([dir("d/"), file("d/a"), file("d/b")]),
      );
      await store.applyDiff(
        "L2",
        "L1",
        tar([dir("d/"), file("d/.wh..wh..opq", ""), file("d/c")]),
      );
      assert.deepEqual(await viewOf(store, "L2"), ["/d dir", "/d/c=d/c"]);
      await check(
        store,
        "L3",
        "L2",
        tar([file(".wh.d", ""), dir("d/"), file("d/new")]),
        ["/d dir", "/d/new=d/new"],
        [
          { path: "/d", kind: "modify" },
          { path: "/d/c", kind: "delete" },
          { path: "/d/new", kind: "add" },
        ],
      );
    },
  );

  s.store(
    "whiteouts: an opaque dir keeps no whiteouts of its own (d/.wh.p then .wh.d, or with d/.wh..wh..opq): no entry that cannot be opened",
    async ({ store }) => {
      await store.applyDiff(
        "P",
        undefined,
        tar([dir("d/"), file("d/p"), file("d/q"), file("e/p"), file("f")]),
      );
      // d is this layer's (it holds d/.wh.p) and whited out below: empty.
      await check(
        store,
        "C1",
        "P",
        tar([file("d/.wh.p", ""), file(".wh.d", "")]),
        ["/d dir", "/e dir", "/e/p=e/p", "/f=f"],
        [
          { path: "/d", kind: "modify" },
          { path: "/d/p", kind: "delete" },
          { path: "/d/q", kind: "delete" },
        ],
      );
      // The opaque marker first or last, a whiteout beside it: the same.
      for (const [id, order] of [["C2", 0], ["C3", 1]] as const) {
        const marks = [file("d/.wh.p", ""), file("d/.wh..wh..opq", "")];
        await check(
          store,
          id,
          "P",
          tar([...(order ? marks.reverse() : marks), file("d/n")]),
          ["/d dir", "/d/n=d/n", "/e dir", "/e/p=e/p", "/f=f"],
          [
            { path: "/d", kind: "modify" },
            { path: "/d/n", kind: "add" },
            { path: "/d/p", kind: "delete" },
            { path: "/d/q", kind: "delete" },
          ],
        );
      }
    },
  );

  /** The parent of the same-layer scenarios. */
  const parent = tar([
    dir("d/"),
    file("d/a"),
    file("e/a"),
    file("f/a"),
    file("g/a"),
    file("h/a"),
    file("keep"),
    file("y", "parent"),
    file("z", "parent"),
  ]);

  s.store(
    "whiteouts: entries before their whiteout in the same layer stay; its dirs hide the parents' entries",
    async ({ store }) => {
      await store.applyDiff("base", undefined, parent);
      const own: E[] = [
        file("y", "mine"),
        file(".wh.y", ""), // a file of this layer: stays
        { name: "hl", type: "hardlink", linkname: "y" },
        file(".wh.hl", ""),
        { name: "s", type: "symlink", linkname: "keep" },
        file(".wh.s", ""),
        dir("d/"),
        file("d/x"),
        file(".wh.d", ""), // a dir of this layer: opaque, d/a hidden
        file("e/x"),
        file(".wh.e", ""), // a dir this layer only implies: the same
      ];
      const layer = tar([...own, file(".wh.z", "")]); // z: the parent's, deleted
      const view = [
        "/d dir",
        "/d/x=d/x",
        "/e dir",
        "/e/x=e/x",
        "/f dir",
        "/f/a=f/a",
        "/g dir",
        "/g/a=g/a",
        "/h dir",
        "/h/a=h/a",
        "/hl=mine",
        "/keep=keep",
        "/s symlink",
        "/y=mine",
      ];
      await check(store, "top", "base", layer, view, [
        { path: "/d", kind: "modify" },
        { path: "/d/a", kind: "delete" },
        { path: "/d/x", kind: "add" },
        { path: "/e", kind: "modify" },
        { path: "/e/a", kind: "delete" },
        { path: "/e/x", kind: "add" },
        { path: "/hl", kind: "add" },
        { path: "/s", kind: "add" },
        { path: "/y", kind: "modify" },
        { path: "/z", kind: "delete" },
      ]);
      // A base layer: nothing below it, every entry stays. (Not `.wh.z`: a
      // whiteout of nothing in a base layer shows as its 0:0 device in
      // overlay's view, which is a bind mount of the layer dir.)
      await check(store, "solo", undefined, tar(own), [
        "/d dir",
        "/d/x=d/x",
        "/e dir",
        "/e/x=e/x",
        "/hl=mine",
        "/s symlink",
        "/y=mine",
      ], null);
    },
  );

  s.store(
    "whiteouts: entries after their whiteout in the same layer replace the parents'; its dirs hide the parents' entries",
    async ({ store }) => {
      await store.applyDiff("base", undefined, parent);
      const layer = tar([
        file(".wh.y", ""),
        file("y", "mine"),
        file(".wh.d", ""),
        dir("d/"),
        file("d/x"),
        file(".wh.e", ""),
        file("e/x"), // no `e/` entry: an implied dir, opaque all the same
        file(".wh.f", ""),
        { name: "f", type: "symlink", linkname: "keep" },
        file(".wh.z", ""),
      ]);
      await check(store, "top", "base", layer, [
        "/d dir",
        "/d/x=d/x",
        "/e dir",
        "/e/x=e/x",
        "/f symlink",
        "/g dir",
        "/g/a=g/a",
        "/h dir",
        "/h/a=h/a",
        "/keep=keep",
        "/y=mine",
      ], [
        { path: "/d", kind: "modify" },
        { path: "/d/a", kind: "delete" },
        { path: "/d/x", kind: "add" },
        { path: "/e", kind: "modify" },
        { path: "/e/a", kind: "delete" },
        { path: "/e/x", kind: "add" },
        { path: "/f", kind: "modify" },
        { path: "/y", kind: "modify" },
        { path: "/z", kind: "delete" },
      ]);
    },
  );
}
