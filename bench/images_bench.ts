/**
 * Images benchmark (`deno task bench images`, issue #10): one oci-archive
 * (a tar of an OCI layout) of a 4-layer image with gzip layers: a real
 * rootfs (GNU tar of the host's /etc, /usr/sbin, /usr/include, Python's
 * and Perl's libraries), a layer of many small files, and two mixed
 * layers. Interleaved, REPS rounds, each run timed until `sync` returns,
 * each into a fresh store on overlay, once with the stores (and the
 * archive) on the VM disk and once on tmpfs (`/dev/shm`: no disk work, so
 * the CPU-bound ratios show; the disk's writeback makes "until sync"
 * swing from 4 s to 47 s for the same work):
 *
 * - `loadImage`, parallel = CPUs (layers unpacked in workers),
 * - `loadImage`, parallel 1 (on the calling thread),
 * - `podman load` of the same archive (private `--root`/`--runroot` in a
 *   temp dir, overlay driver; removed afterwards),
 * - GNU tar `-xzf` of the 4 layer blobs, one after another (no checks, no
 *   store),
 * - and, once, a second load that reuses every layer.
 *
 * Prints medians, every run, the load average, and the ratios
 * ours/podman, ours-parallel/GNU-sequential and parallel/sequential. Needs
 * root (overlay mounts, podman's overlay).
 *
 * @module
 */

import { loadImage, openStore, tarHeader, TarWriter } from "../mod.ts";
import {
  buildImage,
  buildLayer,
  tarDir,
  writeOciLayout,
} from "../tests/image/_images.ts";
import { median, podmanAt, prng, sh } from "./_util.ts";

const REPS = Number(Deno.env.get("LAYERFS_BENCH_REPS") ?? 3);

/** The host dirs that make the "real rootfs" layer (those that exist). */
const ROOTFS = [
  "etc",
  "usr/sbin",
  "usr/include",
  "usr/lib/python3.11",
  "usr/lib/python3",
  "usr/share/perl",
];

/** `files` small files (0-2 KiB, text-like) in dirs of 200. */
async function smallFiles(files: number, seed: number): Promise<Uint8Array> {
  const rand = prng(seed);
  const w = new TarWriter();
  const out = new Response(w.readable).bytes();
  const words = new TextEncoder().encode(
    "lorem ipsum dolor sit amet consectetur adipiscing elit sed do ".repeat(40),
  );
  await w.add(tarHeader({ name: "small", type: "dir" }));
  for (let f = 0; f < files; f++) {
    if (f % 200 === 0) {
      await w.add(tarHeader({ name: `small/d${f / 200}`, type: "dir" }));
    }
    const n = (rand() * 2048) | 0;
    const at = (rand() * (words.length - n)) | 0;
    await w.add(
      tarHeader({ name: `small/d${Math.floor(f / 200)}/f${f}`, size: n }),
      words.subarray(at, at + n),
    );
  }
  await w.close();
  return await out;
}

/** `files` files of `size` bytes with 4 random bits each (gzip halves them), and one of `big`. */
async function mixed(
  prefix: string,
  files: number,
  size: number,
  big: number,
  seed: number,
): Promise<Uint8Array> {
  const rand = prng(seed);
  const body = (n: number) => {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i++) b[i] = 0x41 + ((rand() * 16) | 0);
    return b;
  };
  const w = new TarWriter();
  const out = new Response(w.readable).bytes();
  const b = body(size);
  await w.add(tarHeader({ name: prefix, type: "dir" }));
  for (let f = 0; f < files; f++) {
    if (f % 100 === 0) {
      await w.add(tarHeader({ name: `${prefix}/d${f / 100}`, type: "dir" }));
    }
    b[0] = f & 0xff;
    await w.add(
      tarHeader({ name: `${prefix}/d${Math.floor(f / 100)}/f${f}`, size }),
      b,
    );
  }
  await w.add(tarHeader({ name: `${prefix}/big`, size: big }), body(big));
  await w.close();
  return await out;
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  await sh("sync", []);
  return (performance.now() - t0) / 1000;
}

/**
 * Runs the images benchmark and prints its figures.
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
  const corpus = await Deno.makeTempDir({ prefix: "layerfs-bench-img-" });
  try {
    const what = await writeCorpus(corpus);
    // The VM disk, and tmpfs (where file creation costs no disk work).
    for (const dir of [undefined, "/dev/shm"]) await benchIn(dir, corpus, what);
  } finally {
    await Deno.remove(corpus, { recursive: true }).catch(() => {});
  }
}

/** Writes the image (`image.tar`) and its 4 layer blobs (`blob<i>.tar.gz`) to `work`; returns what they hold, for the title. */
async function writeCorpus(work: string): Promise<string> {
  const dirs = [];
  for (const d of ROOTFS) {
    if (await Deno.stat(`/${d}`).then(() => true, () => false)) dirs.push(d);
  }
  await sh("tar", [
    "--format=pax",
    "--numeric-owner",
    "-C",
    "/",
    "-cf",
    `${work}/rootfs.tar`,
    ...dirs,
  ]);
  const tars = [
    await Deno.readFile(`${work}/rootfs.tar`),
    await smallFiles(30000, 1),
    await mixed("lib", 2000, 16384, 16 << 20, 2),
    await mixed("app", 1000, 2048, 8 << 20, 3),
  ];
  await Deno.remove(`${work}/rootfs.tar`);
  const image = buildImage(tars.map((t) => buildLayer(t, "gzip")));
  const blobs = image.layers.map((l) => l.blob);
  await writeOciLayout(`${work}/oci`, [{ image, ref: "bench:img" }]);
  const archive = `${work}/image.tar`;
  await tarDir(`${work}/oci`, archive);
  for (const [i, b] of blobs.entries()) {
    await Deno.writeFile(`${work}/blob${i}.tar.gz`, b);
  }
  await Deno.remove(`${work}/oci`, { recursive: true });
  const mib = (n: number) => (n / (1 << 20)).toFixed(0);
  return `4 layers (rootfs of ${
    dirs.join(" ")
  }, 30,000 small files, 2 mixed), ${
    mib(tars.reduce((a, t) => a + t.length, 0))
  } MiB of tar, ${
    mib(blobs.reduce((a, b) => a + b.length, 0))
  } MiB gzip, one oci-archive`;
}

/** Runs every contender with the stores (and a copy of the corpus) in a temp dir under `dir` (default: the system's). */
async function benchIn(
  dir: string | undefined,
  corpus: string,
  what: string,
): Promise<void> {
  const work = await Deno.makeTempDir({ dir, prefix: "layerfs-bench-img-" });
  const runBase = await Deno.makeTempDir({ dir: "/tmp", prefix: "lfi" });
  try {
    const blobs: string[] = [];
    for (
      const e of [...Deno.readDirSync(corpus)].sort((a, b) =>
        a.name < b.name ? -1 : 1
      )
    ) {
      await Deno.copyFile(`${corpus}/${e.name}`, `${work}/${e.name}`);
      if (e.name.startsWith("blob")) blobs.push(e.name);
    }
    const archive = `${work}/image.tar`;
    const cpus = navigator.hardwareConcurrency;
    console.log(
      `images bench: ${what}; stores in ${
        dir ?? "/tmp"
      }; ${cpus} CPUs; median of ${REPS}, until sync`,
    );

    const fresh = async (name: string) => {
      const d = `${work}/${name}`;
      await Deno.remove(d, { recursive: true }).catch(() => {});
      await Deno.mkdir(d, { recursive: true });
      return d;
    };
    const podman = podmanAt(runBase);
    const ours = (parallel: number) => async () => {
      const d = await fresh(`ours${parallel}`);
      const t = await timed(async () => {
        const store = await openStore({ root: d, backend: "overlay" });
        try {
          await loadImage(store, archive, { parallel });
        } finally {
          store.close();
        }
      });
      await Deno.remove(d, { recursive: true });
      return t;
    };
    const runs: Record<string, () => Promise<number>> = {
      [`loadImage, parallel ${cpus}`]: ours(cpus),
      "loadImage, parallel 1": ours(1),
      "podman load": async () => {
        const d = await fresh("podman");
        const t = await timed(() => podman(d, ["load", "-q", "-i", archive]));
        await podman(d, ["rmi", "-a", "-f"]).catch(() => {});
        await podman(d, ["system", "reset", "-f"]).catch(() => {});
        await Deno.remove(d, { recursive: true }).catch(() => {});
        return t;
      },
      "GNU tar -xzf, 4 layers in turn": async () => {
        const d = await fresh("gnu");
        const t = await timed(async () => {
          for (let i = 0; i < blobs.length; i++) {
            await Deno.mkdir(`${d}/l${i}`);
            await sh("tar", [
              "-C",
              `${d}/l${i}`,
              "-xzf",
              `${work}/${blobs[i]}`,
            ]);
          }
        });
        await Deno.remove(d, { recursive: true });
        return t;
      },
    };
    const times: Record<string, number[]> = {};
    const load: number[] = [];
    // Interleaved: each round runs every contender once.
    for (let i = 0; i < REPS; i++) {
      for (const [name, run] of Object.entries(runs)) {
        (times[name] ??= []).push(await run());
        await sh("sync", []); // the cleanup's writeback is not the next one's
        load.push(Deno.loadavg()[0]);
      }
    }
    // A second load into one store: every layer reused.
    const again = await fresh("again");
    {
      const store = await openStore({ root: again, backend: "overlay" });
      await loadImage(store, archive);
      const t = await timed(() => loadImage(store, archive));
      store.close();
      times["loadImage again (all reused)"] = [t];
    }
    await Deno.remove(again, { recursive: true });
    const m = (k: string) => median(times[k]);
    for (const [name, ts] of Object.entries(times)) {
      console.log(
        `  ${name.padEnd(32)} ${median(ts).toFixed(2)} s  (${
          ts.map((t) => t.toFixed(2)).join(" ")
        })`,
      );
    }
    const par = m(`loadImage, parallel ${cpus}`);
    const seq = m("loadImage, parallel 1");
    const r = (x: number) => x.toFixed(2);
    console.log(
      `  ratios: ours-parallel/podman ${r(par / m("podman load"))} (podman ${
        r(m("podman load") / par)
      }x slower), ours-sequential/podman ${r(seq / m("podman load"))}, ` +
        `ours-parallel/GNU-sequential ${
          r(par / m("GNU tar -xzf, 4 layers in turn"))
        }, parallel/sequential ${r(par / seq)}`,
    );
    console.log(
      `  load average (1 min) during the runs: ${
        load.map((l) => l.toFixed(1)).join(" ")
      }`,
    );
  } finally {
    await Deno.remove(work, { recursive: true }).catch(() => {});
    await Deno.remove(runBase, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) await runImagesBench();
