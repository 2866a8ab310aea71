/**
 * Archive benchmark: our tar reader, apply (extract), pack (export) and
 * changes against GNU tar, measured in the same run on the same data.
 *
 * It builds a deterministic corpus (seeded PRNG: ~50k files of 0-64 KiB in
 * nested dirs, a few 8-64 MiB files, symlinks, hardlinks, xattrs) on a fresh
 * ext4 loop filesystem (tmpfs when not root: the VM's root ext4 swings 2-3x
 * run to run), then alternates GNU / ours for each measurement and prints the
 * median of the runs and the ratio ours/GNU. Page caches cannot be dropped
 * between runs on a shared machine, so alternation (not cold caches) is what
 * keeps the comparison fair.
 *
 * Environment: LAYERFS_BENCH_FILES (files in the corpus, default 50000),
 * LAYERFS_BENCH_RUNS (runs per measurement, default 5), LAYERFS_BENCH_BIG=1
 * (peak RSS while applying a ~2 GB layer instead of the corpus),
 * LAYERFS_BENCH_ONLY (a comma list of list, apply, record, pack, encode,
 * changes, rss: only those measurements). `record` is what the store's
 * tar-split record costs: `applyDiff` (extract + record + sha256) against
 * `applyTar` of the same tar, and an image-style `applyDiffChecked` from a
 * stream the caller hashes, with and without handing that hash to the record
 * (`tarSha256`); its baseline column is ours too, not GNU tar. Each run's time is printed above the table.
 *
 * Run: `deno task bench archive` (or `deno run -A bench/archive_bench.ts`).
 *
 * @module
 */

import { TarReader } from "../src/archive/tar/reader.ts";
import { type TarHeader, tarHeader } from "../src/archive/tar/header.ts";
import { TarWriter } from "../src/archive/tar/writer.ts";
import { applyTar } from "../src/archive/extract/apply_tar.ts";
import { packDir } from "../src/archive/export/pack_dir.ts";
import { writeToFile } from "../src/archive/write_file.ts";
import { layerChanges } from "../src/archive/changes/layer_changes.ts";
import { openStore } from "../src/store/open.ts";
import { median, prng, sh } from "./_util.ts";
import { createHash } from "node:crypto";

const FILES = Number(Deno.env.get("LAYERFS_BENCH_FILES") ?? 50000);
const RUNS = Math.max(1, Number(Deno.env.get("LAYERFS_BENCH_RUNS") ?? 5));
const BIG = Deno.env.get("LAYERFS_BENCH_BIG") === "1";
/** Measurements to run (comma list of list,apply,record,pack,encode,changes,rss); all by default. */
const ONLY = Deno.env.get("LAYERFS_BENCH_ONLY")?.split(",");
const want = (what: string) => !ONLY || ONLY.includes(what);
const isRoot = Deno.uid() === 0;

// ---------------------------------------------------------------- helpers

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return (performance.now() - t) / 1000;
}

// ---------------------------------------------------------------- workspace

interface Workspace {
  root: string;
  fs: string;
  dispose(): Promise<void>;
}

/** A fresh ext4 loop filesystem (root), else a tmpfs (root), else a plain temp dir. */
async function workspace(bytes: number): Promise<Workspace> {
  const base = await Deno.makeTempDir({ prefix: "layerfs-bench-" });
  const mnt = `${base}/mnt`;
  await Deno.mkdir(mnt);
  if (isRoot) {
    const img = `${base}/fs.img`;
    try {
      await sh("truncate", ["-s", String(bytes), img]);
      await sh("mkfs.ext4", ["-q", "-F", "-E", "nodiscard", img]);
      await sh("mount", ["-o", "loop", img, mnt]);
      return {
        root: mnt,
        fs: `fresh ext4 loop filesystem (${
          (bytes / 2 ** 30).toFixed(0)
        } GiB image)`,
        async dispose() {
          await sh("umount", [mnt]).catch(() => sh("umount", ["-l", mnt]));
          await Deno.remove(base, { recursive: true });
        },
      };
    } catch (e) {
      console.warn(`ext4 loop filesystem unavailable (${e}); trying tmpfs`);
      await Deno.remove(img).catch(() => {});
      try {
        await sh("mount", ["-t", "tmpfs", "-o", `size=${bytes}`, "tmpfs", mnt]);
        return {
          root: mnt,
          fs: "tmpfs",
          async dispose() {
            await sh("umount", [mnt]).catch(() => sh("umount", ["-l", mnt]));
            await Deno.remove(base, { recursive: true });
          },
        };
      } catch { /* fall through */ }
    }
  }
  // Not root: /dev/shm is a tmpfs every user can write.
  let root = mnt;
  let fs = `${base} (not root: no loop mount)`;
  try {
    root = await Deno.makeTempDir({
      dir: "/dev/shm",
      prefix: "layerfs-bench-",
    });
    fs = "tmpfs (/dev/shm)";
  } catch { /* keep mnt */ }
  return {
    root,
    fs,
    async dispose() {
      await Deno.remove(root, { recursive: true }).catch(() => {});
      await Deno.remove(base, { recursive: true }).catch(() => {});
    },
  };
}

// ---------------------------------------------------------------- corpus

interface Corpus {
  files: number;
  dirs: number;
  symlinks: number;
  hardlinks: number;
  bytes: number;
}

/** Builds the deterministic corpus under `dir`. */
function buildCorpus(dir: string, files: number): Corpus {
  const rnd = prng(0x1a7e5f5);
  const pool = new Uint8Array(1 << 20);
  for (let i = 0; i < pool.length; i++) pool[i] = (rnd() * 256) | 0;
  const dirs: string[] = [dir];
  const c: Corpus = { files: 0, dirs: 0, symlinks: 0, hardlinks: 0, bytes: 0 };
  // ~40 entries per dir, up to 5 levels deep.
  const nDirs = Math.max(1, Math.round(files / 40));
  for (let i = 0; i < nDirs; i++) {
    const parent = dirs[Math.floor(rnd() * dirs.length)];
    const depth = parent.slice(dir.length).split("/").length;
    const p = `${depth > 5 ? dir : parent}/d${i.toString(36)}`;
    Deno.mkdirSync(p);
    dirs.push(p);
    c.dirs++;
  }
  const regular: string[] = [];
  const big = files >= 10000 ? [8, 24, 64] : [8];
  for (let i = 0; i < files; i++) {
    const d = dirs[Math.floor(rnd() * dirs.length)];
    const p = `${d}/f${i.toString(36)}${
      rnd() < 0.1 ? ".long-name-" + "x".repeat(60) : ""
    }`;
    const r = rnd();
    if (r < 0.02 && regular.length > 0) {
      Deno.symlinkSync(regular[Math.floor(rnd() * regular.length)], p);
      c.symlinks++;
      continue;
    }
    if (r < 0.03 && regular.length > 0) {
      Deno.linkSync(regular[Math.floor(rnd() * regular.length)], p);
      c.hardlinks++;
      continue;
    }
    // Sizes skewed to small, as in real layers: 64 KiB * u^4 (mean ~13 KiB).
    let size = Math.floor(65536 * rnd() ** 4);
    if (i < big.length) size = big[i] << 20;
    const start = Math.floor(
      rnd() * (pool.length - Math.min(size, pool.length)),
    );
    if (size <= pool.length) {
      Deno.writeFileSync(p, pool.subarray(start, start + size), {
        mode: rnd() < 0.2 ? 0o755 : 0o644,
      });
    } else {
      using f = Deno.openSync(p, { create: true, write: true });
      for (let w = 0; w < size; w += pool.length) {
        f.writeSync(pool.subarray(0, Math.min(pool.length, size - w)));
      }
    }
    regular.push(p);
    c.files++;
    c.bytes += size;
  }
  // xattrs on 5% of the files (binary values), set in one setfattr batch below.
  const withXattr = regular.filter((_, i) => i % 20 === 7);
  Deno.writeTextFileSync(
    `${dir}/../xattrs.txt`,
    withXattr.map((p) =>
      `# file: ${p.slice(dir.length + 1)}\nuser.bench=0x00ff${
        (withXattr.indexOf(p) & 0xff).toString(16).padStart(2, "0")
      }\n`
    ).join("\n"),
  );
  return c;
}

async function setXattrs(dir: string): Promise<void> {
  await sh("setfattr", ["--restore=" + `${dir}/../xattrs.txt`], { cwd: dir });
}

/** Child layer for `changes`: some files modified, added, deleted (overlay whiteouts as root, aufs otherwise). */
function buildChild(
  base: string,
  child: string,
): { format: "overlay" | "aufs" } {
  const rnd = prng(42);
  const format = isRoot ? "overlay" as const : "aufs" as const;
  Deno.mkdirSync(child);
  let n = 0;
  const walk = (rel: string) => {
    // Sorted: readdir order differs between file systems, the PRNG draws must not.
    const entries = [...Deno.readDirSync(`${base}/${rel}`)].sort((a, b) =>
      a.name < b.name ? -1 : a.name > b.name ? 1 : 0
    );
    for (const e of entries) {
      const r = `${rel}${e.name}`;
      if (e.isDirectory) {
        walk(`${r}/`);
        continue;
      }
      if (!e.isFile) continue;
      const x = rnd();
      if (x > 0.06) continue;
      const parent = `${child}/${rel}`;
      Deno.mkdirSync(parent, { recursive: true });
      if (x < 0.03) {
        Deno.writeTextFileSync(`${child}/${r}`, `modified ${n++}`);
      } else if (x < 0.05) {
        if (format === "overlay") {
          const p = new Deno.Command("mknod", {
            args: [`${child}/${r}`, "c", "0", "0"],
          });
          p.outputSync();
        } else Deno.writeFileSync(`${parent}/.wh.${e.name}`, new Uint8Array());
      } else {
        Deno.writeTextFileSync(`${child}/${r}.new`, `added ${n++}`);
      }
    }
  };
  walk("");
  return { format };
}

// ---------------------------------------------------------------- measurements

interface Row {
  what: string;
  gnu?: number;
  ours?: number;
  note?: string;
}

async function alternate(
  runs: number,
  gnu: (() => Promise<unknown>) | undefined,
  ours: (() => Promise<unknown>) | undefined,
  before?: () => Promise<void>,
  label?: string,
): Promise<[number | undefined, number | undefined]> {
  const g: number[] = [];
  const o: number[] = [];
  for (let i = 0; i < runs; i++) {
    // Alternate which goes first, so neither always inherits the other's dirty pages.
    const order = i % 2 === 0 ? [gnu, ours] : [ours, gnu];
    for (const fn of order) {
      if (!fn) continue;
      await before?.();
      const t = await timed(fn);
      (fn === gnu ? g : o).push(t);
    }
  }
  // Every run, so the spread behind each median is on record.
  const list = (xs: number[]) => xs.map((x) => x.toFixed(2)).join(" ");
  if (label) {
    console.log(
      `${label}: ${g.length ? `GNU ${list(g)}; ` : ""}ours ${list(o)} (s)`,
    );
  }
  return [g.length ? median(g) : undefined, o.length ? median(o) : undefined];
}

async function readerOnly(path: string, bodies: boolean): Promise<number> {
  using f = await Deno.open(path);
  const r = new TarReader(f);
  let n = 0;
  while ((await r.next()) !== null) {
    n++;
    if (bodies) await r.readBody(() => {});
  }
  return n;
}

async function reencode(path: string, out: string): Promise<void> {
  using f = await Deno.open(path);
  using o = await Deno.open(out, { create: true, write: true, truncate: true });
  const w = new TarWriter();
  const done = w.readable.pipeTo(o.writable);
  const r = new TarReader(f);
  for (let h; (h = await r.next()) !== null;) {
    if (h.size === 0) {
      await w.add(h);
      continue;
    }
    const body = new Uint8Array(h.size);
    let at = 0;
    await r.readBody((c) => {
      body.set(c, at);
      at += c.length;
    });
    await w.add(h, body);
  }
  await w.close();
  await done;
}

/** Writes a stream to a file with `writeToFile` (BYOB, one buffer) or `pipeTo`. */
async function writeStream(
  s: ReadableStream<Uint8Array>,
  out: string,
  how: "writeToFile" | "pipeTo" = "writeToFile",
): Promise<void> {
  using o = await Deno.open(out, { create: true, write: true, truncate: true });
  if (how === "pipeTo") await s.pipeTo(o.writable, { preventClose: true });
  else await writeToFile(s, o);
}

/** Runs our apply in a child process (this module, --apply-child) and returns its peak RSS in MiB. */
async function childRss(
  tar: string,
  dest: string,
): Promise<{ mib: number; secs: number }> {
  const out = await sh(Deno.execPath(), [
    "run",
    "--allow-all",
    new URL(import.meta.url).pathname,
    "--apply-child",
    tar,
    dest,
  ]);
  const r = JSON.parse(out.trim().split("\n").pop()!);
  return { mib: r.hwmKiB / 1024, secs: r.secs };
}

/** Writes a ~`bytes` layer tar of big and small files with our writer (for the RSS run). */
async function writeBigLayer(path: string, bytes: number): Promise<void> {
  using o = await Deno.open(path, {
    create: true,
    write: true,
    truncate: true,
  });
  const w = new TarWriter();
  const done = w.readable.pipeTo(o.writable);
  const chunk = new Uint8Array(1 << 20).map((_, i) => (i * 2654435761) >>> 24);
  const h = (
    name: string,
    size: number,
    type: TarHeader["type"] = "file",
  ): TarHeader => tarHeader({ name, type, size, mtime: 1700000000 });
  let written = 0;
  for (let d = 0; written < bytes; d++) {
    await w.add(h(`d${d}/`, 0, "dir"));
    // Per dir: one 64 MiB file and 1000 small ones.
    const bigSize = 64 << 20;
    await w.add(
      h(`d${d}/big`, bigSize),
      ReadableStream.from((function* () {
        for (let i = 0; i < 64; i++) yield chunk.slice();
      })()),
    );
    written += bigSize;
    for (let i = 0; i < 1000; i++) {
      const s = (i * 7919) % 8192;
      await w.add(h(`d${d}/s${i}`, s), chunk.subarray(0, s));
      written += s;
    }
  }
  await w.close();
  await done;
}

function fmt(x: number | undefined): string {
  return x === undefined ? "n/a" : `${x.toFixed(3)} s`;
}

function printTable(rows: Row[]): void {
  const lines = [["measurement", "GNU tar", "ours", "ours/GNU", "note"]];
  for (const r of rows) {
    lines.push([
      r.what,
      fmt(r.gnu),
      fmt(r.ours),
      r.gnu && r.ours ? `${(r.ours / r.gnu).toFixed(2)}x` : "",
      r.note ?? "",
    ]);
  }
  const w = lines[0].map((_, i) => Math.max(...lines.map((l) => l[i].length)));
  for (const [i, l] of lines.entries()) {
    console.log(l.map((c, j) => c.padEnd(w[j])).join("  ").trimEnd());
    if (i === 0) console.log(w.map((n) => "-".repeat(n)).join("  "));
  }
}

// ---------------------------------------------------------------- main

/**
 * Runs the archive benchmark and prints a table of medians and ratios to GNU tar.
 *
 * @example
 * ```ts ignore
 * import { runArchiveBench } from "./archive_bench.ts";
 * await runArchiveBench();
 * ```
 */
export async function runArchiveBench(): Promise<void> {
  const corpusBytes = FILES * 14 * 1024 + (FILES >= 10000 ? 96 << 20 : 8 << 20);
  const fsBytes = Math.max(
    2 ** 30,
    Math.ceil(corpusBytes * 6 + (BIG ? 5 * 2 ** 30 : 0)),
  );
  const ws = await workspace(fsBytes);
  console.log(`archive bench: ${FILES} files, ${RUNS} runs, on ${ws.fs}`);
  try {
    const src = `${ws.root}/src`;
    Deno.mkdirSync(src);
    const t = performance.now();
    const c = buildCorpus(src, FILES);
    await setXattrs(src).catch((e) => console.warn(`xattrs not set: ${e}`));
    console.log(
      `corpus: ${c.files} files (${
        (c.bytes / 2 ** 20).toFixed(0)
      } MiB), ${c.dirs} dirs, ` +
        `${c.symlinks} symlinks, ${c.hardlinks} hardlinks, xattrs on 5% ` +
        `(built in ${((performance.now() - t) / 1000).toFixed(1)} s)`,
    );
    const tarPath = `${ws.root}/corpus.tar`;
    const tarArgs = [
      "--format=pax",
      "--xattrs",
      "--xattrs-include=*",
      "--numeric-owner",
    ];
    await sh("tar", [
      ...tarArgs,
      "--sort=name",
      "-cf",
      tarPath,
      "-C",
      src,
      ".",
    ]);
    const tarSize = (await Deno.stat(tarPath)).size;
    console.log(
      `corpus.tar (GNU tar, pax): ${(tarSize / 2 ** 20).toFixed(0)} MiB\n`,
    );
    const rows: Row[] = [];

    let seq = 0;
    const fresh = () => {
      const d = `${ws.root}/x${seq++}`;
      Deno.mkdirSync(d);
      return d;
    };
    const cleanup = async () => {
      for (const e of Deno.readDirSync(ws.root)) {
        if (/^x\d+$/.test(e.name) || e.name.startsWith("out")) {
          await sh("rm", ["-rf", `${ws.root}/${e.name}`]);
        }
      }
      await sh("sync", []);
    };

    if (want("list")) {
      const [gList, oList] = await alternate(
        RUNS,
        () => sh("tar", ["-tf", tarPath]),
        () => readerOnly(tarPath, false),
        undefined,
        "list",
      );
      rows.push({
        what: "list (tar -t vs TarReader.next)",
        gnu: gList,
        ours: oList,
      });
      const [gRead, oRead] = await alternate(
        RUNS,
        () => sh("sh", ["-c", `tar -xOf '${tarPath}' > /dev/null`]),
        () => readerOnly(tarPath, true),
        undefined,
        "read bodies",
      );
      rows.push({
        what: "read all bodies (tar -xO >/dev/null vs readBody)",
        gnu: gRead,
        ours: oRead,
      });
    }

    if (want("apply")) {
      const [gX, oX] = await alternate(
        RUNS,
        () => sh("tar", [...tarArgs, "-xpf", tarPath, "-C", fresh()]),
        async () => {
          using f = await Deno.open(tarPath);
          await applyTar(fresh(), f, { format: "none" });
        },
        cleanup,
        "apply",
      );
      rows.push({ what: "apply (tar -x vs applyTar)", gnu: gX, ours: oX });
      await cleanup();
    }

    if (want("record")) {
      const storeRoot = `${ws.root}/store`;
      const store = await openStore({ root: storeRoot, backend: "vfs" });
      let n = 0;
      const drop = async () => {
        for (const l of await store.list()) await store.remove(l.id);
        await cleanup();
      };
      try {
        const [aT, aD] = await alternate(
          RUNS,
          async () => {
            using f = await Deno.open(tarPath);
            await applyTar(fresh(), f, { format: "none" });
          },
          async () => {
            using f = await Deno.open(tarPath);
            await store.applyDiff(`l${n++}`, undefined, f);
          },
          drop,
          "record: applyTar vs applyDiff",
        );
        rows.push({
          what: "applyDiff (recorded) vs applyTar",
          gnu: aT,
          ours: aD,
          note: "baseline: applyTar",
        });
        // As an image load: the caller hashes the tar (DiffID) as it streams.
        const checked = (pass: boolean) => async () => {
          using f = await Deno.open(tarPath);
          const h = createHash("sha256");
          const s = f.readable.pipeThrough(
            new TransformStream<Uint8Array, Uint8Array>({
              transform(c, ctl) {
                h.update(c);
                ctl.enqueue(c);
              },
            }),
          );
          await store.applyDiffChecked(
            `l${n++}`,
            undefined,
            s,
            () => Promise.resolve(),
            pass ? { tarSha256: () => h.copy().digest("hex") } : {},
          );
        };
        const [c2, c1] = await alternate(
          RUNS,
          checked(false),
          checked(true),
          drop,
          "record: applyDiffChecked hashing twice vs once (tarSha256)",
        );
        rows.push({
          what: "applyDiffChecked: tarSha256 vs hashing twice",
          gnu: c2,
          ours: c1,
          note: "baseline: without tarSha256",
        });
      } finally {
        store.close();
        await sh("rm", ["-rf", storeRoot]);
      }
    }

    if (want("pack")) {
      // GNU tar runs as a fresh process each time; so does ours (a `deno run`
      // of packDir -> file, start-up included), which is what `layerfs diff
      // -o` costs. The second row packs inside this long-lived process (after
      // whatever ran above), as library users calling store.diff() do; both
      // write with writeToFile (BYOB reader, one buffer). The third pipes to a
      // file (default reader).
      const rmOut = async () => {
        await Deno.remove(`${ws.root}/out.tar`).catch(() => {});
        await sh("sync", []);
      };
      const gnuPack = () =>
        sh("tar", [
          ...tarArgs,
          "--sort=name",
          "-cf",
          `${ws.root}/out.tar`,
          "-C",
          src,
          ".",
        ]);
      const [gC, oC] = await alternate(
        RUNS,
        gnuPack,
        () =>
          sh(Deno.execPath(), [
            "run",
            "--allow-all",
            new URL(import.meta.url).pathname,
            "--pack-child",
            src,
            `${ws.root}/out.tar`,
          ]),
        rmOut,
        "pack, fresh process",
      );
      rows.push({
        what: "pack (tar -c vs packDir, each a fresh process)",
        gnu: gC,
        ours: oC,
        note: "ours includes Deno start-up",
      });
      const [gCi, oCi] = await alternate(
        RUNS,
        gnuPack,
        () => writeStream(packDir(src), `${ws.root}/out.tar`),
        rmOut,
        "pack, this process",
      );
      rows.push({
        what: "pack (tar -c vs packDir in this process)",
        gnu: gCi,
        ours: oCi,
      });
      const [gCp, oCp] = await alternate(
        RUNS,
        gnuPack,
        () => writeStream(packDir(src), `${ws.root}/out.tar`, "pipeTo"),
        rmOut,
        "pack, this process, pipeTo",
      );
      rows.push({
        what: "pack (tar -c vs packDir, pipeTo(file.writable))",
        gnu: gCp,
        ours: oCp,
        note: "default reader: a fresh chunk per read",
      });
      await rmOut();
    }

    if (want("encode")) {
      // Our writer alone (read + re-encode), for profiling the codec.
      const [, oW] = await alternate(
        RUNS,
        undefined,
        () => reencode(tarPath, `${ws.root}/out.tar`),
        async () => {
          await Deno.remove(`${ws.root}/out.tar`).catch(() => {});
        },
        "re-encode",
      );
      rows.push({
        what: "re-encode (TarReader -> TarWriter -> file)",
        ours: oW,
      });
      await cleanup();
    }

    if (want("changes")) {
      const child = `${ws.root}/child`;
      const { format } = buildChild(src, child);
      let count = 0;
      const [, oCh] = await alternate(
        RUNS,
        undefined,
        async () => {
          count = (await layerChanges({
            dir: child,
            format,
            parentDirs: [src],
          })).length;
        },
        undefined,
        "changes",
      );
      rows.push({
        what: `changes (child layer, ${format})`,
        ours: oCh,
        note: `${count} changes`,
      });
    }

    if (want("rss")) {
      // Peak RSS of apply in a child process.
      let rssTar = tarPath;
      let label = `corpus (${(tarSize / 2 ** 20).toFixed(0)} MiB)`;
      if (BIG) {
        rssTar = `${ws.root}/big.tar`;
        await writeBigLayer(rssTar, 2 * 2 ** 30);
        const sz = (await Deno.stat(rssTar)).size;
        label = `${(sz / 2 ** 30).toFixed(2)} GiB layer`;
      }
      const rss = await childRss(rssTar, fresh());
      rows.push({
        what: `peak RSS, applyTar of ${label}`,
        ours: rss.secs,
        note: `VmHWM ${rss.mib.toFixed(0)} MiB`,
      });
      await cleanup();
    }
    console.log("");
    printTable(rows);
    console.log(
      `\nmedian of ${RUNS} alternating runs; GNU tar ${
        (await sh("tar", ["--version"])).split("\n")[0]
      } with ${tarArgs.join(" ")}`,
    );
  } finally {
    await ws.dispose();
  }
}

// Child modes (bench/main.ts never passes these flags): apply one tar and
// report peak RSS; pack one tree to a file.
if (import.meta.main && Deno.args[0] === "--apply-child") {
  const t = performance.now();
  using f = await Deno.open(Deno.args[1]);
  await applyTar(Deno.args[2], f, { format: "none" });
  const secs = (performance.now() - t) / 1000;
  const status = Deno.readTextFileSync("/proc/self/status");
  const hwmKiB = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
  console.log(JSON.stringify({ hwmKiB, secs }));
} else if (import.meta.main && Deno.args[0] === "--pack-child") {
  await writeStream(packDir(Deno.args[1]), Deno.args[2]);
} else if (import.meta.main) {
  await runArchiveBench();
}
