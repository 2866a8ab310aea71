/**
 * Unused image layers (what interrupted loads and pulls keep): which layers
 * the rule picks, `pruneImages` / `layerfs prune` removing them top first
 * (and blobs no image uses, but not while a load holds a layer lock),
 * `layerfs check` reporting them and `--repair` removing them; layers an
 * image names, a container sits on, a view has mounted, or a load is
 * working on (its lock held) stay; a pull keeps (renames into place) a
 * blob only under images/lock, so a sweep that found that digest unused
 * does not delete the pull's copy.
 */

import assert from "node:assert/strict";
import {
  listImages,
  loadImage,
  openStore,
  pruneImages,
  removeImage,
  type Store,
} from "../../mod.ts";
import { checkStore } from "../../src/cli/check.ts";
import { processIo, runCli } from "../../src/cli/main.ts";
import { ensureDirs, flock } from "../../src/image/image_store.ts";
import { storeImage } from "../../src/image/_store_image.ts";
import { blobsOf } from "../../src/image/images.ts";
import {
  baseLayer,
  buildImage,
  buildLayer,
  sha,
  topLayer,
  writeOciLayout,
} from "./_images.ts";

const hex = (c: string) => c.repeat(64);

/** A layer as an interrupted load or pull leaves it: made by the image code, named by no image. */
function leftover(store: Store, id: string, parent?: string): Promise<number> {
  return store.applyDiffStaged(id, parent, () => Promise.resolve(0), {
    imageLayer: true,
  });
}

Deno.test("prune: unused image layers go top first; used ones stay", async () => {
  const root = await Deno.makeTempDir({ prefix: "layerfs-prune-" });
  const store = await openStore({ root, backend: "vfs" });
  try {
    // An image (two layers), and what interrupted pulls left: a chain of
    // two on the image's base, a lone one, one under a container, one mounted.
    const img = buildImage([
      buildLayer(await baseLayer()),
      buildLayer(await topLayer(), "gzip"),
    ]);
    await writeOciLayout(`${root}/oci`, [{ image: img, ref: "p/app:1" }]);
    await loadImage(store, `${root}/oci`);
    const [base] = img.chains;
    await leftover(store, hex("a"), base);
    await leftover(store, hex("b"), hex("a"));
    await leftover(store, hex("c"));
    await leftover(store, hex("d"));
    await store.createReadWrite("ctr", hex("d"));
    await leftover(store, hex("e"));
    await store.get(hex("e"));
    await store.create("mine"); // not a chain id: never an image layer

    const report = await checkStore(root);
    assert.deepEqual(
      report.problems.map((p) => p.kind),
      ["unused-layer", "unused-layer", "unused-layer"],
    );
    const found = report.problems.map((p) => p.subject);
    assert.deepEqual([...found].sort(), [hex("a"), hex("b"), hex("c")]);
    assert.ok(found.indexOf(hex("b")) < found.indexOf(hex("a")), "top first");
    // A load working on a layer (its lock held) keeps it out of both.
    const lock = await flock(`${root}/images/locks/${hex("c")}`);
    try {
      assert.deepEqual(
        (await checkStore(root)).problems.map((p) => p.subject).sort(),
        [hex("a"), hex("b")],
      );
      assert.deepEqual(await pruneImages(store), {
        removedLayers: [hex("b"), hex("a")],
        busy: [hex("c")],
        removedBlobs: [],
        blobsSkipped: false, // no blob is unused: nothing to wait for
      });
    } finally {
      lock.close();
    }
    const none = { removedLayers: [], busy: [], removedBlobs: [] };
    assert.deepEqual(await pruneImages(store), {
      ...none,
      removedLayers: [hex("c")],
      blobsSkipped: false,
    });
    // A blob no image uses goes, but not while a load holds a layer lock.
    const stray = hex("9");
    await Deno.writeTextFile(`${root}/images/blobs/sha256/${stray}`, "x");
    const held = await flock(`${root}/images/locks/${hex("0")}`);
    try {
      assert.deepEqual(await pruneImages(store), {
        ...none,
        blobsSkipped: true,
      });
    } finally {
      held.close();
    }
    assert.deepEqual(await pruneImages(store), {
      ...none,
      removedBlobs: [stray],
      blobsSkipped: false,
    });
    assert.deepEqual(await pruneImages(store), {
      ...none,
      blobsSkipped: false,
    });
    // The image's own config and manifest stay.
    assert.deepEqual(
      (await Array.fromAsync(Deno.readDir(`${root}/images/blobs/sha256`)))
        .map((e) => e.name).sort(),
      [img.configHex, img.manifestHex].sort(),
    );
    assert.deepEqual(
      (await store.list()).map((l) => l.id).sort(),
      [...img.chains, hex("d"), hex("e"), "ctr", "mine"].sort(),
    );
    await store.put(hex("e"));
    assert.deepEqual((await checkStore(root)).problems.map((p) => p.subject), [
      hex("e"),
    ]);
  } finally {
    store.close();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("prune: layerfs check --repair and layerfs prune remove them", async () => {
  const root = await Deno.makeTempDir({ prefix: "layerfs-prune-cli-" });
  const store = await openStore({ root, backend: "vfs" });
  let out = "";
  const io = { ...processIo(), stderr: (t: string) => void (out += t) };
  const cli = (args: string[]) => {
    out = "";
    return runCli(["--root", root, ...args], io, (t) => void (out += t));
  };
  try {
    await leftover(store, hex("a"));
    await leftover(store, hex("b"), hex("a"));
    assert.equal(await cli(["check"]), 1);
    assert.match(
      out,
      /problem: image layer "aaaaaaaaaaaa" belongs to no image/,
    );
    assert.equal(await cli(["check", "--repair"]), 0);
    assert.match(out, /repaired: image layer "bbbbbbbbbbbb"/);
    assert.deepEqual(await store.list(), []);

    await leftover(store, hex("a"));
    assert.equal(await cli(["--json", "prune"]), 0);
    assert.deepEqual(JSON.parse(out), {
      removedLayers: [hex("a")],
      busy: [],
      removedBlobs: [],
      blobsSkipped: false,
    });
    assert.equal(await cli(["prune"]), 0);
    assert.equal(out, "Nothing to prune\n");
    assert.equal(await cli(["check"]), 0, out);
  } finally {
    store.close();
    await Deno.remove(root, { recursive: true });
  }
});

/**
 * Whether a flock on `path` has a waiter (a "->" line in /proc/locks for
 * its inode): the point where a taker is blocked, seen without timing.
 */
async function flockWaited(path: string): Promise<boolean> {
  const ino = (await Deno.stat(path)).ino;
  return (await Deno.readTextFile("/proc/locks")).split("\n").some((l) =>
    /->\s+FLOCK/.test(l) && l.split(/\s+/).some((f) => f.endsWith(`:${ino}`))
  );
}

Deno.test("prune: a pull keeps a blob only under images/lock, so the blob sweep cannot delete it", async () => {
  const root = await Deno.makeTempDir({ prefix: "layerfs-prune-race-" });
  const store = await openStore({ root, backend: "vfs" });
  try {
    const img = buildImage([buildLayer(await baseLayer(), "gzip")]);
    const [layer] = img.layers;
    const blobHex = sha(layer.blob);
    const blobPath = `${root}/images/blobs/sha256/${blobHex}`;
    // An earlier interrupted keepBlobs pull kept this blob; no image uses it.
    await ensureDirs(`${root}/images`);
    await Deno.writeFile(blobPath, layer.blob);
    const stale = (await Deno.stat(blobPath)).ino;
    // images/lock held as prune's blob sweep holds it: it has found the blob
    // unused and no layer lock held, and is about to delete it.
    using sweep = await Deno.open(`${root}/images/lock`, {
      read: true,
      write: true,
      create: true,
    });
    await sweep.lock(true);
    const states: string[] = [];
    const pull = storeImage(store, {
      subject: "p/kept:1",
      refs: ["p/kept:1"],
      manifest: { digest: img.manifestHex, bytes: img.manifest },
      config: img.config,
      layers: [{
        label: "layer 1",
        digest: blobHex,
        size: layer.blob.length,
        compression: "gzip",
        open: () => ({
          stream: ReadableStream.from([layer.blob]),
          size: layer.blob.length,
        }),
      }],
    }, {
      keepBlobs: true,
      parallel: 1,
      onProgress: (p) => states.push(p.state),
    });
    let settled = false;
    pull.finally(() => settled = true).catch(() => {});
    // The pull blocks on images/lock; it has not put its blob in place.
    while (!(await flockWaited(`${root}/images/lock`))) {
      assert.ok(!settled, "the pull ended without waiting for images/lock");
      await new Promise((r) => setTimeout(r, 5));
    }
    assert.equal((await Deno.stat(blobPath)).ino, stale, "blob not replaced");
    assert.ok(!states.includes("done"), "the layer is not published yet");
    // The sweep deletes what it found unused, and releases images/lock.
    await Deno.remove(blobPath);
    sweep.unlock();
    const stored = await pull;
    // The pull's own copy is there, the image names it, prune leaves it.
    assert.deepEqual(stored.extracted, img.chains);
    assert.deepEqual(await Deno.readFile(blobPath), layer.blob);
    const [rec] = Object.values(
      JSON.parse(await Deno.readTextFile(`${root}/images/index.json`))
        .images,
    ) as Parameters<typeof blobsOf>[1][];
    assert.ok((await blobsOf(store, rec)).includes(blobHex));
    assert.deepEqual(await pruneImages(store), {
      removedLayers: [],
      busy: [],
      removedBlobs: [],
      blobsSkipped: false,
    });
    assert.deepEqual(await Deno.readFile(blobPath), layer.blob);
    assert.deepEqual((await checkStore(root)).problems, []);
  } finally {
    store.close();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("rmi leaves the blobs to prune while a load holds a layer lock", async () => {
  const root = await Deno.makeTempDir({ prefix: "layerfs-prune-" });
  const store = await openStore({ root, backend: "vfs" });
  try {
    const img = buildImage([buildLayer(await baseLayer())]);
    await writeOciLayout(`${root}/oci`, [{ image: img, ref: "p/app:1" }]);
    const [loaded] = await loadImage(store, `${root}/oci`);
    const blobs = async () =>
      (await Array.fromAsync(Deno.readDir(`${root}/images/blobs/sha256`)))
        .map((e) => e.name).sort();
    const mine = await blobs();
    assert.ok(mine.length >= 2, "its config and manifest are kept");
    // Another load is working on some layer (its lock held): it may have
    // put a blob in place that its references do not name yet.
    const held = await flock(`${root}/images/locks/${hex("0")}`);
    try {
      const r = await removeImage(store, "p/app:1");
      assert.equal(r.deleted, loaded.id);
      assert.deepEqual(await blobs(), mine, "no blob deleted");
      assert.deepEqual(await listImages(store), []);
    } finally {
      held.close();
    }
    // Once no load runs, prune removes them (they are unused now).
    const pruned = await pruneImages(store);
    assert.deepEqual(pruned.removedBlobs, mine);
    assert.deepEqual(await blobs(), []);
    assert.deepEqual((await checkStore(root)).problems, []);
  } finally {
    store.close();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("prune and check --repair never take a layer no load made, whatever its id (a docker-style 64-hex container)", async () => {
  const root = await Deno.makeTempDir({ prefix: "layerfs-prune-own-" });
  const store = await openStore({ root, backend: "vfs" });
  try {
    const ctr = hex("9");
    await store.createReadWrite(ctr);
    await Deno.writeTextFile(`${await store.get(ctr)}/data`, "important\n");
    await store.put(ctr);
    await store.create(hex("7")); // a read-only layer named by hand
    await store.applyDiff(hex("6"), undefined, new Uint8Array(1024)); // apply
    assert.deepEqual(
      (await checkStore(root)).problems.map((p) => p.kind),
      [],
    );
    assert.deepEqual((await checkStore(root, { repair: true })).problems, []);
    assert.deepEqual((await pruneImages(store)).removedLayers, []);
    assert.deepEqual(
      (await store.list()).map((l) => l.id).sort(),
      [hex("6"), hex("7"), ctr],
    );
    assert.equal(
      await Deno.readTextFile(`${root}/diff/${ctr}/data`),
      "important\n",
    );
    // What a load made carries the mark (and is what prune takes).
    await leftover(store, hex("5"));
    assert.equal(
      (await store.list()).find((l) => l.id === hex("5"))?.imageLayer,
      true,
    );
    assert.deepEqual((await pruneImages(store)).removedLayers, [hex("5")]);
  } finally {
    store.close();
    await Deno.remove(root, { recursive: true });
  }
});
