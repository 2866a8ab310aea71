/**
 * An abort stops a layer's unpack in the middle, on the calling thread and
 * in a worker: the load rejects with the abort's reason after far fewer
 * bytes were written than the layer holds (this process's write count,
 * /proc/self/io), its staging is gone and the store checks clean. The
 * layer is one big file of repeated text, so a few compressed chunks (all
 * handed over before the abort) hold all of it: only a stop that reaches
 * the extraction itself ends it early.
 */

import assert from "node:assert/strict";
import { countWorkers } from "../_threads.ts";
import { loadImage, openStore, tarHeader, TarWriter } from "../../mod.ts";
import { checkStore } from "../../src/cli/check.ts";
import { buildImage, buildLayer, layerTar, writeOciLayout } from "./_images.ts";

const BIG = 96 << 20;
/** Layer 2's bytes of noise (they do not compress). */
const NOISE = 17 << 20;
// Workers need a backend that does not copy the parent; overlay needs root.
const BACKEND = Deno.uid() === 0 ? "overlay" : "vfs";
if (BACKEND === "vfs") {
  console.warn("abort tests: not root, so vfs: both steps unpack inline");
}

/** Bytes this process has written (write(2) and friends, all threads). */
async function written(): Promise<number> {
  const io = await Deno.readTextFile("/proc/self/io");
  return Number(/^wchar: (\d+)$/m.exec(io)![1]);
}

/** A layer tar of one `BIG`-byte file of repeated text (compresses ~1000:1). */
async function bigTextLayer(): Promise<Uint8Array> {
  const line = new TextEncoder().encode("layerfs abort test line\n".repeat(4));
  const w = new TarWriter();
  const out = new Response(w.readable).bytes();
  const chunk = new Uint8Array(1 << 20);
  for (let o = 0; o < chunk.length; o += line.length) {
    chunk.set(line.subarray(0, Math.min(line.length, chunk.length - o)), o);
  }
  const data = new Uint8Array(BIG);
  for (let o = 0; o < BIG; o += chunk.length) data.set(chunk, o);
  await w.add(tarHeader({ name: "big.txt", size: BIG }), data);
  await w.close();
  return await out;
}

Deno.test("abort: a load stops mid-layer, inline and in a worker; staging is gone, the store checks clean", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "layerfs-abort-src-" });
  try {
    // Layer 1 is the big one; layer 2 makes two missing layers, and its
    // blob of noise takes the image past the 16 MiB a load unpacks on the
    // calling thread, so parallel 2 unpacks in workers.
    const big = buildLayer(await bigTextLayer(), "gzip");
    assert.ok(big.blob.length < BIG / 100, `${big.blob.length} bytes`);
    const noise = new Uint8Array(NOISE);
    for (let i = 0; i < NOISE; i += 65536) {
      crypto.getRandomValues(noise.subarray(i, i + 65536));
    }
    const small = buildLayer(
      await layerTar([{
        name: "noise",
        content: new TextDecoder("latin1").decode(noise),
      }]),
      "gzip",
    );
    assert.ok(big.blob.length + small.blob.length > 16 << 20);
    const img = buildImage([big, small]);
    await writeOciLayout(dir, [{ image: img, ref: "abort:1" }]);
    for (const parallel of [1, 2]) {
      await t.step(`parallel ${parallel}`, async () => {
        const root = await Deno.makeTempDir({ prefix: "layerfs-abort-" });
        const store = await openStore({ root, backend: BACKEND });
        const workers = countWorkers();
        try {
          const ac = new AbortController();
          const reason = new Error("stop, test");
          const before = await written();
          const load = loadImage(store, dir, {
            parallel,
            signal: ac.signal,
            onProgress: (p) => {
              // Layer 1's first bytes came: its blob is (nearly) all read.
              if (p.layer === 1 && p.state === "apply" && !ac.signal.aborted) {
                ac.abort(reason);
              }
            },
          });
          await assert.rejects(load, (e) => e === reason);
          // On the backend that does not copy its parent, parallel 2 is in
          // workers (vfs unpacks on the calling thread whatever is asked).
          assert.equal(
            workers.count() > 0,
            parallel === 2 && BACKEND === "overlay",
            `${workers.count()} workers`,
          );
          const during = (await written()) - before;
          // Far less than the layer was written before the stop took
          // (in workers, layer 2 may have been written whole meanwhile).
          assert.ok(during < BIG / 4 + NOISE, `${during} bytes written`);
          assert.deepEqual(
            await Array.fromAsync(Deno.readDir(`${root}/staging`)),
            [],
          );
          assert.deepEqual(await store.list(), []);
          assert.deepEqual((await checkStore(root)).problems, []);
          // The same load without the abort completes.
          const [done] = await loadImage(store, dir, { parallel });
          assert.deepEqual(done.layers, img.chains);
          assert.equal(
            (await Deno.stat(`${root}/diff/${img.chains[0]}/big.txt`)).size,
            BIG,
          );
        } finally {
          workers.restore();
          store.close();
          await Deno.remove(root, { recursive: true });
        }
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
