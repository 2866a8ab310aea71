/**
 * Shapes benchmark: apply and pack of three layer shapes, each run as its own
 * process (start-up included: a script that imports mod.ts, as a user's tool
 * would, bench/_shape_child.ts), interleaved with GNU tar on the same data.
 *
 * Shapes (built here, deterministic):
 * - base: a Debian-like base layer, ~6.8k entries (~5.5k files, ~600 dirs,
 *   symlinks, hardlinks, xattrs on a few), ~200 MB with a few big files;
 * - small: 55k small files (0-2 KiB) in ~1.4k dirs;
 * - upper: a 248-entry upper layer (files, dirs, symlinks, hardlinks, `.wh.`
 *   files and an opaque marker, applied as plain files: format "none").
 *
 * Each measurement alternates GNU tar and ours (who goes first alternates
 * too), prints every run (wall seconds; peak RSS and user + sys CPU from
 * `/usr/bin/time -f "%M %U %S"`, CPU to 0.01 s), the load average before it,
 * and a table of medians and ratios (wall, and CPU: on a busy shared machine
 * the CPU ratio moves less than the wall one). Every
 * output tree is digested (names, types, modes, owners, link counts, times,
 * link targets, sizes, contents, xattrs; the root directory itself left out)
 * and must match GNU tar's: a fast wrong answer fails the bench.
 *
 * Environment: LAYERFS_BENCH_RUNS (default 5), LAYERFS_BENCH_HOG=1 (a busy
 * loop on each core while measuring), LAYERFS_BENCH_SHAPES (comma list of
 * base, small, upper; all by default, none when empty), LAYERFS_BENCH_BIG=1 (peak RSS
 * applying a 1M-entry layer and a ~2 GB one), LAYERFS_BENCH_MOBY (a program
 * that runs moby's pkg/archive, built by the person running the bench: it
 * is timed in the same rotation and gets its own columns; see
 * {@link MOBY}).
 *
 * Run: `deno task bench shapes` (root: on a fresh ext4 loop filesystem).
 *
 * @module
 */

import { type TarHeader, tarHeader } from "../src/archive/tar/header.ts";
import { TarWriter } from "../src/archive/tar/writer.ts";
import { median, prng, type Run, sh, timeCommand } from "./_util.ts";

const RUNS = Math.max(1, Number(Deno.env.get("LAYERFS_BENCH_RUNS") ?? 5));
const HOG = Deno.env.get("LAYERFS_BENCH_HOG") === "1";
const BIG = Deno.env.get("LAYERFS_BENCH_BIG") === "1";
/** The shapes asked for; an empty LAYERFS_BENCH_SHAPES runs none (only BIG). */
const SHAPES =
  Deno.env.get("LAYERFS_BENCH_SHAPES")?.split(",").filter((n) => n !== "") ??
    ["base", "small", "upper"];
const CHILD = new URL("./_shape_child.ts", import.meta.url).pathname;
/**
 * A peer to time beside GNU tar: a program built from moby's `pkg/archive`
 * (`moby_peer/main.go`, built with Go by whoever runs the bench; see its
 * header and the README) that takes the same arguments as
 * `_shape_child.ts`: `apply <tar> <dir>` (`archive.Untar`), `pack <dir>
 * <out.tar>` (`archive.TarWithOptions`, uncompressed), `changes <dir>
 * <parent>` (`archive.ChangesDirs`, printing the count). Its change counts
 * must equal ours; its trees are compared with GNU tar's and a difference is
 * reported, not fatal (moby's pack keeps only the `security.capability`
 * xattr).
 */
const MOBY = Deno.env.get("LAYERFS_BENCH_MOBY") || undefined;
const TAR_ARGS = [
  "--format=pax",
  "--xattrs",
  "--xattrs-include=*",
  "--numeric-owner",
];

// ---------------------------------------------------------------- helpers

function loadavg(): string {
  return Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(
    " ",
  );
}

/**
 * One process run: wall seconds (ours, from spawn to exit), peak RSS in MiB
 * and CPU seconds (user + sys: less swayed than wall time by other work on
 * a shared machine, though not free of it).
 */
/**
 * A digest of the tree at `dir` (the root itself left out): every entry's
 * name, type, mode, owner, link count, mtime, link target and size (not for
 * dirs: ext4 dir sizes depend on history), file contents and xattrs.
 */
async function treeDigest(dir: string): Promise<string> {
  const script = `cd "$1" && {
    find . -mindepth 1 -printf '%P\\t%y\\t%m\\t%U\\t%G\\t%n\\t%T@\\t%l\\t%s\\n' |
      awk -F'\\t' 'BEGIN{OFS=FS} $2=="d"{$9=""} {print}' | LC_ALL=C sort
    find . -mindepth 1 -type f -print0 | LC_ALL=C sort -z | xargs -0r sha1sum
    find . -mindepth 1 -print0 | LC_ALL=C sort -z |
      xargs -0r getfattr -hd -m - -e hex 2>/dev/null | grep -v '^security.selinux='
  } | sha1sum`;
  return (await sh("sh", ["-c", script, "sh", dir])).split(" ")[0];
}

// ---------------------------------------------------------------- workspace

interface Workspace {
  root: string;
  fs: string;
  dispose(): Promise<void>;
}

/** A fresh ext4 loop filesystem as root (with `inodes` inodes), else /dev/shm. */
async function workspace(bytes: number, inodes: number): Promise<Workspace> {
  const base = await Deno.makeTempDir({ prefix: "layerfs-shapes-" });
  if (Deno.uid() === 0) {
    const mnt = `${base}/mnt`;
    const img = `${base}/fs.img`;
    await Deno.mkdir(mnt);
    await sh("truncate", ["-s", String(bytes), img]);
    await sh("mkfs.ext4", [
      "-q",
      "-F",
      "-N",
      String(inodes),
      "-E",
      "nodiscard",
      img,
    ]);
    await sh("mount", ["-o", "loop", img, mnt]);
    return {
      root: mnt,
      fs: `fresh ext4 loop filesystem (${(bytes / 2 ** 30).toFixed(0)} GiB)`,
      async dispose() {
        await sh("umount", [mnt]).catch(() => sh("umount", ["-l", mnt]));
        await Deno.remove(base, { recursive: true });
      },
    };
  }
  const root = await Deno.makeTempDir({ dir: "/dev/shm", prefix: "shapes-" });
  return {
    root,
    fs: "tmpfs (/dev/shm; not root)",
    async dispose() {
      await Deno.remove(root, { recursive: true }).catch(() => {});
      await Deno.remove(base, { recursive: true }).catch(() => {});
    },
  };
}

// ---------------------------------------------------------------- shapes

const POOL = (() => {
  const rnd = prng(0x5eed);
  const p = new Uint8Array(1 << 20);
  for (let i = 0; i < p.length; i++) p[i] = (rnd() * 256) | 0;
  return p;
})();

function writeSized(
  path: string,
  size: number,
  rnd: () => number,
  mode: number,
) {
  if (size <= POOL.length) {
    const at = Math.floor(rnd() * (POOL.length - size));
    Deno.writeFileSync(path, POOL.subarray(at, at + size), { mode });
    return;
  }
  using f = Deno.openSync(path, { create: true, write: true });
  for (let w = 0; w < size; w += POOL.length) {
    f.writeSync(POOL.subarray(0, Math.min(POOL.length, size - w)));
  }
  Deno.chmodSync(path, mode);
}

interface ShapeSpec {
  dirs: number;
  files: number;
  symlinks: number;
  hardlinks: number;
  /** Sizes of the big files, bytes. */
  big: number[];
  /** Largest small file, bytes (sizes skewed to small: max * u^3). */
  maxSmall: number;
  /** `.wh.` files and opaque markers (upper layers). */
  whiteouts: number;
  /** Every n-th file gets a user xattr (0: none). */
  xattrEvery: number;
  seed: number;
}

export const SPECS: Record<string, ShapeSpec> = {
  base: {
    dirs: 620,
    files: 5500,
    symlinks: 600,
    hardlinks: 80,
    big: [16, 12, 10, 8, 8, 6, 6, 5, 4, 4, 4, 3, 3, 3, 2, 2, 2, 2, 2, 2].map(
      (m) => m << 20,
    ),
    maxSmall: 64 << 10,
    whiteouts: 0,
    xattrEvery: 200,
    seed: 1,
  },
  small: {
    dirs: 1375,
    files: 55000,
    symlinks: 0,
    hardlinks: 0,
    big: [],
    maxSmall: 2048,
    whiteouts: 0,
    xattrEvery: 0,
    seed: 2,
  },
  upper: {
    dirs: 20,
    files: 200,
    symlinks: 10,
    hardlinks: 2,
    big: [4 << 20, 2 << 20, 1 << 20],
    maxSmall: 32 << 10,
    whiteouts: 16,
    xattrEvery: 50,
    seed: 3,
  },
};

/** Builds a shape under `dir`; returns its entry count (the root included). */
export async function buildShape(dir: string, s: ShapeSpec): Promise<number> {
  const rnd = prng(s.seed);
  const dirs = [dir];
  for (let i = 0; i < s.dirs; i++) {
    let parent = dirs[Math.floor(rnd() * dirs.length)];
    if (parent.slice(dir.length).split("/").length > 6) parent = dir;
    const p = `${parent}/d${i.toString(36)}`;
    Deno.mkdirSync(p, { mode: 0o755 });
    dirs.push(p);
  }
  const files: string[] = [];
  const xattrs: string[] = [];
  for (let i = 0; i < s.files; i++) {
    const d = dirs[Math.floor(rnd() * dirs.length)];
    const p = `${d}/f${i.toString(36)}${rnd() < 0.1 ? ".so.1.2.3" : ""}`;
    const size = i < s.big.length
      ? s.big[i]
      : Math.floor(s.maxSmall * rnd() ** 3);
    writeSized(p, size, rnd, rnd() < 0.2 ? 0o755 : 0o644);
    files.push(p);
    if (s.xattrEvery > 0 && i % s.xattrEvery === 7) xattrs.push(p);
  }
  for (let i = 0; i < s.symlinks; i++) {
    const d = dirs[Math.floor(rnd() * dirs.length)];
    const t = files[Math.floor(rnd() * files.length)];
    Deno.symlinkSync(
      rnd() < 0.5 ? t.slice(dir.length) : t.slice(t.lastIndexOf("/") + 1),
      `${d}/l${i.toString(36)}`,
    );
  }
  for (let i = 0; i < s.hardlinks; i++) {
    const d = dirs[Math.floor(rnd() * dirs.length)];
    Deno.linkSync(
      files[Math.floor(rnd() * files.length)],
      `${d}/h${i.toString(36)}`,
    );
  }
  for (let i = 0; i < s.whiteouts; i++) {
    const d = dirs[1 + Math.floor(rnd() * (dirs.length - 1))];
    const name = i === 0 ? ".wh..wh..opq" : `.wh.gone${i}`;
    Deno.writeFileSync(`${d}/${name}`, new Uint8Array(), { mode: 0o644 });
  }
  if (xattrs.length > 0) {
    const dump = xattrs.map((p, i) =>
      `# file: ${p}\nuser.bench=0x00ff${
        (i & 0xff).toString(16).padStart(2, "0")
      }\n`
    ).join("\n");
    const f = `${dir}.xattrs`;
    Deno.writeTextFileSync(f, dump);
    await sh("setfattr", [`--restore=${f}`]);
  }
  // Fixed times, so both tools' trees can be compared to the second.
  await sh("sh", [
    "-c",
    `find "$1" -exec touch -h -d @1700000000 {} +`,
    "sh",
    dir,
  ]);
  return 1 + s.dirs + s.files + s.symlinks + s.hardlinks + s.whiteouts;
}

// ---------------------------------------------------------------- measuring

/** Medians of both tools' runs. */
interface Medians {
  gnu: number;
  ours: number;
  gnuMiB: number;
  oursMiB: number;
  gnuCpu: number;
  oursCpu: number;
  /** Fastest run of each tool (wall seconds). */
  gnuBest: number;
  oursBest: number;
  /**
   * Median over the rounds of ours / GNU within the round (the two runs are
   * back to back): the VM's slow spells hit both runs of a round, so this
   * ratio moves less than the ratio of the two medians.
   */
  paired: number;
  /** The moby peer's median and fastest run (wall seconds) and median CPU, when it ran. */
  moby?: { secs: number; best: number; cpu: number };
}

interface Row extends Medians {
  shape: string;
  op: string;
  target: number;
  /** The target is a ratio to moby's time (changes: ChangesDirs), when the peer ran. */
  targetVsMoby?: boolean;
}

/**
 * Alternates GNU, ours and (when given) the moby peer `RUNS` times, who goes
 * first rotating (fresh output each, synced first); medians. `check` sees
 * the first round's outputs.
 */
async function alternate(
  label: string,
  gnu: (out: string) => string[],
  ours: (out: string) => string[],
  fresh: () => Promise<string>,
  check: (gnuOut: string, oursOut: string, mobyOut?: string) => Promise<void>,
  moby?: (out: string) => string[],
  runs = RUNS,
): Promise<Medians> {
  const tools = { gnu, ours, ...(moby ? { moby } : {}) };
  const names = Object.keys(tools) as (keyof typeof tools)[];
  const runsOf: Record<string, Run[]> = { gnu: [], ours: [], moby: [] };
  for (let i = 0; i < runs; i++) {
    const order = names.map((_, k) => names[(i + k) % names.length]);
    const outs: Record<string, string> = {};
    for (const who of order) {
      const out = await fresh();
      await sh("sync", []);
      runsOf[who].push(await timeCommand(tools[who]!(out)));
      outs[who] = out;
    }
    if (i === 0) await check(outs.gnu, outs.ours, outs.moby);
  }
  const list = (xs: Run[]) =>
    xs.map((x) =>
      `${x.secs.toFixed(3)}s/${x.cpu.toFixed(2)}cpu/${x.mib.toFixed(0)}M`
    ).join(" ");
  const g = runsOf.gnu;
  const o = runsOf.ours;
  const m = runsOf.moby;
  console.log(
    `${label} [load ${loadavg()}]: GNU ${list(g)}; ours ${list(o)}${
      m.length ? `; moby ${list(m)}` : ""
    }`,
  );
  return {
    gnu: median(g.map((x) => x.secs)),
    ours: median(o.map((x) => x.secs)),
    gnuMiB: median(g.map((x) => x.mib)),
    oursMiB: median(o.map((x) => x.mib)),
    gnuCpu: median(g.map((x) => x.cpu)),
    oursCpu: median(o.map((x) => x.cpu)),
    gnuBest: Math.min(...g.map((x) => x.secs)),
    oursBest: Math.min(...o.map((x) => x.secs)),
    // Runs are pushed round by round: index i of each list is round i.
    paired: median(o.map((x, i) => x.secs / g[i].secs)),
    ...(m.length
      ? {
        moby: {
          secs: median(m.map((x) => x.secs)),
          best: Math.min(...m.map((x) => x.secs)),
          cpu: median(m.map((x) => x.cpu)),
        },
      }
      : {}),
  };
}

function printTable(rows: Row[]): void {
  const lines = [[
    "shape",
    "op",
    "GNU tar",
    "ours",
    "ours/GNU",
    "paired",
    "target",
    "met",
    "GNU RSS",
    "ours RSS",
    "CPU GNU",
    "CPU ours",
    "CPU ratio",
    "best GNU",
    "best ours",
    "best ratio",
    ...(MOBY ? ["moby", "ours/moby", "best moby", "CPU moby"] : []),
  ]];
  for (const r of rows) {
    const ratio = r.ours / r.gnu;
    const vsMoby = r.targetVsMoby === true && r.moby !== undefined;
    const judged = vsMoby ? r.ours / r.moby!.secs : ratio;
    lines.push([
      r.shape,
      r.op,
      `${r.gnu.toFixed(3)} s`,
      `${r.ours.toFixed(3)} s`,
      `${ratio.toFixed(2)}x`,
      `${r.paired.toFixed(2)}x`,
      r.target > 0 ? `<= ${r.target.toFixed(1)}x${vsMoby ? " moby" : ""}` : "",
      r.target > 0 ? (judged <= r.target ? "yes" : "NO") : "",
      `${r.gnuMiB.toFixed(0)} MiB`,
      `${r.oursMiB.toFixed(0)} MiB`,
      `${r.gnuCpu.toFixed(2)} s`,
      `${r.oursCpu.toFixed(2)} s`,
      r.gnuCpu > 0 ? `${(r.oursCpu / r.gnuCpu).toFixed(2)}x` : "",
      `${r.gnuBest.toFixed(3)} s`,
      `${r.oursBest.toFixed(3)} s`,
      `${(r.oursBest / r.gnuBest).toFixed(2)}x`,
      ...(MOBY
        ? r.moby
          ? [
            `${r.moby.secs.toFixed(3)} s`,
            `${(r.ours / r.moby.secs).toFixed(2)}x`,
            `${r.moby.best.toFixed(3)} s`,
            `${r.moby.cpu.toFixed(2)} s`,
          ]
          : ["", "", "", ""]
        : []),
    ]);
  }
  const w = lines[0].map((_, i) => Math.max(...lines.map((l) => l[i].length)));
  for (const [i, l] of lines.entries()) {
    console.log(l.map((c, j) => c.padEnd(w[j])).join("  ").trimEnd());
    if (i === 0) console.log(w.map((n) => "-".repeat(n)).join("  "));
  }
}

/** A busy loop on each core (LAYERFS_BENCH_HOG=1); returns a stopper. */
function startHog(): () => Promise<void> {
  const kids = Array.from(
    { length: navigator.hardwareConcurrency },
    () =>
      new Deno.Command("sh", {
        args: ["-c", "while :; do :; done"],
        stdout: "null",
        stderr: "null",
      }).spawn(),
  );
  return async () => {
    for (const k of kids) k.kill("SIGKILL");
    for (const k of kids) await k.status;
  };
}

// ---------------------------------------------------------------- big layers

/** A tar of `n` entries: dirs of 1000 empty and tiny files, written as it streams. */
async function writeManyEntries(path: string, n: number): Promise<void> {
  using o = await Deno.open(path, {
    create: true,
    write: true,
    truncate: true,
  });
  const w = new TarWriter();
  const done = w.readable.pipeTo(o.writable);
  const body = new Uint8Array(100).fill(0x61);
  const h = (name: string, size: number, type: TarHeader["type"] = "file") =>
    tarHeader({
      name,
      type,
      size,
      mode: type === "dir" ? 0o755 : 0o644,
      mtime: 1700000000,
    });
  let made = 0;
  for (let d = 0; made < n; d++) {
    await w.add(h(`d${d}/`, 0, "dir"));
    made++;
    for (let i = 0; i < 999 && made < n; i++, made++) {
      const s = i % 10 === 0 ? 100 : 0;
      await w.add(h(`d${d}/file-number-${i}`, s), s ? body : undefined);
    }
  }
  await w.close();
  await done;
}

/** A ~`bytes` tar of one 64 MiB file and 1000 small ones per dir. */
async function writeBigLayer(path: string, bytes: number): Promise<void> {
  using o = await Deno.open(path, {
    create: true,
    write: true,
    truncate: true,
  });
  const w = new TarWriter();
  const done = w.readable.pipeTo(o.writable);
  const h = (name: string, size: number, type: TarHeader["type"] = "file") =>
    tarHeader({
      name,
      type,
      size,
      mode: type === "dir" ? 0o755 : 0o644,
      mtime: 1700000000,
    });
  let written = 0;
  for (let d = 0; written < bytes; d++) {
    await w.add(h(`d${d}/`, 0, "dir"));
    await w.add(
      h(`d${d}/big`, 64 << 20),
      ReadableStream.from((function* () {
        for (let i = 0; i < 64; i++) yield POOL.slice();
      })()),
    );
    written += 64 << 20;
    for (let i = 0; i < 1000; i++) {
      const s = (i * 7919) % 8192;
      await w.add(h(`d${d}/s${i}`, s), POOL.subarray(0, s));
      written += s;
    }
  }
  await w.close();
  await done;
}

// ---------------------------------------------------------------- main

/**
 * Runs the shapes benchmark and prints every run and a table of ratios.
 *
 * @example
 * ```ts ignore
 * import { runShapesBench } from "./shapes_bench.ts";
 * await runShapesBench();
 * ```
 */
export async function runShapesBench(): Promise<void> {
  const unknown = SHAPES.filter((n) => !Object.hasOwn(SPECS, n));
  if (unknown.length > 0) {
    throw new Error(
      `LAYERFS_BENCH_SHAPES names no shape ${
        unknown.join(", ")
      }; the shapes are ${Object.keys(SPECS).join(", ")}`,
    );
  }
  const deno = Deno.execPath();
  const ours = (mode: string, a: string) => (out: string) => [
    deno,
    "run",
    "--allow-all",
    CHILD,
    mode,
    a,
    out,
  ];
  const inodes = BIG ? 2_500_000 : 400_000;
  const ws = await workspace(BIG ? 24 * 2 ** 30 : 6 * 2 ** 30, inodes);
  console.log(
    `shapes bench: ${RUNS} runs each, on ${ws.fs}, ${navigator.hardwareConcurrency} cores, load ${loadavg()}${
      HOG ? ", CPU hog on every core" : ""
    }; ${
      (await sh("tar", ["--version"])).split("\n")[0]
    }; deno ${Deno.version.deno}`,
  );
  let seq = 0;
  const outs: string[] = [];
  const fresh = async () => {
    // Only the last two outputs are kept (the runs being compared).
    while (outs.length > 2) await sh("rm", ["-rf", outs.shift()!]);
    const d = `${ws.root}/out${seq++}`;
    outs.push(d);
    await Deno.mkdir(d);
    return d;
  };
  const freshTar = async () => `${await fresh()}/out.tar`;
  const peer = (mode: string, a: string) =>
    MOBY ? (out: string) => [MOBY, mode, a, out] : undefined;
  const rows: Row[] = [];
  let stopHog: (() => Promise<void>) | undefined;
  try {
    // Start-up alone: our child doing nothing (imports mod.ts) against GNU tar
    // packing nothing.
    {
      const r = await alternate(
        "start-up",
        () => ["tar", "-cf", "/dev/null", "--files-from", "/dev/null"],
        () => [deno, "run", "--allow-all", CHILD, "noop"],
        () => Promise.resolve(""),
        () => Promise.resolve(),
      );
      rows.push({ shape: "-", op: "start-up (no-op)", target: 0, ...r });
    }
    for (const name of SHAPES) {
      const spec = SPECS[name];
      const src = `${ws.root}/src-${name}`;
      await Deno.mkdir(src);
      const t0 = performance.now();
      const entries = await buildShape(src, spec);
      const tar = `${ws.root}/${name}.tar`;
      await sh("tar", [...TAR_ARGS, "--sort=name", "-cf", tar, "-C", src, "."]);
      const size = (await Deno.stat(tar)).size;
      console.log(
        `\n${name}: ${entries} entries, tar ${
          (size / 2 ** 20).toFixed(1)
        } MiB (built in ${((performance.now() - t0) / 1000).toFixed(1)} s)`,
      );
      const srcDigest = await treeDigest(src);
      if (HOG && !stopHog) stopHog = startHog();
      const apply = await alternate(
        `${name} apply`,
        (out) => ["tar", ...TAR_ARGS, "-xpf", tar, "-C", out],
        ours("apply", tar),
        fresh,
        async (g, o, m) => {
          const [dg, dour] = [await treeDigest(g), await treeDigest(o)];
          if (m !== undefined && (await treeDigest(m)) !== dg) {
            console.warn(`  (moby's tree differs from GNU tar's)`);
          }
          if (dg !== srcDigest) {
            console.warn(
              `  (GNU's tree differs from the source: ${dg} vs ${srcDigest})`,
            );
          }
          if (dg !== dour) {
            throw new Error(
              `${name} apply: our tree differs from GNU tar's (${dour} vs ${dg})`,
            );
          }
          console.log(`  trees match (${dour.slice(0, 12)})`);
        },
        peer("apply", tar),
      );
      const target = name === "upper" ? 2.0 : HOG ? 1.1 : 1.0;
      rows.push({ shape: name, op: "apply", target, ...apply });
      const pack = await alternate(
        `${name} pack`,
        (
          out,
        ) => ["tar", ...TAR_ARGS, "--sort=name", "-cf", out, "-C", src, "."],
        ours("pack", src),
        freshTar,
        async (g, o, m) => {
          // Both tars, extracted by GNU tar, must give the same tree.
          const dg = `${ws.root}/check-gnu`;
          const dour = `${ws.root}/check-ours`;
          const dm = `${ws.root}/check-moby`;
          const pairs = [[g, dg], [o, dour], ...(m ? [[m, dm]] : [])];
          for (const [t, d] of pairs) {
            await Deno.mkdir(d);
            await sh("tar", [...TAR_ARGS, "-xpf", t, "-C", d]);
          }
          const [a, b] = [await treeDigest(dg), await treeDigest(dour)];
          if (m && (await treeDigest(dm)) !== a) {
            console.warn(`  (moby's tar extracts to another tree than GNU's)`);
          }
          await sh("rm", ["-rf", dg, dour, dm]);
          if (a !== b) {
            throw new Error(
              `${name} pack: our tar extracts to another tree than GNU's (${b} vs ${a})`,
            );
          }
          console.log(`  tars extract to the same tree (${b.slice(0, 12)})`);
        },
        peer("pack", src),
      );
      rows.push({
        shape: name,
        op: "pack",
        target: name === "upper" ? 2.0 : HOG ? 1.1 : 1.0,
        ...pack,
      });
      if (name !== "upper") {
        // changes: the tree against a copy with ~3% of files modified, ~2%
        // deleted, ~1% added. The target is moby's ChangesDirs (with
        // LAYERFS_BENCH_MOBY); GNU diff -rq --no-dereference, which also walks
        // both trees, is the baseline every run has.
        const child = `${ws.root}/child-${name}`;
        await sh("cp", ["-a", src, child]);
        const rnd = prng(7);
        const files = (await sh("find", [child, "-type", "f"])).trim().split(
          "\n",
        ).sort();
        let edits = 0;
        for (const f of files) {
          const x = rnd();
          if (x < 0.03) Deno.writeTextFileSync(f, `modified ${edits++}`);
          else if (x < 0.05) Deno.removeSync(f);
          else if (x < 0.06) {
            Deno.writeTextFileSync(`${f}.new`, `added ${edits++}`);
          }
        }
        const oursChanges = [
          deno,
          "run",
          "--allow-all",
          CHILD,
          "changes",
          child,
          src,
        ];
        const changes = await alternate(
          `${name} changes`,
          () => [
            "sh",
            "-c",
            'diff -rq --no-dereference "$1" "$2" > /dev/null; [ $? -le 1 ]',
            "sh",
            src,
            child,
          ],
          () => oursChanges,
          () => Promise.resolve(""),
          async () => {
            if (!MOBY) return;
            // The same changes, counted by both (outside the timed runs).
            const [a, b] = [
              await sh(oursChanges[0], oursChanges.slice(1)),
              await sh(MOBY, ["changes", child, src]),
            ];
            if (a.trim() !== b.trim()) {
              throw new Error(
                `${name} changes: ${a.trim()} changes found, moby's ChangesDirs finds ${b.trim()}`,
              );
            }
            console.log(`  change counts match (${a.trim()})`);
          },
          MOBY ? () => [MOBY, "changes", child, src] : undefined,
        );
        rows.push({
          shape: name,
          op: "changes (GNU column: diff -rq)",
          target: 1.0,
          targetVsMoby: true,
          ...changes,
        });
        await sh("rm", ["-rf", child]);
      }
      if (stopHog) {
        await stopHog();
        stopHog = undefined;
      }
      await sh("rm", ["-rf", src, tar, ...outs.splice(0)]);
    }
    if (BIG) {
      for (
        const [label, write, limit] of [
          ["1M entries", (p: string) => writeManyEntries(p, 1_000_000), 64],
          ["2 GB", (p: string) => writeBigLayer(p, 2 * 2 ** 30), 80],
        ] as const
      ) {
        const tar = `${ws.root}/big.tar`;
        const t0 = performance.now();
        await write(tar);
        const size = (await Deno.stat(tar)).size;
        console.log(
          `\nbig layer ${label}: tar ${
            (size / 2 ** 20).toFixed(0)
          } MiB (written in ${
            ((performance.now() - t0) / 1000).toFixed(1)
          } s); peak RSS must stay under ${limit} MiB`,
        );
        // One run each: a 1M-entry apply takes GNU tar ~30 s.
        const r = await alternate(
          `${label} apply`,
          (out) => ["tar", ...TAR_ARGS, "-xpf", tar, "-C", out],
          ours("apply", tar),
          fresh,
          () => Promise.resolve(),
          undefined,
          1,
        );
        rows.push({
          shape: label,
          op: `apply (RSS < ${limit} MiB: ${r.oursMiB < limit ? "yes" : "NO"})`,
          target: 0,
          ...r,
        });
        await sh("rm", ["-rf", tar, ...outs.splice(0)]);
      }
    }
  } finally {
    await stopHog?.();
    await ws.dispose();
  }
  console.log("");
  printTable(rows);
  console.log(
    `\nmedians (and the fastest run: single runs on this VM swing by up to 2x of kernel time ` +
      `for the same work, so a median depends on how many runs were hit) of ${RUNS} interleaved runs; ` +
      `"paired" is the median of each round's ours/GNU (both runs back to back); ` +
      `each a fresh process timed from spawn to exit; ` +
      `GNU tar ${
        TAR_ARGS.join(" ")
      }; ours: deno run -A bench/_shape_child.ts; load ${loadavg()}`,
  );
}

if (import.meta.main) await runShapesBench();
