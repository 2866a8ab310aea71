/**
 * A small image read from local files (`loadImage`) unpacks on the calling
 * thread, whatever `parallel` says: a worker's start costs more than the
 * unpack it would share. Past 16 MiB of blobs in all the layers go to
 * workers again, and a bad layer there fails the ones unpacking beside it
 * with nothing left behind. A small pull unpacks on the calling thread too,
 * its downloads read ahead `parallel` at once: tests/registry/pull_test.ts
 * checks that parallel 2 downloads two blobs at once in both cases. And a
 * small load needs no Node module at all (digests by Web Crypto,
 * src/_sha256.ts).
 */

import assert from "node:assert/strict";
import { InvalidImage, listImages, loadImage, openStore } from "../../mod.ts";
import { privilegedTest, tempDir } from "../_privileged.ts";
import { countWorkers, workersGone, workerThreads } from "../_threads.ts";
import {
  baseLayer,
  buildImage,
  buildLayer,
  layerTar,
  topLayer,
  writeDockerClassic,
  writeOciLayout,
} from "./_images.ts";

/** A gzip layer of `mib` MiB of noise (it does not compress). */
async function noiseLayer(name: string, mib: number) {
  const noise = new Uint8Array(mib << 20);
  for (let i = 0; i < noise.length; i += 65536) {
    crypto.getRandomValues(noise.subarray(i, i + 65536));
  }
  return buildLayer(
    await layerTar([
      { name, content: new TextDecoder("latin1").decode(noise) },
    ]),
    "gzip",
  );
}

privilegedTest(
  "image (overlay): a small image from local files unpacks on the calling thread; past 16 MiB of blobs, in workers",
  async () => {
    await using tmp = await tempDir();
    const workers = countWorkers();
    const store = await openStore({
      root: `${tmp.path}/s`,
      backend: "overlay",
    });
    try {
      const small = buildImage([
        buildLayer(await baseLayer(), "gzip"),
        buildLayer(await topLayer(), "zstd"),
        buildLayer(await layerTar([{ name: "third", content: "3" }]), "gzip"),
      ]);
      await writeOciLayout(`${tmp.path}/small`, [{
        image: small,
        ref: "small:1",
      }]);
      const [s] = await loadImage(store, `${tmp.path}/small`, { parallel: 4 });
      assert.deepEqual(s.extracted, small.chains);
      assert.equal(workers.count(), 0, "a small image starts no worker");
      const third = await store.get(small.chains[2]);
      assert.equal(await Deno.readTextFile(`${third}/third`), "3");
      await store.put(small.chains[2]);
      // A docker-archive names no sizes in its manifest: its index does.
      const docker = buildImage([
        buildLayer(await layerTar([{ name: "d1", content: "1" }])),
        buildLayer(await layerTar([{ name: "d2", content: "2" }]), "gzip"),
      ]);
      await writeDockerClassic(`${tmp.path}/docker.tar`, [{
        image: docker,
        tags: ["docker:1"],
      }]);
      const [d] = await loadImage(store, `${tmp.path}/docker.tar`, {
        parallel: 4,
      });
      assert.deepEqual(d.extracted, docker.chains);
      assert.equal(
        workers.count(),
        0,
        "a small docker-archive starts no worker",
      );

      // Two layers of 9 MiB: neither is split alone, but together they
      // are past the threshold, so they unpack in workers.
      const big = buildImage([
        await noiseLayer("a", 9),
        await noiseLayer("b", 9),
      ]);
      assert.ok(big.layers.every((l) => l.blob.length < 16 << 20));
      await writeOciLayout(`${tmp.path}/big`, [{ image: big, ref: "big:1" }]);
      const [b] = await loadImage(store, `${tmp.path}/big`, { parallel: 2 });
      assert.deepEqual(b.extracted, big.chains);
      assert.ok(workers.count() >= 1, `workers started: ${workers.count()}`);
    } finally {
      workers.restore();
      await store.cleanup();
      store.close();
    }
  },
);

privilegedTest(
  "image (overlay): a bad bottom layer of an image past 16 MiB fails the layers unpacking above it in workers; nothing is left",
  async () => {
    await using tmp = await tempDir();
    const before = workerThreads();
    const workers = countWorkers();
    const store = await openStore({
      root: `${tmp.path}/s`,
      backend: "overlay",
    });
    try {
      const img = buildImage([
        {
          ...buildLayer(await baseLayer(), "gzip"),
          diffId: `sha256:${"1".repeat(64)}`,
        },
        await noiseLayer("a", 9),
        await noiseLayer("b", 9),
      ]);
      await writeOciLayout(`${tmp.path}/oci`, [{ image: img, ref: "bad:1" }]);
      await assert.rejects(
        loadImage(store, `${tmp.path}/oci`, { parallel: 3 }),
        (e) =>
          e instanceof InvalidImage &&
          /bad:1 layer 1: its uncompressed tar has DiffID/.test(e.message),
      );
      assert.ok(workers.count() >= 1, `workers started: ${workers.count()}`);
      assert.deepEqual(await store.list(), []);
      assert.deepEqual(await listImages(store), []);
      assert.deepEqual([...Deno.readDirSync(`${store.root}/staging`)], []);
      assert.deepEqual(await workersGone(before), []);
    } finally {
      workers.restore();
      await store.cleanup();
      store.close();
    }
  },
);

Deno.test("image (vfs): loading a small OCI layout and a small docker-archive loads no node: built-in", async () => {
  await using tmp = await tempDir();
  // Uncompressed layers: gzip is Node-free only through ISA-L, when it is
  // installed (tests/archive/compress/gunzip_isal_test.ts).
  const img = buildImage([
    buildLayer(await baseLayer()),
    buildLayer(await topLayer()),
  ]);
  await writeOciLayout(`${tmp.path}/oci`, [{ image: img, ref: "small:1" }]);
  await writeDockerClassic(`${tmp.path}/docker.tar`, [{
    image: img,
    tags: ["docker:1"],
  }]);
  // A fresh process: this one loaded node:crypto and node:zlib to build them.
  const probe = `
    import { loadImage, openStore } from "./mod.ts";
    import { loadedBuiltins } from "./src/_node.ts";
    const [oci, docker, root] = Deno.args;
    const a = await openStore({ root: root + "/a", backend: "vfs" });
    const [x] = await loadImage(a, oci);
    a.close();
    const b = await openStore({ root: root + "/b", backend: "vfs" });
    const [y] = await loadImage(b, docker);
    b.close();
    console.log(JSON.stringify({ ids: [x.id, y.id], layers: x.layers, loaded: loadedBuiltins() }));
  `;
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      probe,
      `${tmp.path}/oci`,
      `${tmp.path}/docker.tar`,
      tmp.path,
    ],
    cwd: new URL("../../", import.meta.url).pathname,
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  assert.deepEqual(JSON.parse(new TextDecoder().decode(out.stdout)), {
    ids: [`sha256:${img.configHex}`, `sha256:${img.configHex}`],
    layers: img.chains,
    loaded: [],
  });
});

Deno.test("image (vfs): a docker-archive directory loads when a layer it reuses cannot be opened (a size is only a hint), and fails when that layer is needed", async () => {
  await using tmp = await tempDir();
  const img = buildImage([
    buildLayer(await layerTar([{ name: "one", content: "1" }])),
    buildLayer(await layerTar([{ name: "two", content: "2" }])),
  ]);
  await writeDockerClassic(`${tmp.path}/d.tar`, [{
    image: img,
    tags: ["d:1"],
  }]);
  const dir = `${tmp.path}/d`;
  await Deno.mkdir(dir);
  const untar = await new Deno.Command("tar", {
    args: ["-xf", `${tmp.path}/d.tar`, "-C", dir],
  }).output();
  assert.equal(untar.code, 0);
  const store = await openStore({ root: `${tmp.path}/s`, backend: "vfs" });
  const fresh = await openStore({ root: `${tmp.path}/f`, backend: "vfs" });
  try {
    await loadImage(store, dir);
    // Layer 1's file now leads out of the directory: refused when read.
    const [{ Layers }] = JSON.parse(
      await Deno.readTextFile(`${dir}/manifest.json`),
    );
    await Deno.writeTextFile(`${tmp.path}/outside`, "x");
    await Deno.remove(`${dir}/${Layers[0]}`);
    await Deno.symlink(`${tmp.path}/outside`, `${dir}/${Layers[0]}`);
    const [again] = await loadImage(store, dir);
    assert.deepEqual(again.extracted, []);
    assert.deepEqual(again.layers, img.chains);
    await assert.rejects(
      loadImage(fresh, dir),
      (e) => e instanceof InvalidImage && /leads out of/.test(e.message),
    );
  } finally {
    store.close();
    fresh.close();
  }
});
