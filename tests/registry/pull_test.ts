/**
 * `pullImage` against the real registry: images the test builds (a base
 * layer, a second one with a whiteout and an opaque dir; gzip and zstd; a
 * multi-platform index) are pushed by skopeo and pulled by layerfs; the
 * mounted rootfs, chain ids and image id are what the test computed. A
 * second pull downloads nothing (requests counted through the proxy); wrong
 * bytes are refused with nothing applied; a cut download resumes; htpasswd
 * and token auth; two processes pulling at once extract each layer once;
 * an abort, a registry failing after retries and kill -9 at several points
 * keep the layers they completed (`checkStore` lists them as unused, and
 * nothing else), and the next pull fetches only the missing blobs; rmi
 * deletes the blobs keepBlobs kept unless another image uses them.
 *
 * @module
 */

import assert from "node:assert/strict";
import { DigestMismatch, InvalidImage } from "../../src/errors.ts";
import {
  findImage,
  listImages,
  openStore,
  pruneImages,
  pullImage,
  removeImage,
  type Store,
} from "../../mod.ts";
import { checkStore } from "../../src/cli/check.ts";
import { backendByName } from "../../src/backends/registry.ts";
import {
  baseLayer,
  buildImage,
  buildLayer,
  type BuiltImage,
  EXPECTED_TOP,
  sha,
  simpleTree,
  topLayer,
  writeOciLayout,
} from "../image/_images.ts";
import { startRegistry } from "./_registry.ts";
import { startProxy } from "./_proxy.ts";
import { RegistryClient } from "../../src/registry/client.ts";
import { countWorkers, workersGone, workerThreads } from "../_threads.ts";
import {
  bigImage,
  skopeoPush,
  startTokenRegistry,
  testImage,
} from "./_images.ts";

const none = () => Promise.resolve(undefined);
const USER = "bob";
const PASSWORD = "pull-Pa55word";
const enc = new TextEncoder();

async function layout(image: BuiltImage, tag = "v1"): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "layerfs-pull-src-" });
  await writeOciLayout(dir, [{ image, ref: tag }]);
  return dir;
}

/** Paths under `<root>/images` and `<root>/staging` that are temp files. */
async function temps(root: string): Promise<string[]> {
  const out: string[] = [];
  for (const d of [`${root}/images`, `${root}/images/blobs/sha256`]) {
    try {
      for await (const e of Deno.readDir(d)) {
        if (/^\.(spool|save|push)-|\.tmp-/.test(e.name)) out.push(e.name);
      }
    } catch { /* none */ }
  }
  try {
    for await (const e of Deno.readDir(`${root}/staging`)) out.push(e.name);
  } catch { /* none */ }
  return out;
}

// overlay needs root (real mounts); as another user these tests pull into vfs.
const isRoot = Deno.uid() === 0;
const STORE_BACKEND: "overlay" | "vfs" = isRoot ? "overlay" : "vfs";
const PULL_BACKENDS: ("overlay" | "vfs")[] = isRoot
  ? ["overlay", "vfs"]
  : ["vfs"];
if (!isRoot) {
  console.warn(
    'pull tests: the "overlay" pulls are skipped (needs root for real mounts); the rest run on vfs',
  );
}

async function withStore<T>(
  backend: "overlay" | "vfs",
  fn: (store: Store, root: string) => Promise<T>,
): Promise<T> {
  const root = await Deno.makeTempDir({ prefix: "layerfs-pull-store-" });
  const store = await openStore({ root, backend });
  try {
    return await fn(store, root);
  } finally {
    store.close();
    await Deno.remove(root, { recursive: true }).catch(() => {});
  }
}

Deno.test("pull: skopeo-pushed images through the proxy", async (t) => {
  const reg = await startRegistry();
  const proxy = startProxy(reg.url);
  const image = await testImage();
  const src = await layout(image);
  const blobGets = () =>
    proxy.seen.filter((s) => s.method === "GET" && s.path.includes("/blobs/"))
      .length;
  try {
    await skopeoPush(src, "v1", `${reg.host}/test/app:v1`);
    for (const backend of PULL_BACKENDS) {
      await t.step(
        `${backend}: the rootfs, chain ids and id are the test's; a second pull downloads nothing`,
        () =>
          withStore(backend, async (store, root) => {
            const ref = `${proxy.host}/test/app:v1`;
            proxy.seen.length = 0;
            const img = await pullImage(store, ref, {
              clientOptions: { credentials: none },
            });
            assert.equal(img.id, `sha256:${image.configHex}`);
            assert.deepEqual(img.layers, image.chains);
            assert.deepEqual(img.extracted, image.chains);
            assert.equal(img.topLayer, image.chains[1]);
            assert.equal(img.digest, `sha256:${image.manifestHex}`);
            assert.equal(img.ref, ref);
            // Two layers and the config: each fetched once.
            assert.equal(blobGets(), 3);
            const view = await store.get(img.topLayer!);
            try {
              assert.deepEqual(await simpleTree(view), EXPECTED_TOP);
            } finally {
              await store.put(img.topLayer!);
            }
            // The image store knows it by name and by manifest digest.
            assert.equal((await findImage(store, ref)).id, img.id);
            assert.equal(
              (await findImage(store, `${proxy.host}/test/app@${img.digest}`))
                .id,
              img.id,
            );
            proxy.seen.length = 0;
            const again = await pullImage(store, ref, {
              clientOptions: { credentials: none },
            });
            assert.deepEqual(again.extracted, []);
            assert.equal(again.id, img.id);
            assert.equal(blobGets(), 0, JSON.stringify(proxy.seen));
            assert.equal(
              proxy.seen.filter((s) =>
                s.method === "HEAD" && s.path.includes("/blobs/")
              ).length,
              0,
            );
            assert.deepEqual(await temps(root), []);
            assert.deepEqual((await checkStore(root)).problems, []);
          }),
      );
    }

    await t.step(
      "a multi-platform index: --platform picks the manifest",
      async () => {
        const amd = await testImage();
        const arm = buildImage(
          [buildLayer(await baseLayer(), "gzip")],
          "arm64",
        );
        arm.platform = { os: "linux", architecture: "arm64", variant: "v8" };
        const dir = await Deno.makeTempDir({ prefix: "layerfs-pull-mp-" });
        try {
          await writeOciLayout(dir, [{ image: amd }, { image: arm }]);
          // index.json -> one index (tagged) -> the two platform manifests.
          const inner = enc.encode(JSON.stringify({
            schemaVersion: 2,
            mediaType: "application/vnd.oci.image.index.v1+json",
            manifests: [amd, arm].map((i) => ({
              mediaType: "application/vnd.oci.image.manifest.v1+json",
              digest: `sha256:${i.manifestHex}`,
              size: i.manifest.length,
              platform: i.platform,
            })),
          }));
          await Deno.writeFile(`${dir}/blobs/sha256/${sha(inner)}`, inner);
          await Deno.writeTextFile(
            `${dir}/index.json`,
            JSON.stringify({
              schemaVersion: 2,
              manifests: [{
                mediaType: "application/vnd.oci.image.index.v1+json",
                digest: `sha256:${sha(inner)}`,
                size: inner.length,
                annotations: { "org.opencontainers.image.ref.name": "mp" },
              }],
            }),
          );
          await skopeoPush(dir, "mp", `${reg.host}/test/mp:1`, ["--all"]);
          await withStore("vfs", async (store) => {
            const ref = `${reg.host}/test/mp:1`;
            const a = await pullImage(store, ref, {
              platform: "linux/arm64",
              clientOptions: { credentials: none },
            });
            assert.equal(a.id, `sha256:${arm.configHex}`);
            assert.equal(a.digest, `sha256:${arm.manifestHex}`);
            const b = await pullImage(store, ref, {
              platform: "linux/amd64",
              clientOptions: { credentials: none },
            });
            assert.equal(b.id, `sha256:${amd.configHex}`);
            assert.deepEqual(b.extracted, [amd.chains[1]]); // the base is shared
            await assert.rejects(
              pullImage(store, ref, {
                platform: "linux/s390x",
                clientOptions: { credentials: none },
              }),
              /linux\/s390x.*linux\/amd64, linux\/arm64\/v8/,
            );
          });
        } finally {
          await Deno.remove(dir, { recursive: true });
        }
      },
    );

    await t.step(
      "wrong bytes for a layer are refused for their digest, though its gzip fails first; nothing is applied",
      () =>
        withStore(STORE_BACKEND, async (store, root) => {
          const top = `/blobs/sha256:${sha(image.layers[1].blob)}`;
          proxy.fault = (req) =>
            req.method === "GET" && new URL(req.url).pathname.endsWith(top)
              ? { kind: "corrupt" }
              : { kind: "forward" };
          try {
            await assert.rejects(
              pullImage(store, `${proxy.host}/test/app:v1`, {
                clientOptions: { credentials: none, baseDelayMs: 1 },
                parallel: 1,
              }),
              // The byte flipped mid-blob breaks the deflate stream before
              // the blob's end, where the client checks its digest: the
              // unpack reads the rest and reports the digest.
              (e) => e instanceof DigestMismatch,
            );
          } finally {
            proxy.fault = () => ({ kind: "forward" });
          }
          assert.deepEqual(await store.list(), []);
          assert.deepEqual(await temps(root), []);
          await assert.rejects(findImage(store, `${proxy.host}/test/app:v1`));
        }),
    );

    await t.step(
      "a client whose getBlob does not check digests: the unpack hashes the blob itself",
      () =>
        withStore(STORE_BACKEND, async (store, root) => {
          const base = `sha256:${sha(image.layers[0].blob)}`;
          // Serves the base layer's gzip blob with its header's MTIME
          // changed, unchecked: the same size and the same tar, other bytes.
          class Sloppy extends RegistryClient {
            override getBlob(
              ...args: Parameters<RegistryClient["getBlob"]>
            ): ReadableStream<Uint8Array> {
              if (args[1] !== base) return super.getBlob(...args);
              const other = image.layers[0].blob.slice();
              other[4] ^= 1; // MTIME, ignored by every gzip decoder
              return ReadableStream.from([other]);
            }
          }
          const client = new Sloppy({ credentials: none });
          try {
            await assert.rejects(
              pullImage(store, `${proxy.host}/test/app:v1`, {
                client,
                parallel: 1,
              }),
              (e) =>
                e instanceof InvalidImage &&
                /its blob has digest/.test(e.message),
            );
          } finally {
            client.close();
          }
          assert.deepEqual(await store.list(), []);
          assert.deepEqual(await temps(root), []);
        }),
    );

    await t.step(
      "a client whose getBlob does not check digests: a config that is not the manifest's is refused",
      () =>
        withStore(STORE_BACKEND, async (store, root) => {
          const config = `sha256:${image.configHex}`;
          // The same JSON with one more space: valid, another digest.
          const other = new TextDecoder().decode(image.config).replace(
            /,"/,
            ', "',
          );
          assert.notEqual(other, new TextDecoder().decode(image.config));
          class Sloppy extends RegistryClient {
            override getBlob(
              ...args: Parameters<RegistryClient["getBlob"]>
            ): ReadableStream<Uint8Array> {
              if (args[1] !== config) return super.getBlob(...args);
              return ReadableStream.from([enc.encode(other)]);
            }
          }
          const client = new Sloppy({ credentials: none });
          try {
            await assert.rejects(
              pullImage(store, `${proxy.host}/test/app:v1`, { client }),
              (e) =>
                e instanceof DigestMismatch && e.expected === config &&
                /config/.test(e.subject),
            );
          } finally {
            client.close();
          }
          assert.deepEqual(await store.list(), []);
          assert.deepEqual(await listImages(store), []);
          assert.deepEqual(await temps(root), []);
        }),
    );

    await t.step(
      "a cut download resumes with Range",
      () =>
        withStore(STORE_BACKEND, async (store) => {
          const base = `/blobs/sha256:${sha(image.layers[0].blob)}`;
          let cut = false;
          proxy.seen.length = 0;
          proxy.fault = (req) => {
            if (
              !cut && req.method === "GET" &&
              new URL(req.url).pathname.endsWith(base)
            ) {
              cut = true;
              return { kind: "cut" };
            }
            return { kind: "forward" };
          };
          try {
            const img = await pullImage(store, `${proxy.host}/test/app:v1`, {
              clientOptions: { credentials: none, baseDelayMs: 1 },
            });
            assert.deepEqual(img.extracted, image.chains);
          } finally {
            proxy.fault = () => ({ kind: "forward" });
          }
          assert.ok(cut);
          assert.ok(
            proxy.seen.some((s) => s.path.endsWith(base) && s.range !== null),
            "the second request asks for the rest",
          );
        }),
    );

    await t.step(
      "rmi removes the blobs keepBlobs kept, except those another image uses",
      () =>
        withStore("vfs", async (store, root) => {
          // A second image on the same base layer (same blob).
          const base = buildImage([image.layers[0]], "arm64");
          const dir = await layout(base);
          try {
            await skopeoPush(dir, "v1", `${reg.host}/test/base:v1`);
          } finally {
            await Deno.remove(dir, { recursive: true });
          }
          const blobs = async () => {
            const out: string[] = [];
            for await (const e of Deno.readDir(`${root}/images/blobs/sha256`)) {
              out.push(e.name);
            }
            return out.sort();
          };
          const opts = {
            clientOptions: { credentials: none },
            keepBlobs: true,
          };
          const app = await pullImage(store, `${reg.host}/test/app:v1`, opts);
          await pullImage(store, `${reg.host}/test/base:v1`, opts);
          const [l0, l1] = image.layers.map((l) => sha(l.blob));
          assert.deepEqual(
            await blobs(),
            [
              l0,
              l1,
              image.configHex,
              image.manifestHex,
              base.configHex,
              base.manifestHex,
            ].sort(),
          );
          const r = await removeImage(store, `${reg.host}/test/app:v1`);
          assert.equal(r.deleted, app.id);
          // Its top layer's blob, config and manifest go; the shared base stays.
          assert.deepEqual(
            await blobs(),
            [l0, base.configHex, base.manifestHex].sort(),
          );
          await removeImage(store, `${reg.host}/test/base:v1`);
          assert.deepEqual(await blobs(), []);
          assert.deepEqual(await store.list(), []);
          assert.deepEqual((await checkStore(root)).problems, []);
        }),
    );

    // The big image (12 MiB of blobs: a small pull, its layers unpack on
    // the calling thread while their downloads are read ahead) and a bigger
    // one (18 MiB: in workers), pushed once for the steps below.
    const big = await bigImage(3, 4);
    const bigger = await bigImage(2, 9);
    {
      const dir = await layout(big);
      const dir2 = await layout(bigger);
      try {
        await skopeoPush(dir, "v1", `${reg.host}/test/big:v1`);
        await skopeoPush(dir2, "v1", `${reg.host}/test/bigger:v1`);
      } finally {
        await Deno.remove(dir2, { recursive: true });
        await Deno.remove(dir, { recursive: true });
      }
    }
    const bigBlob = (i: number) => `sha256:${sha(big.layers[i].blob)}`;
    const bigConfig = `sha256:${big.configHex}`;
    /** Digests of the blobs GET through the proxy since `seen` was emptied. */
    const fetched = () =>
      proxy.seen.filter((s) => s.method === "GET" && s.path.includes("/blobs/"))
        .map((s) => s.path.slice(s.path.lastIndexOf("/") + 1));

    await t.step(
      "parallel bounds the blob downloads running at once: read ahead for a small image (no worker), in workers past 16 MiB",
      async () => {
        const images = [["big", big], ["bigger", bigger]] as const;
        const layerPaths = images.flatMap(([, img]) =>
          img.layers.map((l) => `/blobs/sha256:${sha(l.blob)}`)
        );
        const isLayer = (req: Request) =>
          req.method === "GET" &&
          layerPaths.some((b) => new URL(req.url).pathname.endsWith(b));
        try {
          for (const [name, img] of images) {
            for (const parallel of [1, 2]) {
              // Backends that copy the parent unpack one layer at a time.
              const want =
                backendByName(STORE_BACKEND).capabilities.copiesParent
                  ? 1
                  : parallel;
              // Blobs trickle out (64 KiB per 2 ms), so downloads that may
              // overlap do. When two may run, the first reply is held until a
              // second GET is in flight (or 20 s passed: then the peak is 1
              // and the test fails), so the two overlap whatever the timing.
              const both = Promise.withResolvers<void>();
              const escape = setTimeout(both.resolve, 20_000);
              proxy.fault = (req) => {
                if (!isLayer(req)) return { kind: "forward" };
                if (want === 2 && proxy.blobGets.now < 2) {
                  return { kind: "wait", until: both.promise };
                }
                both.resolve();
                return { kind: "slow", chunk: 64 << 10, delayMs: 2 };
              };
              const workers = countWorkers();
              await withStore(STORE_BACKEND, async (store, root) => {
                proxy.blobGets.peak = 0;
                proxy.seen.length = 0;
                const got = await pullImage(
                  store,
                  `${proxy.host}/test/${name}:v1`,
                  { clientOptions: { credentials: none }, parallel },
                );
                assert.deepEqual(got.extracted, img.chains);
                assert.equal(proxy.blobGets.now, 0);
                assert.equal(
                  proxy.blobGets.peak,
                  want,
                  `${name}, parallel ${parallel}`,
                );
                // Workers only for the bigger image, when two may run.
                assert.equal(
                  workers.count() > 0,
                  name === "bigger" && want === 2,
                  `${name}, parallel ${parallel}: ${workers.count()} workers`,
                );
                // Each blob once; one at a time means bottom first.
                const all = [
                  `sha256:${img.configHex}`,
                  ...img.layers.map((l) => `sha256:${sha(l.blob)}`),
                ];
                if (want === 1) assert.deepEqual(fetched(), all);
                else assert.deepEqual(fetched().sort(), all.sort());
                assert.deepEqual((await checkStore(root)).problems, []);
              }).finally(() => {
                clearTimeout(escape);
                workers.restore();
              });
            }
          }
        } finally {
          proxy.fault = () => ({ kind: "forward" });
        }
      },
    );

    await t.step(
      "an abort mid-pull keeps the completed layer; the next pull fetches only the rest",
      () =>
        withStore(STORE_BACKEND, async (store, root) => {
          const ac = new AbortController();
          await assert.rejects(
            pullImage(store, `${proxy.host}/test/big:v1`, {
              clientOptions: { credentials: none },
              signal: ac.signal,
              parallel: 1,
              onProgress: (p) => {
                if (p.layer === 2 && p.state === "apply" && p.bytes > 0) {
                  ac.abort(new Error("stop, test"));
                }
              },
            }),
            /stop, test/,
          );
          assert.deepEqual((await store.list()).map((l) => l.id), [
            big.chains[0],
          ]);
          await assert.rejects(findImage(store, `${proxy.host}/test/big:v1`));
          assert.deepEqual(await temps(root), []);
          // check names it as an unused image layer, nothing else.
          assert.deepEqual(
            (await checkStore(root)).problems.map((p) => [p.kind, p.subject]),
            [["unused-layer", big.chains[0]]],
          );
          proxy.seen.length = 0;
          const img = await pullImage(store, `${proxy.host}/test/big:v1`, {
            clientOptions: { credentials: none },
          });
          assert.deepEqual(img.extracted, big.chains.slice(1));
          assert.deepEqual(
            fetched().sort(),
            [bigConfig, bigBlob(1), bigBlob(2)].sort(),
          );
          assert.deepEqual((await checkStore(root)).problems, []);
        }),
    );

    await t.step(
      "an abort while layers unpack (parallel 2; in workers, or read ahead for a small image): the call rejects with its reason, no staging, worker or download is left, the next pull completes",
      async () => {
        for (const [name, img] of [["bigger", bigger], ["big", big]] as const) {
          const workers = countWorkers();
          await withStore(STORE_BACKEND, async (store, root) => {
            const ref = `${proxy.host}/test/${name}:v1`;
            const before = workerThreads();
            const ac = new AbortController();
            const reason = new Error("stop, test");
            await assert.rejects(
              pullImage(store, ref, {
                clientOptions: { credentials: none },
                signal: ac.signal,
                parallel: 2,
                onProgress: (p) => {
                  if (p.layer === 1 && p.state === "apply" && p.bytes > 0) {
                    ac.abort(reason);
                  }
                },
              }),
              (e) => e === reason,
            );
            // On the backend that does not copy its parent, the bigger
            // image unpacks in workers and the small one on this thread.
            const copies = backendByName(STORE_BACKEND).capabilities
              .copiesParent;
            assert.equal(
              workers.count() > 0,
              name === "bigger" && !copies,
              `${name}: ${workers.count()} workers`,
            );
            assert.deepEqual(await temps(root), []);
            assert.deepEqual(await workersGone(before), []);
            // Every download was stopped (none is left reading ahead).
            for (let i = 0; i < 200 && proxy.blobGets.now > 0; i++) {
              await new Promise((r) => setTimeout(r, 25));
            }
            assert.equal(proxy.blobGets.now, 0, `${name}: downloads left`);
            await assert.rejects(findImage(store, ref));
            // What completed before the stop stays as unused layers only.
            for (const p of (await checkStore(root)).problems) {
              assert.equal(p.kind, "unused-layer", JSON.stringify(p));
            }
            const again = await pullImage(store, ref, {
              clientOptions: { credentials: none },
            });
            assert.deepEqual(again.layers, img.chains);
            assert.deepEqual((await checkStore(root)).problems, []);
          }).finally(() => workers.restore());
        }
      },
    );

    await t.step(
      "a registry failing after retries: the completed layer stays, prune removes it",
      () =>
        withStore(STORE_BACKEND, async (store, root) => {
          const second = `/blobs/${bigBlob(1)}`;
          proxy.fault = (req) =>
            req.method === "GET" && new URL(req.url).pathname.endsWith(second)
              ? { kind: "status", status: 503 }
              : { kind: "forward" };
          try {
            await assert.rejects(
              pullImage(store, `${proxy.host}/test/big:v1`, {
                clientOptions: { credentials: none, baseDelayMs: 1 },
                parallel: 1,
              }),
              /503/,
            );
          } finally {
            proxy.fault = () => ({ kind: "forward" });
          }
          assert.deepEqual((await store.list()).map((l) => l.id), [
            big.chains[0],
          ]);
          assert.deepEqual(await temps(root), []);
          // prune removes it; then nothing is left to check.
          assert.deepEqual(await pruneImages(store), {
            removedLayers: [big.chains[0]],
            busy: [],
            removedBlobs: [],
            blobsSkipped: false,
          });
          assert.deepEqual(await store.list(), []);
          assert.deepEqual((await checkStore(root)).problems, []);
        }),
    );

    await t.step(
      "an interrupted keepBlobs pull: prune removes the kept layer and its blob",
      () =>
        withStore(STORE_BACKEND, async (store, root) => {
          const ac = new AbortController();
          proxy.seen.length = 0;
          await assert.rejects(
            pullImage(store, `${proxy.host}/test/big:v1`, {
              clientOptions: { credentials: none },
              signal: ac.signal,
              parallel: 1,
              keepBlobs: true,
              onProgress: (p) => {
                if (p.layer === 2 && p.state === "apply" && p.bytes > 0) {
                  ac.abort(new Error("stop, test"));
                }
              },
            }),
            /stop, test/,
          );
          // parallel 1: one blob at a time, bottom first. Layer 3's was never
          // asked for; layer 2's stopped at its first bytes. Only layer 1's
          // blob is kept.
          assert.deepEqual(fetched(), [bigConfig, bigBlob(0), bigBlob(1)]);
          const kept = (await Array.fromAsync(
            Deno.readDir(`${root}/images/blobs/sha256`),
          )).map((e) => e.name);
          assert.deepEqual(kept, [bigBlob(0).slice(7)]);
          const pruned = await pruneImages(store);
          assert.deepEqual(
            { ...pruned, removedBlobs: [...pruned.removedBlobs].sort() },
            {
              removedLayers: [big.chains[0]],
              busy: [],
              removedBlobs: kept,
              blobsSkipped: false,
            },
          );
          assert.deepEqual(await store.list(), []);
          assert.deepEqual(
            (await Array.fromAsync(Deno.readDir(`${root}/images/blobs/sha256`)))
              .length,
            0,
          );
          assert.deepEqual((await checkStore(root)).problems, []);
        }),
    );

    await t.step(
      "two processes pulling one image extract each layer once",
      () =>
        withStore(STORE_BACKEND, async (store, root) => {
          store.close();
          const child = () =>
            new Deno.Command(Deno.execPath(), {
              args: [
                "run",
                "--allow-all",
                new URL("./_pull_child.ts", import.meta.url).pathname,
                root,
                `${reg.host}/test/app:v1`,
              ],
              stdout: "piped",
              stderr: "piped",
            }).output();
          const outs = await Promise.all([child(), child()]);
          const results = outs.map((o) => {
            assert.ok(o.success, new TextDecoder().decode(o.stderr));
            const lines = new TextDecoder().decode(o.stdout).trim().split("\n");
            return JSON.parse(lines.at(-1)!).result;
          });
          for (const r of results) {
            assert.equal(r.id, `sha256:${image.configHex}`);
          }
          const extracted = results.flatMap((r) => r.extracted).sort();
          assert.deepEqual(extracted, [...image.chains].sort());
          assert.deepEqual((await checkStore(root)).problems, []);
        }),
    );

    await t.step(
      "kill -9 at several points: completed layers stay and are not fetched again; the next pull completes, the store checks clean",
      async () => {
        const points: [string, (p: Record<string, unknown>) => boolean][] = [
          [
            "first bytes of layer 1",
            (p) => p.layer === 1 && p.state === "apply",
          ],
          ["layer 1 published", (p) => p.layer === 1 && p.state === "done"],
          [
            "mid layer 3",
            (p) =>
              p.layer === 3 && p.state === "apply" &&
              (p.bytes as number) > (2 << 20),
          ],
        ];
        for (const [name, when] of points) {
          const root = await Deno.makeTempDir({ prefix: "layerfs-pull-kill-" });
          try {
            await (await openStore({ root, backend: STORE_BACKEND })).close();
            const child = new Deno.Command(Deno.execPath(), {
              args: [
                "run",
                "--allow-all",
                new URL("./_pull_child.ts", import.meta.url).pathname,
                root,
                `${reg.host}/test/big:v1`,
              ],
              stdout: "piped",
              stderr: "null",
            }).spawn();
            let killed = false;
            let buf = "";
            const dec = new TextDecoder();
            for await (const chunk of child.stdout) {
              buf += dec.decode(chunk);
              const lines = buf.split("\n");
              buf = lines.pop()!;
              if (
                !killed && lines.some((l) => {
                  const p = JSON.parse(l).progress;
                  return p && when(p);
                })
              ) {
                child.kill("SIGKILL");
                killed = true;
              }
            }
            await child.status;
            assert.ok(killed, `${name}: the child got there`);
            // Reopening sweeps what the killed process left in staging/;
            // the layers it completed stay, unused until the next pull.
            const store = await openStore({ root, backend: STORE_BACKEND });
            try {
              const before = (await store.list()).map((l) => l.id);
              // Killed after layer 1 was published: at least it stays.
              if (name === "layer 1 published") {
                assert.ok(before.includes(big.chains[0]), name);
              }
              assert.deepEqual(
                (await checkStore(root)).problems.map((p) => p.kind),
                before.map(() => "unused-layer"),
                name,
              );
              // Published bottom first: what stays is the bottom of the chain.
              assert.deepEqual(
                [...before].sort(),
                big.chains.slice(0, before.length).sort(),
                name,
              );
              proxy.seen.length = 0;
              const img = await pullImage(store, `${proxy.host}/test/big:v1`, {
                clientOptions: { credentials: none },
              });
              assert.equal(img.id, `sha256:${big.configHex}`, name);
              assert.deepEqual(
                img.extracted,
                big.chains.filter((c) => !before.includes(c)),
                name,
              );
              // Completed layers are not fetched again; the others once.
              const want = big.chains.flatMap((c, i) =>
                before.includes(c) ? [] : [bigBlob(i)]
              );
              assert.deepEqual(
                fetched().sort(),
                [bigConfig, ...want].sort(),
                name,
              );
              assert.deepEqual(await temps(root), [], name);
            } finally {
              store.close();
            }
            assert.deepEqual((await checkStore(root)).problems, [], name);
          } finally {
            await Deno.remove(root, { recursive: true }).catch(() => {});
          }
        }
      },
    );
  } finally {
    await proxy.stop();
    await reg.stop();
    await Deno.remove(src, { recursive: true });
  }
});

Deno.test("pull: htpasswd and token auth", async (t) => {
  const image = await testImage();
  const src = await layout(image);
  const good = () => Promise.resolve({ username: USER, password: PASSWORD });
  const pkiDir = await Deno.makeTempDir({ prefix: "layerfs-pull-pki-" });
  try {
    await t.step("htpasswd", async () => {
      const reg = await startRegistry({
        htpasswd: { user: USER, password: PASSWORD },
      });
      try {
        await skopeoPush(src, "v1", `${reg.host}/auth/app:v1`, [
          `--dest-creds=${USER}:${PASSWORD}`,
        ]);
        await withStore("vfs", async (store) => {
          await assert.rejects(
            pullImage(store, `${reg.host}/auth/app:v1`, {
              clientOptions: { credentials: none },
            }),
            /401|credentials|login/i,
          );
          const img = await pullImage(store, `${reg.host}/auth/app:v1`, {
            clientOptions: { credentials: good },
          });
          assert.equal(img.id, `sha256:${image.configHex}`);
        });
      } finally {
        await reg.stop();
      }
    });
    await t.step("token", async () => {
      const tok = await startTokenRegistry(pkiDir, USER, PASSWORD);
      const { registry: reg, issuer } = tok;
      try {
        await skopeoPush(src, "v1", `${reg.host}/auth/app:v1`, [
          `--dest-creds=${USER}:${PASSWORD}`,
        ]);
        await withStore("vfs", async (store) => {
          const img = await pullImage(store, `${reg.host}/auth/app:v1`, {
            clientOptions: { credentials: good },
          });
          assert.equal(img.id, `sha256:${image.configHex}`);
          assert.deepEqual(img.layers, image.chains);
        });
        assert.ok(issuer.requests.some((r) => r.authenticated));
      } finally {
        await tok.stop();
      }
    });
  } finally {
    await Deno.remove(src, { recursive: true });
    await Deno.remove(pkiDir, { recursive: true });
  }
});

Deno.test("pull: a small image pulled by a fresh process loads no node: built-in (vfs; overlay as root: read ahead)", async () => {
  const reg = await startRegistry();
  // Uncompressed layers: gzip is Node-free only through ISA-L, when it is
  // installed (tests/archive/compress/gunzip_isal_test.ts).
  const image = buildImage([
    buildLayer(await baseLayer()),
    buildLayer(await topLayer()),
  ]);
  const src = await layout(image);
  const root = await Deno.makeTempDir({ prefix: "layerfs-pull-store-" });
  try {
    await skopeoPush(src, "v1", `${reg.host}/small/app:v1`);
    // A fresh process: this one loaded node:crypto and node:zlib already.
    const probe = `
      import { openStore, pullImage } from "./mod.ts";
      import { loadedBuiltins } from "./src/_node.ts";
      const [ref, root, backend] = Deno.args;
      const store = await openStore({ root, backend });
      const img = await pullImage(store, ref, {
        clientOptions: { credentials: () => Promise.resolve(undefined) },
      });
      store.close();
      console.log(JSON.stringify({ id: img.id, layers: img.layers, loaded: loadedBuiltins() }));
    `;
    for (const backend of PULL_BACKENDS) {
      const out = await new Deno.Command(Deno.execPath(), {
        args: [
          "eval",
          probe,
          `${reg.host}/small/app:v1`,
          `${root}/${backend}`,
          backend,
        ],
        cwd: new URL("../../", import.meta.url).pathname,
      }).output();
      assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
      assert.deepEqual(JSON.parse(new TextDecoder().decode(out.stdout)), {
        id: `sha256:${image.configHex}`,
        layers: image.chains,
        loaded: [],
      }, backend);
    }
  } finally {
    await reg.stop();
    await Deno.remove(src, { recursive: true });
    await Deno.remove(root, { recursive: true });
  }
});
