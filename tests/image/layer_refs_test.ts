/**
 * The layers images use, as the layer store sees them: `Store.remove`
 * refuses a layer an image names (with `force` too, and a forced removal
 * reaching one), reading the image index under the store lock, where a
 * load records its layers (`whileLayersExist`); the layers a removed image
 * released (`rmi --force` with a container on it) are not taken by
 * `check` for an interrupted load's, and `prune` removes them once unused.
 */

import assert from "node:assert/strict";
import {
  LayerUsedByImage,
  listImages,
  loadImage,
  openStore,
  pruneImages,
  removeImage,
  saveImage,
} from "../../mod.ts";
import { checkStore } from "../../src/cli/check.ts";
import { readIndex, writeIndex } from "../../src/image/image_store.ts";
import { tempDir } from "../_privileged.ts";
import {
  baseLayer,
  buildImage,
  buildLayer,
  topLayer,
  writeOciLayout,
} from "./_images.ts";

async function twoLayerImage(dir: string, ref: string) {
  const img = buildImage([
    buildLayer(await baseLayer()),
    buildLayer(await topLayer(), "gzip"),
  ]);
  await writeOciLayout(dir, [{ image: img, ref }]);
  return img;
}

Deno.test("Store.remove refuses a layer an image uses, with force too, naming the image", async () => {
  await using tmp = await tempDir();
  const t = tmp.path;
  const img = await twoLayerImage(`${t}/oci`, "refs/app:1");
  const store = await openStore({ root: `${t}/s`, backend: "vfs" });
  try {
    const [loaded] = await loadImage(store, `${t}/oci`);
    const [base, top] = loaded.layers;
    for (const force of [false, true]) {
      await assert.rejects(
        store.remove(top, { force }),
        (e) =>
          e instanceof LayerUsedByImage && e.id === top &&
          e.requested === top && e.image === "refs/app:1" &&
          e.message ===
            `Cannot remove layer "${top}": image refs/app:1 uses it; remove the image first with "layerfs rmi refs/app:1"`,
      );
    }
    // A forced removal of the base would take the top with it.
    await assert.rejects(
      store.remove(base, { force: true }),
      (e) => e instanceof LayerUsedByImage && e.requested === base,
    );
    // A container on the image is the user's: it goes, the image stays whole.
    await store.createReadWrite("ctr", top);
    await assert.rejects(
      store.remove(base, { force: true }),
      LayerUsedByImage,
    );
    assert.deepEqual(await store.remove("ctr"), ["ctr"]);
    assert.equal((await listImages(store))[0].topLayer, top);
    const saved = await saveImage(store, ["refs/app:1"], `${t}/saved.tar`);
    assert.equal(saved.length, 1);
    // A second name is listed too; an image without a name by its id.
    const idx = await readIndex(store);
    idx.refs["refs/app:latest"] = img.configHex;
    await writeIndex(store, idx);
    await assert.rejects(
      store.remove(top),
      (e) =>
        e instanceof LayerUsedByImage &&
        e.message.endsWith(
          `image refs/app:1 (also refs/app:latest) uses it; remove the image first with "layerfs rmi refs/app:1 refs/app:latest"`,
        ),
    );
    // Once the image is gone, so are its layers, and nothing is refused.
    await removeImage(store, `sha256:${img.configHex}`);
    assert.deepEqual(await store.list(), []);
  } finally {
    store.close();
  }
});

Deno.test("Store.remove reads the image index under the store lock, where a load records its layers", async () => {
  await using tmp = await tempDir();
  const t = tmp.path;
  const img = await twoLayerImage(`${t}/oci`, "refs/app:1");
  const store = await openStore({ root: `${t}/s`, backend: "vfs" });
  try {
    await loadImage(store, `${t}/oci`);
    const [base, top] = img.chains;
    const record = (await readIndex(store)).images[img.configHex];
    // Its layers released (a container holds them), the image is loaded
    // again: between the layers' check and the references' write no remove
    // of them can run.
    await store.createReadWrite("ctr", top);
    await removeImage(store, "refs/app:1", { force: true });
    await store.remove("ctr");
    const before = await readIndex(store);
    let removal: Promise<string[]> | undefined;
    await store.whileLayersExist([base, top], async () => {
      removal = store.remove(top);
      removal.catch(() => {});
      await new Promise((r) => setTimeout(r, 200));
      // The remove waits for the lock, so it has not read the index yet.
      assert.equal(await store.exists(top), true);
      await writeIndex(store, {
        ...before,
        images: { [img.configHex]: record },
        refs: { "refs/app:1": img.configHex },
      });
    });
    await assert.rejects(removal!, LayerUsedByImage);
    assert.equal(await store.exists(top), true);
    // The other way round: a layer removed first is not recorded.
    await removeImage(store, "refs/app:1");
    await assert.rejects(
      store.whileLayersExist([base], () => Promise.resolve()),
      (e) => e instanceof Error && e.name === "LayerNotFound",
    );
  } finally {
    store.close();
  }
});

Deno.test("rmi --force with a container on the image: check stays clean after the container goes, prune removes the layers", async () => {
  await using tmp = await tempDir();
  const t = tmp.path;
  const img = await twoLayerImage(`${t}/oci`, "refs/app:1");
  const root = `${t}/s`;
  let store = await openStore({ root, backend: "vfs" });
  try {
    await loadImage(store, `${t}/oci`);
    const [base, top] = img.chains;
    await store.createReadWrite("ctr", top);
    const r = await removeImage(store, "refs/app:1", { force: true });
    assert.deepEqual(r.removedLayers, []);
    assert.deepEqual((await readIndex(store)).released, {
      [base]: `sha256:${img.configHex}`,
      [top]: `sha256:${img.configHex}`,
    });
    await store.remove("ctr");
    store.close();
    // No image uses them, but no interruption left them: not a problem.
    assert.deepEqual((await checkStore(root)).problems, []);
    store = await openStore({ root, backend: "vfs" });
    const pruned = await pruneImages(store);
    assert.deepEqual(pruned.removedLayers, [top, base]);
    assert.deepEqual(await store.list(), []);
    assert.equal((await readIndex(store)).released, undefined);

    // Loaded again after a release, the layers are the image's again.
    await loadImage(store, `${t}/oci`);
    await store.createReadWrite("ctr", top);
    await removeImage(store, "refs/app:1", { force: true });
    const [again] = await loadImage(store, `${t}/oci`);
    assert.deepEqual(again.extracted, []);
    assert.equal((await readIndex(store)).released, undefined);
    await store.remove("ctr");
    await removeImage(store, "refs/app:1");
    assert.deepEqual(await store.list(), []);
    assert.equal((await readIndex(store)).released, undefined);
  } finally {
    store.close();
  }
  assert.deepEqual((await checkStore(root)).problems, []);
});

Deno.test("Store.remove reads the image index only for layers an image can name: a damaged index blocks no container's removal", async () => {
  await using tmp = await tempDir();
  const t = tmp.path;
  await twoLayerImage(`${t}/oci`, "refs/app:1");
  const store = await openStore({ root: `${t}/s`, backend: "vfs" });
  try {
    const [loaded] = await loadImage(store, `${t}/oci`);
    await store.createReadWrite("ctr", loaded.layers[1]);
    await Deno.writeTextFile(`${t}/s/images/index.json`, "{bad");
    assert.deepEqual(await store.remove("ctr"), ["ctr"]);
    // An image layer is another matter: with the index unreadable, which
    // image uses it cannot be told, and it stays.
    await assert.rejects(
      store.remove(loaded.layers[1]),
      (e) => e instanceof Error && /image index/i.test(e.message),
    );
    assert.equal(await store.exists(loaded.layers[1]), true);
  } finally {
    store.close();
  }
});

Deno.test("released entries go with their layers: rm forgets them, check --repair drops stale ones", async () => {
  await using tmp = await tempDir();
  const t = tmp.path;
  await twoLayerImage(`${t}/oci`, "rel/app:1");
  let store = await openStore({ root: `${t}/s`, backend: "vfs" });
  const [loaded] = await loadImage(store, `${t}/oci`);
  const [base, top] = loaded.layers;
  await store.createReadWrite("ctr", top);
  await removeImage(store, "rel/app:1", { force: true });
  assert.deepEqual(
    Object.keys((await readIndex({ root: `${t}/s` })).released ?? {}).sort(),
    [base, top].sort(),
  );
  store.close();
  // The CLI's rm forgets what it removed.
  const cli = new URL("../../src/cli/main.ts", import.meta.url).pathname;
  const rm = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", cli, "--root", `${t}/s`, "rm", "ctr", top],
  }).output();
  assert.equal(rm.code, 0, new TextDecoder().decode(rm.stderr));
  assert.deepEqual(
    Object.keys((await readIndex({ root: `${t}/s` })).released ?? {}),
    [base],
  );
  // A library remove leaves its entry; check --repair drops it.
  store = await openStore({ root: `${t}/s`, backend: "vfs" });
  await store.remove(base);
  store.close();
  assert.deepEqual(
    Object.keys((await readIndex({ root: `${t}/s` })).released ?? {}),
    [base],
  );
  await checkStore(`${t}/s`, { repair: true });
  assert.equal((await readIndex({ root: `${t}/s` })).released, undefined);
});
