/**
 * A lone big layer (a base image's) unpacks on two threads in `loadImage`:
 * decoded and hashed on the calling thread, extracted in a worker. The
 * store it leaves is the one `parallel: 1` leaves (files, tar-split
 * record, ids); an abort in the middle of the layer leaves no layer, no
 * staging dir, no reference and no worker.
 */

import assert from "node:assert/strict";
import { listImages, loadImage, openStore } from "../../mod.ts";
import { privilegedTest, tempDir } from "../_privileged.ts";
import { workersGone, workerThreads } from "../_threads.ts";
import { storeImage } from "../../src/image/_store_image.ts";
import { noiseBytes } from "../_bytes.ts";
import {
  buildImage,
  buildLayer,
  hashedTree,
  layerTar,
  sha,
  writeOciLayout,
} from "./_images.ts";

/** A layer whose gzip blob is over 16 MiB (a lone layer that big is split). */
async function bigLayer() {
  const noise = new Uint8Array(18 << 20);
  for (let i = 0; i < noise.length; i += 65536) {
    crypto.getRandomValues(noise.subarray(i, i + 65536));
  }
  const tar = await layerTar([
    { name: "usr", type: "dir" },
    ...Array.from({ length: 200 }, (_, f) => ({
      name: `usr/f${f}`,
      content: `${f}\n`.repeat(f),
    })),
    { name: "usr/noise", content: new TextDecoder("latin1").decode(noise) },
  ]);
  const l = buildLayer(tar, "gzip");
  assert.ok(l.blob.length > 16 << 20);
  return l;
}

privilegedTest(
  "image (overlay): a lone big layer unpacked on two threads is the layer unpacked on one",
  async () => {
    await using tmp = await tempDir();
    const img = buildImage([await bigLayer()]);
    await writeOciLayout(`${tmp.path}/oci`, [{ image: img, ref: "big:1" }]);
    const before = workerThreads();
    const got = [];
    for (const parallel of [2, 1]) {
      const root = `${tmp.path}/s${parallel}`;
      const store = await openStore({ root, backend: "overlay" });
      try {
        // The worker threads while the layer streams: one with parallel 2
        // (the previous load's are gone: see the end of the loop).
        const during = new Set<string>();
        let applied = false;
        const [r] = await loadImage(store, `${tmp.path}/oci`, {
          parallel,
          onProgress: (p) => {
            if (p.state !== "apply" || p.bytes === 0) return;
            applied = true;
            for (const t of workerThreads()) {
              if (!before.includes(t)) during.add(t);
            }
          },
        });
        assert.ok(applied);
        assert.equal(during.size, parallel === 2 ? 1 : 0, [...during].join());
        assert.deepEqual(r.extracted, img.chains);
        const id = img.chains[0];
        got.push({
          tree: await hashedTree(`${root}/diff/${id}`),
          record: await Deno.readFile(`${root}/tarsplit/${id}`),
          images: (await listImages(store)).map((i) => [i.id, i.layers]),
        });
      } finally {
        store.close();
      }
      // A terminated worker's thread ends a moment later (later still on
      // a busy machine): wait for it, and for nothing else to be left.
      assert.deepEqual(await workersGone(before), []);
    }
    assert.equal(got[0].tree.get("/usr/f9"), got[1].tree.get("/usr/f9"));
    assert.deepEqual(got[0], got[1]);
    assert.deepEqual(await workersGone(before), []);
  },
);

privilegedTest(
  "image (overlay): an abort in the middle of a lone big layer leaves no layer, staging, reference or worker",
  async () => {
    await using tmp = await tempDir();
    const img = buildImage([await bigLayer()]);
    await writeOciLayout(`${tmp.path}/oci`, [{ image: img, ref: "big:1" }]);
    const before = workerThreads();
    const store = await openStore({
      root: `${tmp.path}/s`,
      backend: "overlay",
    });
    try {
      const ac = new AbortController();
      const reason = new DOMException("stopped by the test", "AbortError");
      const blob = img.layers[0].blob.length;
      let seen = 0;
      await assert.rejects(
        loadImage(store, `${tmp.path}/oci`, {
          parallel: 2,
          signal: ac.signal,
          onProgress: (p) => {
            if (p.state !== "apply") return;
            seen = p.bytes;
            if (p.bytes > blob / 3) ac.abort(reason);
          },
        }),
        (e) => e === reason,
      );
      assert.ok(seen > blob / 3 && seen < blob, `${seen} of ${blob}`);
      assert.equal(await store.exists(img.chains[0]), false);
      assert.deepEqual([...Deno.readDirSync(`${store.root}/staging`)], []);
      assert.deepEqual(await listImages(store), []);
      assert.deepEqual(await workersGone(before), []);
    } finally {
      store.close();
    }
  },
);

privilegedTest(
  "image (overlay): with workers to share, the largest missing layer's blob is opened first, the rest bottom first; a small image's all bottom first",
  async () => {
    await using tmp = await tempDir();
    const layer = async (name: string, content: string) =>
      buildLayer(await layerTar([{ name, content }]), "gzip");
    // The top layer is the largest; the bottom one second largest. Past
    // 16 MiB of blobs in all (noise does not compress) the layers unpack in
    // workers; under it on this thread, their downloads read ahead in place
    // order.
    const small = [
      await layer("a", "x".repeat(3000)),
      await layer("b", "x".repeat(1000)),
      await layer("c", "x".repeat(2000)),
    ];
    const noise = new TextDecoder("latin1").decode(noiseBytes(17 << 20, 7));
    const cases = [
      ["big", [...small, await layer("d", noise)], [[2, [3, 0, 1, 2]], [1, [
        0,
        1,
        2,
        3,
      ]]]],
      ["small", [...small, await layer("d", "x".repeat(400000))], [[2, [
        0,
        1,
        2,
        3,
      ]]]],
    ] as const;
    for (const [name, built, runs] of cases) {
      const img = buildImage([...built]);
      for (const [parallel, want] of runs) {
        const store = await openStore({
          root: `${tmp.path}/${name}${parallel}`,
          backend: "overlay",
        });
        try {
          const opened: number[] = [];
          const stored = await storeImage(store, {
            subject: "order:1",
            refs: ["order:1"],
            config: img.config,
            layers: built.map((l, i) => ({
              label: `layer ${i + 1}`,
              digest: sha(l.blob),
              size: l.blob.length,
              compression: "gzip",
              open: () => {
                opened.push(i);
                // A copy: a worker takes the buffer of a chunk it is sent.
                return { stream: ReadableStream.from([l.blob.slice()]) };
              },
            })),
          }, { parallel });
          assert.deepEqual(stored.layers, img.chains);
          // With two workers the first two open at once: the largest, then the bottom.
          assert.deepEqual(opened, want, `${name}, parallel ${parallel}`);
        } finally {
          store.close();
        }
      }
    }
  },
);
