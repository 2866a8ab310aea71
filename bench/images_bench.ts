/**
 * Images benchmark: `loadImage` of a 3-layer image (about 200 MiB of
 * files: many small ones, a few large) from an OCI layout with gzip
 * layers and from an uncompressed docker-archive, against GNU tar
 * extracting the same layer blobs into plain dirs (no verification, no
 * store), and a second load that reuses every layer; loads one layer at a
 * time and 4 at once. Overlay, needs root. Median of 3 runs each, each
 * timed until `sync` returns.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { gzipSync } from "node:zlib";
import { loadImage, openStore, tarHeader, TarWriter } from "../mod.ts";
import { median } from "./_util.ts";

const REPS = 3;
const enc = new TextEncoder();
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/** Bytes of 4 random bits each: gzip gets them to about half, with real decoding work. */
function halfEntropy(n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) {
    crypto.getRandomValues(b.subarray(i, Math.min(n, i + 65536)));
  }
  for (let i = 0; i < n; i++) b[i] = 0x41 + (b[i] & 0x0f);
  return b;
}

async function layer(
  prefix: string,
  files: number,
  size: number,
  big: number,
): Promise<Uint8Array> {
  const w = new TarWriter();
  const out = new Response(w.readable).bytes();
  const body = halfEntropy(size);
  await w.add(tarHeader({ name: prefix, type: "dir" }));
  for (let d = 0; d < files / 100; d++) {
    await w.add(tarHeader({ name: `${prefix}/d${d}`, type: "dir" }));
    for (let f = 0; f < 100; f++) {
      await w.add(
        tarHeader({ name: `${prefix}/d${d}/f${f}`, size }),
        body,
      );
    }
  }
  const b = halfEntropy(big);
  await w.add(tarHeader({ name: `${prefix}/big`, size: big }), b);
  await w.close();
  return await out;
}

async function sh(cmd: string): Promise<void> {
  const r = await new Deno.Command("sh", { args: ["-c", cmd] }).output();
  if (!r.success) throw new Error(`${cmd} failed`);
}

/**
 * Runs the images benchmark and prints a table.
 *
 * @example
 * ```ts ignore
 * import { runImagesBench } from "./images_bench.ts";
 * await runImagesBench();
 * ```
 */
export async function runImagesBench(): Promise<void> {
  if (Deno.uid() !== 0) {
    console.log("images bench: skipped (needs root for real mounts)");
    return;
  }
  const tmp = await Deno.makeTempDir({ prefix: "layerfs-bench-img-" });
  try {
    const tars = [
      await layer("a", 2000, 16 << 10, 64 << 20),
      await layer("b", 1000, 32 << 10, 32 << 20),
      await layer("c", 500, 8 << 10, 48 << 20),
    ];
    const total = tars.reduce((n, t) => n + t.length, 0);
    const gz = tars.map((t) => new Uint8Array(gzipSync(t, { level: 1 })));
    const config = enc.encode(JSON.stringify({
      architecture: "amd64",
      os: "linux",
      rootfs: { type: "layers", diff_ids: tars.map((t) => `sha256:${sha(t)}`) },
    }));
    // OCI layout with gzip layers.
    const oci = `${tmp}/oci`;
    await Deno.mkdir(`${oci}/blobs/sha256`, { recursive: true });
    for (const b of [...gz, config]) {
      await Deno.writeFile(`${oci}/blobs/sha256/${sha(b)}`, b);
    }
    const manifest = enc.encode(JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: {
        mediaType: "application/vnd.oci.image.config.v1+json",
        digest: `sha256:${sha(config)}`,
        size: config.length,
      },
      layers: gz.map((b) => ({
        mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
        digest: `sha256:${sha(b)}`,
        size: b.length,
      })),
    }));
    await Deno.writeFile(`${oci}/blobs/sha256/${sha(manifest)}`, manifest);
    await Deno.writeTextFile(
      `${oci}/oci-layout`,
      '{"imageLayoutVersion":"1.0.0"}',
    );
    await Deno.writeTextFile(
      `${oci}/index.json`,
      JSON.stringify({
        schemaVersion: 2,
        manifests: [{
          mediaType: "application/vnd.oci.image.manifest.v1+json",
          digest: `sha256:${sha(manifest)}`,
          size: manifest.length,
          annotations: { "org.opencontainers.image.ref.name": "bench:gz" },
        }],
      }),
    );
    // Classic docker-archive, uncompressed layers.
    const d = `${tmp}/docker`;
    await Deno.mkdir(d);
    await Deno.writeFile(`${d}/${sha(config)}.json`, config);
    for (const [i, t] of tars.entries()) {
      await Deno.mkdir(`${d}/l${i}`);
      await Deno.writeFile(`${d}/l${i}/layer.tar`, t);
    }
    await Deno.writeTextFile(
      `${d}/manifest.json`,
      JSON.stringify([{
        Config: `${sha(config)}.json`,
        RepoTags: ["bench:tar"],
        Layers: tars.map((_, i) => `l${i}/layer.tar`),
      }]),
    );
    await sh(`tar -C ${d} -cf ${tmp}/docker.tar .`);

    const time = async (fn: () => Promise<void>) => {
      const t0 = performance.now();
      await fn();
      return (performance.now() - t0) / 1000;
    };
    const rows: [string, number][] = [];
    const measure = async (
      name: string,
      prep: () => Promise<void>,
      fn: () => Promise<void>,
    ) => {
      // Each run ends with sync: the time until the files are on disk, so
      // the writeback of one run does not land in the next one's time.
      const xs = [];
      for (let r = 0; r < REPS; r++) {
        await prep();
        await sh("sync");
        xs.push(
          await time(async () => {
            await fn();
            await sh("sync");
          }),
        );
      }
      rows.push([name, median(xs)]);
    };
    const fresh = async () => {
      await sh(`rm -rf ${tmp}/store ${tmp}/x`);
    };
    await measure("GNU tar -xzf of the 3 gzip blobs", fresh, async () => {
      for (const b of gz) {
        await Deno.mkdir(`${tmp}/x`, { recursive: true });
        await sh(`tar -C ${tmp}/x -xzf ${oci}/blobs/sha256/${sha(b)}`);
      }
    });
    for (const parallel of [1, 4]) {
      await measure(
        `loadImage OCI layout (gzip), parallel ${parallel}`,
        fresh,
        async () => {
          const store = await openStore({
            root: `${tmp}/store`,
            backend: "overlay",
          });
          await loadImage(store, oci, { parallel });
          store.close();
        },
      );
    }
    await measure("GNU tar -xf of the 3 layer tars", fresh, async () => {
      for (let i = 0; i < tars.length; i++) {
        await Deno.mkdir(`${tmp}/x`, { recursive: true });
        await sh(`tar -C ${tmp}/x -xf ${d}/l${i}/layer.tar`);
      }
    });
    for (const parallel of [1, 4]) {
      await measure(
        `loadImage docker-archive (tar), parallel ${parallel}`,
        fresh,
        async () => {
          const store = await openStore({
            root: `${tmp}/store`,
            backend: "overlay",
          });
          await loadImage(store, `${tmp}/docker.tar`, { parallel });
          store.close();
        },
      );
    }
    await measure(
      "loadImage again (all layers reused)",
      () => Promise.resolve(),
      async () => {
        const store = await openStore({
          root: `${tmp}/store`,
          backend: "overlay",
        });
        await loadImage(store, `${tmp}/docker.tar`);
        store.close();
      },
    );
    console.log(
      `images bench: 3 layers, ${(total / 2 ** 20).toFixed(0)} MiB of tar ` +
        `(${
          (gz.reduce((n, b) => n + b.length, 0) / 2 ** 20).toFixed(0)
        } MiB gzip), ` +
        `median of ${REPS}`,
    );
    for (const [name, s] of rows) {
      console.log(`  ${name.padEnd(40)} ${s.toFixed(2)} s`);
    }
  } finally {
    await sh(`rm -rf ${tmp}`);
  }
}

if (import.meta.main) await runImagesBench();
