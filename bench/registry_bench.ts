/**
 * Registry benchmark (`deno task bench registry`): pulling a 4-layer image
 * (gzip layers, about 130 MiB of files: many small ones and a few large)
 * and a small 3-layer one (about 1.5 MiB of files, unpacked on the calling
 * thread) from a local `docker-registry` on 127.0.0.1 into a fresh store with
 * `layerfs pull` (a CLI process: its start-up counts), against
 * `skopeo copy docker://... oci-archive:` followed by `podman load`, and
 * against `podman pull`; podman with a private `--root`/`--runroot` in a
 * temp dir (overlay driver), `--tls-verify=false`. The three run
 * interleaved, REPS times each, each timed until `sync` returns; medians
 * and ratios are printed, with the CPU time (user + sys) of each tool's
 * processes and of the registry while it served them: on two cores a pull
 * that keeps both busy cannot be faster than its CPU time / 2. Needs root
 * (overlay mounts, podman's overlay).
 *
 * @module
 */

import { tarHeader, TarWriter } from "../mod.ts";
import { startRegistry } from "../tests/registry/_registry.ts";
import {
  buildImage,
  buildLayer,
  writeOciLayout,
} from "../tests/image/_images.ts";
import {
  median,
  podmanAt,
  podmanCommand,
  prng,
  processCpu,
  sh,
  timeCommand,
} from "./_util.ts";

const REPS = Number(Deno.env.get("LAYERFS_BENCH_REPS") ?? 5);
const MAIN = new URL("../src/cli/main.ts", import.meta.url).pathname;

/** Bytes with 4 random bits each (gzip gets them to about half). */
function halfEntropy(n: number, rand: () => number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = 0x41 + ((rand() * 16) | 0);
  return b;
}

/** A layer: `files` files of `size` bytes in dirs of 100, and one of `big` bytes. */
async function layer(
  prefix: string,
  files: number,
  size: number,
  big: number,
  seed: number,
): Promise<Uint8Array> {
  const rand = prng(seed);
  const w = new TarWriter();
  const out = new Response(w.readable).bytes();
  const body = halfEntropy(size, rand);
  await w.add(tarHeader({ name: prefix, type: "dir" }));
  for (let d = 0; d < files / 100; d++) {
    await w.add(tarHeader({ name: `${prefix}/d${d}`, type: "dir" }));
    for (let f = 0; f < 100; f++) {
      body[0] = f; // every file its own bytes
      await w.add(tarHeader({ name: `${prefix}/d${d}/f${f}`, size }), body);
    }
  }
  await w.add(
    tarHeader({ name: `${prefix}/big`, size: big }),
    halfEntropy(big, rand),
  );
  await w.close();
  return await out;
}

/** Wall time until `sync` returns, and CPU: the tool's processes and the registry's. */
interface Timed {
  secs: number;
  cpu: number;
  registryCpu: number;
}

/** Runs `cmds` one after another, then `sync`; see {@link Timed}. */
async function timed(registryPid: number, cmds: string[][]): Promise<Timed> {
  const r0 = processCpu(registryPid);
  const t0 = performance.now();
  let cpu = 0;
  for (const c of cmds) cpu += (await timeCommand(c)).cpu;
  await sh("sync", []);
  return {
    secs: (performance.now() - t0) / 1000,
    cpu,
    registryCpu: processCpu(registryPid) - r0,
  };
}

/** Runs the registry benchmark and prints its figures. */
export async function runRegistryBench(): Promise<void> {
  if (Deno.uid() !== 0) {
    console.log("registry bench: skipped (needs root for real mounts)");
    return;
  }
  // The VM disk, and tmpfs (where file creation costs no disk work).
  for (const dir of [undefined, "/dev/shm"]) {
    for (const image of IMAGES) await benchIn(dir, image);
  }
}

/** An image the bench pulls: its name in the registry and its layer tars. */
interface BenchImage {
  name: string;
  layers: () => Promise<Uint8Array[]>;
}

const IMAGES: BenchImage[] = [
  // Many small files and a few large ones: unpacked in workers.
  {
    name: "app",
    layers: async () => [
      await layer("usr", 4000, 4096, 20 << 20, 1),
      await layer("lib", 2000, 16384, 16 << 20, 2),
      await layer("opt", 500, 65536, 24 << 20, 3),
      await layer("app", 1000, 2048, 8 << 20, 4),
    ],
  },
  // A small image (under 16 MiB of blobs): unpacked on the calling thread,
  // its downloads read ahead.
  {
    name: "small",
    layers: async () => [
      await layer("bin", 100, 1024, 256 << 10, 5),
      await layer("etc", 100, 512, 64 << 10, 6),
      await layer("srv", 100, 2048, 512 << 10, 7),
    ],
  },
];

async function benchIn(
  dir: string | undefined,
  spec: BenchImage,
): Promise<void> {
  const work = await Deno.makeTempDir({
    dir,
    prefix: "layerfs-registry-bench-",
  });
  const runBase = await Deno.makeTempDir({ dir: "/tmp", prefix: "lfr" });
  const reg = await startRegistry();
  try {
    // The image: gzip layers, written as an OCI layout, pushed by skopeo.
    const tars = await spec.layers();
    const image = buildImage(tars.map((t) => buildLayer(t, "gzip")));
    const blobs = image.layers.map((l) => l.blob);
    const oci = `${work}/oci`;
    await writeOciLayout(oci, [{ image, ref: "v1" }]);
    const ref = `${reg.host}/bench/${spec.name}:v1`;
    await sh("skopeo", [
      "--insecure-policy",
      "copy",
      "--dest-tls-verify=false",
      `oci:${oci}:v1`,
      `docker://${ref}`,
    ]);
    const mib = (n: number) => (n / (1 << 20)).toFixed(1);
    console.log(
      `registry bench: ${tars.length} layers, ${
        mib(tars.reduce((a, t) => a + t.length, 0))
      } MiB of tar, ${
        mib(blobs.reduce((a, b) => a + b.length, 0))
      } MiB gzip, from docker-registry on 127.0.0.1, stores in ${
        dir ?? "/tmp"
      } (median of ${REPS}, until sync)`,
    );

    const podman = podmanAt(runBase);
    const fresh = async (name: string) => {
      const d = `${work}/${name}`;
      await Deno.remove(d, { recursive: true }).catch(() => {});
      await Deno.mkdir(d, { recursive: true });
      return d;
    };
    const cleanPodman = async (d: string) => {
      await podman(d, ["rmi", "-a", "-f"]).catch(() => {});
      await podman(d, ["system", "reset", "-f"]).catch(() => {});
      await Deno.remove(d, { recursive: true }).catch(() => {});
    };
    const pull = (d: string, args: string[]) => podmanCommand(runBase, d, args);
    const runs: Record<string, () => Promise<Timed>> = {
      "layerfs pull (CLI process)": async () => {
        const d = await fresh("layerfs");
        const t = await timed(reg.pid, [[
          Deno.execPath(),
          "run",
          "-A",
          MAIN,
          "--root",
          d,
          "--backend",
          "overlay",
          "--quiet",
          "pull",
          ref,
        ]]);
        await Deno.remove(d, { recursive: true });
        return t;
      },
      "skopeo copy + podman load": async () => {
        const d = await fresh("podman-load");
        const t = await timed(reg.pid, [
          [
            "skopeo",
            "--insecure-policy",
            "copy",
            "--src-tls-verify=false",
            `docker://${ref}`,
            `oci-archive:${d}/image.tar:bench/${spec.name}:v1`,
          ],
          pull(d, ["load", "-q", "-i", `${d}/image.tar`]),
        ]);
        await cleanPodman(d);
        return t;
      },
      "podman pull": async () => {
        const d = await fresh("podman-pull");
        const t = await timed(reg.pid, [
          pull(d, ["pull", "-q", "--tls-verify=false", ref]),
        ]);
        await cleanPodman(d);
        return t;
      },
    };
    const times: Record<string, Timed[]> = {};
    // Interleaved: each round runs every contender once.
    for (let i = 0; i < REPS; i++) {
      for (const [name, run] of Object.entries(runs)) {
        (times[name] ??= []).push(await run());
        // The cleanup's writeback is not the next contender's to pay.
        await sh("sync", []);
      }
    }
    const med = (ts: Timed[], k: keyof Timed) => median(ts.map((t) => t[k]));
    const ours = times["layerfs pull (CLI process)"];
    console.log(
      `  ${
        "".padEnd(28)
      } wall (runs)  | CPU: the tool's, the registry's (medians)`,
    );
    for (const [name, ts] of Object.entries(times)) {
      const m = med(ts, "secs");
      const vs = name.startsWith("layerfs")
        ? ""
        : `  layerfs is ${(m / med(ours, "secs")).toFixed(2)}x faster, uses ${
          (med(ts, "cpu") / med(ours, "cpu")).toFixed(2)
        }x less CPU`;
      console.log(
        `  ${name.padEnd(28)} ${m.toFixed(2)} s  (${
          ts.map((t) => t.secs.toFixed(2)).join(" ")
        })  | ${med(ts, "cpu").toFixed(2)} s, ${
          med(ts, "registryCpu").toFixed(2)
        } s${vs}`,
      );
    }
  } finally {
    await reg.stop();
    await Deno.remove(work, { recursive: true }).catch(() => {});
    await Deno.remove(runBase, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) await runRegistryBench();
